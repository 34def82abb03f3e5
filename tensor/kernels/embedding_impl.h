// The kernels of tensor/kernels/embedding.h, included twice by embedding.cc: into namespace
// kernels::baseline and, compiled for AVX2 + FMA, into kernels::avx2 (Note [kernel
// dispatch] in tensor/kernels/isa.h). No include guard, no includes, no namespace of its own.

template <class T>
void embedding_gather(std::int64_t n, std::int64_t d, const T* table, const std::int32_t* ids, T* out) {
  parallel_for(0, n, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(d, 1)), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      T* o = out + i * d;
      if (ids[i] < 0)
        std::fill(o, o + d, T(0));
      else
        std::copy(table + static_cast<std::int64_t>(ids[i]) * d, table + (static_cast<std::int64_t>(ids[i]) + 1) * d, o);
    }
  });
}

template <class T>
void embedding_scatter_add(std::int64_t n, std::int64_t d, std::int64_t V, const std::int32_t* ids, const T* dout,
                           T* dtable) {
  constexpr std::int64_t kRowsPerTask = 1024;  // fixed ranges: thread-count independent
  parallel_for(0, (V + kRowsPerTask - 1) / kRowsPerTask, 1, [&](std::int64_t lo, std::int64_t hi) {
    const std::int64_t v0 = lo * kRowsPerTask, v1 = std::min(V, hi * kRowsPerTask);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t v = ids[i];
      if (v < v0 || v >= v1) continue;
      T* row = dtable + v * d;
      const T* g = dout + i * d;
      for (std::int64_t c = 0; c < d; ++c) row[c] += g[c];
    }
  });
}
