// The kernels of tensor/kernels/norm.h, included twice by norm.cc: into namespace
// kernels::baseline and, compiled for AVX2 + FMA, into kernels::avx2 (Note [kernel
// dispatch] in tensor/kernels/isa.h). No include guard, no includes, no namespace of its own.

template <class T>
void rmsnorm_forward(std::int64_t rows, std::int64_t cols, const T* x, const T* w, T eps, T* y, T* inv_rms) {
  parallel_for(0, rows, 32, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * cols;
      T ss = 0;
      for (std::int64_t c = 0; c < cols; ++c) ss += xr[c] * xr[c];
      const T inv = T(1) / std::sqrt(ss / static_cast<T>(cols) + eps);
      inv_rms[r] = inv;
      T* yr = y + r * cols;
      for (std::int64_t c = 0; c < cols; ++c) yr[c] = xr[c] * inv * w[c];
    }
  });
}

template <class T>
void rmsnorm_backward(std::int64_t rows, std::int64_t cols, const T* x, const T* w, const T* inv_rms, const T* dy,
                      T* dx, T* dw) {
  constexpr std::int64_t kChunk = 64;  // rows per partial dw (fixed: thread-count independent)
  const std::int64_t pieces = (rows + kChunk - 1) / kChunk;
  std::vector<T> partial(dw ? static_cast<std::size_t>(pieces * cols) : 0, T(0));
  parallel_for(0, pieces, 1, [&](std::int64_t plo, std::int64_t phi) {
    for (std::int64_t p = plo; p < phi; ++p) {
      for (std::int64_t r = p * kChunk; r < std::min(rows, (p + 1) * kChunk); ++r) {
        const T* xr = x + r * cols;
        const T* dyr = dy + r * cols;
        const T inv = inv_rms[r];
        if (dx) {
          T dot = 0;
          for (std::int64_t c = 0; c < cols; ++c) dot += dyr[c] * w[c] * xr[c];
          const T k = inv * inv * inv * dot / static_cast<T>(cols);
          T* dxr = dx + r * cols;
          for (std::int64_t c = 0; c < cols; ++c) dxr[c] = inv * dyr[c] * w[c] - xr[c] * k;
        }
        if (dw) {
          T* acc = partial.data() + p * cols;
          for (std::int64_t c = 0; c < cols; ++c) acc[c] += dyr[c] * xr[c] * inv;
        }
      }
    }
  });
  if (dw)
    for (std::int64_t c = 0; c < cols; ++c) {
      T s = dw[c];
      for (std::int64_t p = 0; p < pieces; ++p) s += partial[p * cols + c];
      dw[c] = s;
    }
}
