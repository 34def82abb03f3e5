// Plain reference twins of the fast kernels: the simplest loops that compute the same
// thing, accumulating in double. Tests compare every fast kernel against its twin on odd,
// non-multiple-of-tile shapes; benchmarks put the two side by side. Never used in
// training.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "tensor/kernels/rope.h"

namespace prunerec::kernels::ref {

template <class T>
void rmsnorm(std::int64_t rows, std::int64_t cols, const T* x, const T* w, double eps, T* y) {
  for (std::int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (std::int64_t c = 0; c < cols; ++c) ss += static_cast<double>(x[r * cols + c]) * x[r * cols + c];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
    for (std::int64_t c = 0; c < cols; ++c) y[r * cols + c] = static_cast<T>(x[r * cols + c] * inv * w[c]);
  }
}

template <class T>
void softmax(std::int64_t rows, std::int64_t cols, const T* x, T* out) {
  for (std::int64_t r = 0; r < rows; ++r) {
    double m = -std::numeric_limits<double>::infinity(), z = 0;
    for (std::int64_t c = 0; c < cols; ++c) m = std::max(m, static_cast<double>(x[r * cols + c]));
    for (std::int64_t c = 0; c < cols; ++c) z += std::exp(x[r * cols + c] - m);
    for (std::int64_t c = 0; c < cols; ++c) out[r * cols + c] = static_cast<T>(std::exp(x[r * cols + c] - m) / z);
  }
}

template <class T>
double logsumexp(const T* x, std::int64_t n, double a = 1.0) {
  double m = -std::numeric_limits<double>::infinity(), z = 0;
  for (std::int64_t c = 0; c < n; ++c) m = std::max(m, a * x[c]);
  for (std::int64_t c = 0; c < n; ++c) z += std::exp(a * x[c] - m);
  return m + std::log(z);
}

// Mean cross-entropy over rows with target >= 0.
template <class T>
double cross_entropy_mean(std::int64_t rows, std::int64_t V, const T* x, const std::int32_t* target) {
  double total = 0;
  std::int64_t count = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (target[r] < 0) continue;
    total += logsumexp(x + r * V, V) - x[r * V + target[r]];
    ++count;
  }
  return count ? total / static_cast<double>(count) : 0.0;
}

// Mean over rows with target >= 0 of KL(softmax(t/temp) || softmax(s/temp)).
template <class T>
double kl_mean(std::int64_t rows, std::int64_t V, const T* s, const T* t, const std::int32_t* target, double temp) {
  double total = 0;
  std::int64_t count = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (target[r] < 0) continue;
    const double ls = logsumexp(s + r * V, V, 1.0 / temp), lt = logsumexp(t + r * V, V, 1.0 / temp);
    for (std::int64_t c = 0; c < V; ++c) {
      const double lpt = t[r * V + c] / temp - lt, lps = s[r * V + c] / temp - ls;
      total += std::exp(lpt) * (lpt - lps);
    }
    ++count;
  }
  return count ? total / static_cast<double>(count) : 0.0;
}

template <class T>
void swiglu(std::int64_t rows, std::int64_t cols, const T* g, const T* u, const T* gate, T* out) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const double x = g[r * cols + c];
      const double v = x / (1.0 + std::exp(-x)) * u[r * cols + c] * (gate ? gate[c] : 1.0);
      out[r * cols + c] = static_cast<T>(v);
    }
}

// Attention by its definition, one query at a time (see tensor/kernels/attention.h).
template <class T>
void attention(std::int64_t B, std::int64_t Tn, std::int64_t Hq, std::int64_t Hkv, std::int64_t dh, const T* q,
               const T* k, const T* v, const std::int32_t* pads, const std::int32_t* kv_map, const T* gates,
               double theta, T* out) {
  const std::int64_t ldq = Hq * dh, ldk = Hkv * dh, half = dh / 2;
  auto rot = [&](const T* x, std::int64_t pos, std::vector<double>& y) {
    y.assign(dh, 0.0);
    for (std::int64_t i = 0; i < half; ++i) {
      const double a = pos * std::pow(theta, -2.0 * i / static_cast<double>(dh));
      y[i] = x[i] * std::cos(a) - x[i + half] * std::sin(a);
      y[i + half] = x[i + half] * std::cos(a) + x[i] * std::sin(a);
    }
  };
  std::vector<double> qi, kj, w;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < Hq; ++h)
      for (std::int64_t i = 0; i < Tn; ++i) {
        T* o = out + (b * Tn + i) * ldq + h * dh;
        if (i < pads[b]) {
          for (std::int64_t c = 0; c < dh; ++c) o[c] = 0;
          continue;
        }
        const std::int64_t g = kv_map[h];
        rot(q + (b * Tn + i) * ldq + h * dh, i - pads[b], qi);
        w.assign(Tn, 0.0);
        double m = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = pads[b]; j <= i; ++j) {
          rot(k + (b * Tn + j) * ldk + g * dh, j - pads[b], kj);
          double s = 0;
          for (std::int64_t c = 0; c < dh; ++c) s += qi[c] * kj[c];
          w[j] = s / std::sqrt(static_cast<double>(dh));
          m = std::max(m, w[j]);
        }
        double z = 0;
        for (std::int64_t j = pads[b]; j <= i; ++j) z += (w[j] = std::exp(w[j] - m));
        for (std::int64_t c = 0; c < dh; ++c) {
          double acc = 0;
          for (std::int64_t j = pads[b]; j <= i; ++j) acc += w[j] / z * v[(b * Tn + j) * ldk + g * dh + c];
          o[c] = static_cast<T>(acc * (gates ? gates[h] : 1.0));
        }
      }
}

}  // namespace prunerec::kernels::ref
