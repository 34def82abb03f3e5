// The kernels of tensor/kernels/elementwise.h, included twice by elementwise.cc: into namespace
// kernels::baseline and, compiled for AVX2 + FMA, into kernels::avx2 (Note [kernel
// dispatch] in tensor/kernels/isa.h). No include guard, no includes, no namespace of its own.

namespace {
constexpr std::int64_t kGrain = 1 << 14;  // elements per piece: ~10 us of work
}

template <class T>
void add(std::int64_t n, const T* a, const T* b, T* out) {
  parallel_for(0, n, kGrain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) out[i] = a[i] + b[i];
  });
}

template <class T>
void axpy(std::int64_t n, T alpha, const T* x, T* y) {
  parallel_for(0, n, kGrain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) y[i] += alpha * x[i];
  });
}

template <class T>
void scale(std::int64_t n, T alpha, const T* x, T* out) {
  parallel_for(0, n, kGrain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) out[i] = alpha * x[i];
  });
}

template <class T>
void mul(std::int64_t n, const T* a, const T* b, T* out) {
  parallel_for(0, n, kGrain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) out[i] = a[i] * b[i];
  });
}

template <class T>
void fill(std::int64_t n, T value, T* out) {
  parallel_for(0, n, kGrain, [&](std::int64_t lo, std::int64_t hi) { std::fill(out + lo, out + hi, value); });
}

template <class T>
void copy(std::int64_t n, const T* x, T* out) {
  parallel_for(0, n, kGrain, [&](std::int64_t lo, std::int64_t hi) { std::copy(x + lo, x + hi, out + lo); });
}

template <class T>
void mul_cols(std::int64_t rows, std::int64_t cols, const T* x, const T* colscale, T* out) {
  parallel_for(0, rows, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(cols, 1)),
               [&](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t r = lo; r < hi; ++r)
                   for (std::int64_t c = 0; c < cols; ++c) out[r * cols + c] = x[r * cols + c] * colscale[c];
               });
}

template <class T>
void swiglu_forward(std::int64_t rows, std::int64_t cols, const T* g, const T* u, const T* gate, T* out) {
  parallel_for(0, rows, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(cols, 1)),
               [&](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t r = lo; r < hi; ++r) {
                   const T* gr = g + r * cols;
                   const T* ur = u + r * cols;
                   T* o = out + r * cols;
                   for (std::int64_t c = 0; c < cols; ++c) o[c] = gr[c] * sigmoid(gr[c]) * ur[c];
                   if (gate)
                     for (std::int64_t c = 0; c < cols; ++c) o[c] *= gate[c];
                 }
               });
}

namespace {
// One row of the SwiGLU backward with the optional outputs and gate fixed at compile
// time, so the inner loop has no branches and vectorises.
template <class T, bool kDg, bool kDu, bool kGate>
void swiglu_backward_row(std::int64_t cols, const T* g, const T* u, const T* gate, const T* dout, T* dg, T* du) {
  for (std::int64_t c = 0; c < cols; ++c) {
    const T x = g[c];
    const T s = sigmoid(x);
    T d = dout[c];
    if constexpr (kGate) d *= gate[c];
    if constexpr (kDu) du[c] = d * x * s;                                  // d/du = silu(g)
    if constexpr (kDg) dg[c] = d * u[c] * s * (T(1) + x * (T(1) - s));     // silu'(g)
  }
}

template <class T, bool kGate>
void swiglu_backward_rows(std::int64_t lo, std::int64_t hi, std::int64_t cols, const T* g, const T* u, const T* gate,
                          const T* dout, T* dg, T* du) {
  for (std::int64_t r = lo; r < hi; ++r) {
    const std::int64_t o = r * cols;
    if (dg && du)
      swiglu_backward_row<T, true, true, kGate>(cols, g + o, u + o, gate, dout + o, dg + o, du + o);
    else if (dg)
      swiglu_backward_row<T, true, false, kGate>(cols, g + o, u + o, gate, dout + o, dg + o, nullptr);
    else if (du)
      swiglu_backward_row<T, false, true, kGate>(cols, g + o, u + o, gate, dout + o, nullptr, du + o);
  }
}
}  // namespace

template <class T>
void swiglu_backward(std::int64_t rows, std::int64_t cols, const T* g, const T* u, const T* gate, const T* dout,
                     T* dg, T* du) {
  parallel_for(0, rows, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(cols, 1)),
               [&](std::int64_t lo, std::int64_t hi) {
                 if (gate)
                   swiglu_backward_rows<T, true>(lo, hi, cols, g, u, gate, dout, dg, du);
                 else
                   swiglu_backward_rows<T, false>(lo, hi, cols, g, u, gate, dout, dg, du);
               });
}

template <class T>
void dropout_apply_rows(std::int64_t rows, std::int64_t cols, std::int64_t stride, std::int64_t first, float p,
                        std::uint64_t seed, std::uint64_t stream, const T* x, T* out) {
  const T keep_scale = T(1) / (T(1) - static_cast<T>(p));
  // One Philox block gives 128 random bits: eight 16-bit draws, so draw g is lane g % 8 of
  // block g / 8. An element is dropped when its draw is below p * 65536 (p is thus rounded
  // to a multiple of 1/65536).
  const std::uint32_t threshold = static_cast<std::uint32_t>(p * 65536.0f + 0.5f);
  // Elements [0, count) of a run whose first element takes draw g.
  auto apply_run = [&](std::int64_t g, std::int64_t count, const T* xi, T* o) {
    for (std::int64_t i = 0; i < count;) {
      const auto w = philox4x32(seed, stream, static_cast<std::uint64_t>((g + i) / 8));
      const int lane0 = static_cast<int>((g + i) % 8);
      const int lanes = static_cast<int>(std::min<std::int64_t>(8 - lane0, count - i));
      for (int k = lane0; k < lane0 + lanes; ++k, ++i) {
        const std::uint32_t draw = (w[k / 2] >> (16 * (k % 2))) & 0xFFFFu;
        o[i] = draw >= threshold ? xi[i] * keep_scale : T(0);
      }
    }
  };
  parallel_for(0, rows * cols, kGrain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi;) {  // the piece's part of each row it touches
      const std::int64_t r = i / cols, c = i % cols, count = std::min(hi - i, cols - c);
      apply_run(first + r * stride + c, count, x + i, out + i);
      i += count;
    }
  });
}

template <class T>
double sum(std::int64_t n, const T* x) {
  return parallel_sum(n, kGrain, [&](std::int64_t lo, std::int64_t hi) {
    double s = 0;
    for (std::int64_t i = lo; i < hi; ++i) s += x[i];
    return s;
  });
}

template <class T>
double sum_squares(std::int64_t n, const T* x) {
  return parallel_sum(n, kGrain, [&](std::int64_t lo, std::int64_t hi) {
    double s = 0;
    for (std::int64_t i = lo; i < hi; ++i) s += static_cast<double>(x[i]) * x[i];
    return s;
  });
}

template <class T>
void sum_rows(std::int64_t rows, std::int64_t cols, const T* x, T* out, bool accumulate) {
  // Fixed row chunks give partial column sums, added in chunk order (deterministic).
  const std::int64_t chunk = std::max<std::int64_t>(16, kGrain / std::max<std::int64_t>(cols, 1));
  const std::int64_t pieces = std::max<std::int64_t>(1, (rows + chunk - 1) / chunk);
  std::vector<T> partial(static_cast<std::size_t>(pieces * cols), T(0));
  parallel_for(0, pieces, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p) {
      T* acc = partial.data() + p * cols;
      for (std::int64_t r = p * chunk; r < std::min(rows, (p + 1) * chunk); ++r)
        for (std::int64_t c = 0; c < cols; ++c) acc[c] += x[r * cols + c];
    }
  });
  for (std::int64_t c = 0; c < cols; ++c) {
    T s = accumulate ? out[c] : T(0);
    for (std::int64_t p = 0; p < pieces; ++p) s += partial[p * cols + c];
    out[c] = s;
  }
}

template <class T>
bool all_finite(std::int64_t n, const T* x) {
  const double bad = parallel_sum(n, kGrain, [&](std::int64_t lo, std::int64_t hi) {
    bool ok = true;
    for (std::int64_t i = lo; i < hi; ++i) ok &= std::isfinite(x[i]);
    return ok ? 0.0 : 1.0;
  });
  return bad == 0.0;
}
