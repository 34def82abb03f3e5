#include "tensor/kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/kernels/math.h"
#include "tensor/parallel.h"

namespace prunerec::kernels {
namespace {

// Maximum of x[0:n], ignoring NaNs. Sixteen independent lanes, so the compiler turns the
// inner loop into vector max instructions (a plain max reduction does not vectorise
// without -ffinite-math-only).
template <class T>
T row_max(const T* x, std::int64_t n) {
  constexpr int kLanes = 16;
  T lane[kLanes];
  for (int j = 0; j < kLanes; ++j) lane[j] = -std::numeric_limits<T>::infinity();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
  for (; i < n; ++i) lane[0] = x[i] > lane[0] ? x[i] : lane[0];
  T m = lane[0];
  for (int j = 1; j < kLanes; ++j) m = lane[j] > m ? lane[j] : m;
  return m;
}

// out[i] = exp(x[i] * a - m) for i < n; returns the sum (out may alias x).
template <class T>
T exp_shifted(const T* x, std::int64_t n, T a, T m, T* out) {
  T s = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const T e = exp_fast(x[i] * a - m);
    out[i] = e;
    s += e;
  }
  return s;
}

std::int64_t row_grain(std::int64_t cols) { return std::max<std::int64_t>(1, 8192 / std::max<std::int64_t>(cols, 1)); }

}  // namespace

template <class T>
void softmax_rows(std::int64_t rows, std::int64_t cols, const T* x, T* out) {
  parallel_for(0, rows, row_grain(cols), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * cols;
      T* o = out + r * cols;
      const T m = row_max(xr, cols);
      const T inv = T(1) / exp_shifted(xr, cols, T(1), m, o);
      for (std::int64_t c = 0; c < cols; ++c) o[c] *= inv;
    }
  });
}

template <class T>
void log_softmax_rows(std::int64_t rows, std::int64_t cols, const T* x, T* out) {
  parallel_for(0, rows, row_grain(cols), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * cols;
      T* o = out + r * cols;
      const T m = row_max(xr, cols);
      T s = 0;
      for (std::int64_t c = 0; c < cols; ++c) s += exp_fast(xr[c] - m);
      const T lse = m + std::log(s);
      for (std::int64_t c = 0; c < cols; ++c) o[c] = xr[c] - lse;
    }
  });
}

template <class T>
void cross_entropy_rows(std::int64_t rows, std::int64_t V, const T* x, const std::int32_t* target, T* loss, T* dx,
                        T grad_scale) {
  parallel_for(0, rows, row_grain(V), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * V;
      const std::int32_t tgt = target[r];
      if (tgt < 0) {
        loss[r] = 0;
        if (dx) std::fill(dx + r * V, dx + (r + 1) * V, T(0));
        continue;
      }
      const T m = row_max(xr, V);
      const T x_target = xr[tgt];
      if (dx) {
        T* d = dx + r * V;
        const T s = exp_shifted(xr, V, T(1), m, d);
        loss[r] = m + std::log(s) - x_target;
        const T k = grad_scale / s;
        for (std::int64_t c = 0; c < V; ++c) d[c] *= k;
        d[tgt] -= grad_scale;
      } else {
        T s = 0;
        for (std::int64_t c = 0; c < V; ++c) s += exp_fast(xr[c] - m);
        loss[r] = m + std::log(s) - x_target;
      }
    }
  });
}

template <class T>
void distill_rows(std::int64_t rows, std::int64_t V, const T* s, const T* t, const std::int32_t* target, T alpha,
                  T temp, T* loss, T* ce_out, T* kl_out, T* ds, T grad_scale) {
  const T inv_temp = T(1) / temp;
  parallel_for(0, rows, row_grain(V), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const T* sr = s + r * V;
      const T* tr = t + r * V;
      const std::int32_t tgt = target[r];
      if (tgt < 0) {
        loss[r] = 0;
        if (ce_out) ce_out[r] = 0;
        if (kl_out) kl_out[r] = 0;
        if (ds) std::fill(ds + r * V, ds + (r + 1) * V, T(0));
        continue;
      }
      // log-partition functions of s, s/temp and t/temp.
      const T ms = row_max(sr, V), mt = row_max(tr, V);
      T zs = 0, zst = 0, zt = 0;
      for (std::int64_t c = 0; c < V; ++c) {
        zs += exp_fast(sr[c] - ms);
        zst += exp_fast((sr[c] - ms) * inv_temp);
        zt += exp_fast((tr[c] - mt) * inv_temp);
      }
      const T lse_s = ms + std::log(zs);
      const T lse_st = ms * inv_temp + std::log(zst);
      const T lse_t = mt * inv_temp + std::log(zt);
      // KL = sum p_t (log p_t - log p_s^T).
      T kl = 0;
      for (std::int64_t c = 0; c < V; ++c) {
        const T log_pt = tr[c] * inv_temp - lse_t;
        const T log_pst = sr[c] * inv_temp - lse_st;
        kl += exp_fast(log_pt) * (log_pt - log_pst);
      }
      const T ce = lse_s - sr[tgt];
      const T kl_w = (T(1) - alpha) * temp * temp;
      loss[r] = alpha * ce + kl_w * kl;
      if (ce_out) ce_out[r] = ce;
      if (kl_out) kl_out[r] = kl;
      if (ds) {
        // d/ds: alpha (p_s - onehot) + (1 - alpha) temp (p_s^T - p_t).
        T* d = ds + r * V;
        const T a = alpha * grad_scale, b = (T(1) - alpha) * temp * grad_scale;
        for (std::int64_t c = 0; c < V; ++c) {
          const T ps = exp_fast(sr[c] - lse_s);
          const T pst = exp_fast(sr[c] * inv_temp - lse_st);
          const T pt = exp_fast(tr[c] * inv_temp - lse_t);
          d[c] = a * ps + b * (pst - pt);
        }
        d[tgt] -= a;
      }
    }
  });
}

template void softmax_rows<float>(std::int64_t, std::int64_t, const float*, float*);
template void softmax_rows<double>(std::int64_t, std::int64_t, const double*, double*);
template void log_softmax_rows<float>(std::int64_t, std::int64_t, const float*, float*);
template void log_softmax_rows<double>(std::int64_t, std::int64_t, const double*, double*);
template void cross_entropy_rows<float>(std::int64_t, std::int64_t, const float*, const std::int32_t*, float*, float*, float);
template void cross_entropy_rows<double>(std::int64_t, std::int64_t, const double*, const std::int32_t*, double*, double*,
                                         double);
template void distill_rows<float>(std::int64_t, std::int64_t, const float*, const float*, const std::int32_t*, float, float,
                                  float*, float*, float*, float*, float);
template void distill_rows<double>(std::int64_t, std::int64_t, const double*, const double*, const std::int32_t*, double,
                                   double, double*, double*, double*, double*, double);

}  // namespace prunerec::kernels
