// Element-wise kernels on raw contiguous pointers, parallel over fixed pieces (each
// element has one writer, so results never depend on the thread count).
//
// Shapes are given as counts; "rows x cols" kernels are row-major.
#pragma once

#include <cstdint>

namespace prunerec::kernels {

template <class T> void add(std::int64_t n, const T* a, const T* b, T* out);           // out = a + b
template <class T> void axpy(std::int64_t n, T alpha, const T* x, T* y);               // y += alpha x
template <class T> void scale(std::int64_t n, T alpha, const T* x, T* out);            // out = alpha x
template <class T> void mul(std::int64_t n, const T* a, const T* b, T* out);           // out = a * b
template <class T> void fill(std::int64_t n, T value, T* out);
template <class T> void copy(std::int64_t n, const T* x, T* out);

// out[r,c] = x[r,c] * colscale[c]           (rows x cols)
template <class T> void mul_cols(std::int64_t rows, std::int64_t cols, const T* x, const T* colscale, T* out);

// SwiGLU with per-channel gates:  out[r,c] = silu(g[r,c]) * u[r,c] * gate[c]  (gate may be null = 1)
template <class T>
void swiglu_forward(std::int64_t rows, std::int64_t cols, const T* g, const T* u, const T* gate, T* out);
// Its backward: dg, du from dout (either output may be null = not needed).
template <class T>
void swiglu_backward(std::int64_t rows, std::int64_t cols, const T* g, const T* u, const T* gate,
                     const T* dout, T* dg, T* du);

// Inverted dropout with a counter-based mask: element i is kept when its 16-bit Philox
// draw i (lane i % 8 of block i / 8 of (seed, stream)) is >= p * 65536, and scaled by
// 1 / (1 - p). The backward regenerates the mask from the same (seed, stream), so no mask
// is stored.
template <class T>
void dropout_apply(std::int64_t n, float p, std::uint64_t seed, std::uint64_t stream, const T* x, T* out);
// The same masks read at a placement in a larger tensor: element (r, c) of x [rows, cols]
// takes draw first + r * stride + c (stride >= cols). dropout_apply(n, ...) is
// (1, n, n, 0); Note [global dropout masks] in nn/transformer.h says what it is for.
template <class T>
void dropout_apply_rows(std::int64_t rows, std::int64_t cols, std::int64_t stride, std::int64_t first, float p,
                        std::uint64_t seed, std::uint64_t stream, const T* x, T* out);

// Deterministic sums (fixed chunking, in-order combination).
template <class T> double sum(std::int64_t n, const T* x);
template <class T> double sum_squares(std::int64_t n, const T* x);
// out[c] (+)= sum_r x[r,c]; accumulate adds into out instead of overwriting.
template <class T>
void sum_rows(std::int64_t rows, std::int64_t cols, const T* x, T* out, bool accumulate);

// True when every element is finite.
template <class T> bool all_finite(std::int64_t n, const T* x);

}  // namespace prunerec::kernels
