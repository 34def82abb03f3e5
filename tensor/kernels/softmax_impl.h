// The kernels of tensor/kernels/softmax.h, included twice by softmax.cc: into namespace
// kernels::baseline and, compiled for AVX2 + FMA, into kernels::avx2 (Note [kernel
// dispatch] in tensor/kernels/isa.h). No include guard, no includes, no namespace of its own.

namespace {

template <class T>
T row_max(const T* x, std::int64_t n) {
  return lane_max(x, n);
}

// out[i] = exp(x[i] * a - m) for i < n; returns the sum (out may alias x).
template <class T>
T exp_shifted(const T* x, std::int64_t n, T a, T m, T* out) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = exp_fast(x[i] * a - m);
  return lane_sum(out, n);
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

// Per-thread scratch rows for the kernels below (V floats each, reused across calls).
template <class T>
T* scratch_row(int which, std::int64_t n) {
  thread_local std::vector<T> rows[3];
  if (static_cast<std::int64_t>(rows[which].size()) < n) rows[which].resize(static_cast<std::size_t>(n));
  return rows[which].data();
}

template <class T>
void log_softmax_rows(std::int64_t rows, std::int64_t cols, const T* x, T* out) {
  parallel_for(0, rows, row_grain(cols), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * cols;
      T* o = out + r * cols;
      const T m = row_max(xr, cols);
      const T lse = m + std::log(exp_shifted(xr, cols, T(1), m, o));
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
      T* e = dx ? dx + r * V : scratch_row<T>(0, V);  // exp(x - m), in place when dx aliases x
      const T z = exp_shifted(xr, V, T(1), m, e);
      loss[r] = m + std::log(z) - x_target;
      if (dx) {
        const T k = grad_scale / z;
        for (std::int64_t c = 0; c < V; ++c) e[c] *= k;
        e[tgt] -= grad_scale;
      }
    }
  });
}

// Note [distillation row]: with A = exp(s - ms), B = exp((s - ms)/T), C = exp((t - mt)/T)
// and their sums zs, zst, zt:  p_s = A/zs, p_s^T = B/zst, p_t = C/zt, and
//   KL(p_t || p_s^T) = sum_c p_t(c) ((t_c - mt)/T - (s_c - ms)/T) + log zst - log zt
//   d loss / d s_c   = alpha (p_s(c) - [c = target]) + (1 - alpha) T (p_s^T(c) - p_t(c)).
// Three exponentials per logit, every sum over explicit lanes (Note [no fast-math]).
template <class T>
void distill_rows(std::int64_t rows, std::int64_t V, const T* s, const T* t, const std::int32_t* target, T alpha,
                  T temp, T* loss, T* ce_out, T* kl_out, T* ds, T grad_scale) {
  const T inv_temp = T(1) / temp;
  parallel_for(0, rows, row_grain(V), [&](std::int64_t lo, std::int64_t hi) {
    T* A = scratch_row<T>(0, V);
    T* B = scratch_row<T>(1, V);
    T* C = scratch_row<T>(2, V);
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
      const T ms = row_max(sr, V), mt = row_max(tr, V);
      const T zs = exp_shifted(sr, V, T(1), ms, A);
      const T zst = exp_shifted(sr, V, inv_temp, ms * inv_temp, B);
      const T zt = exp_shifted(tr, V, inv_temp, mt * inv_temp, C);
      const T inv_zt = T(1) / zt;
      const T ce = ms + std::log(zs) - sr[tgt];  // read before ds (which may alias s) is written
      // The KL terms need a row we may overwrite: ds when given (rewritten below), else A.
      T* terms = ds ? ds + r * V : A;
      for (std::int64_t c = 0; c < V; ++c) terms[c] = C[c] * inv_zt * ((tr[c] - mt) - (sr[c] - ms)) * inv_temp;
      const T kl = lane_sum(terms, V) + std::log(zst) - std::log(zt);
      loss[r] = alpha * ce + (T(1) - alpha) * temp * temp * kl;
      if (ce_out) ce_out[r] = ce;
      if (kl_out) kl_out[r] = kl;
      if (ds) {
        // A still holds exp(s - ms): ds was used for the KL terms.
        const T a = alpha * grad_scale / zs, b = (T(1) - alpha) * temp * grad_scale;
        const T inv_zst = T(1) / zst;
        T* d = ds + r * V;
        for (std::int64_t c = 0; c < V; ++c) d[c] = a * A[c] + b * (B[c] * inv_zst - C[c] * inv_zt);
        d[tgt] -= alpha * grad_scale;
      }
    }
  });
}
