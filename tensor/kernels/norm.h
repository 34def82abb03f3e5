// RMSNorm: y[r,:] = x[r,:] * inv_rms[r] * w,  inv_rms[r] = 1 / sqrt(mean_c x[r,c]^2 + eps).
#pragma once

#include <cstdint>

namespace prunerec::kernels {

// inv_rms (rows) is written for the backward.
template <class T>
void rmsnorm_forward(std::int64_t rows, std::int64_t cols, const T* x, const T* w, T eps, T* y, T* inv_rms);

// dx = inv_rms * (dy*w) - x * inv_rms^3 / cols * sum_c(dy*w*x);   dw (+)= sum_r dy * x * inv_rms.
// dx or dw may be null. dw accumulates (callers zero it first when needed); the row sum is
// chunked and combined in order, so it is deterministic.
template <class T>
void rmsnorm_backward(std::int64_t rows, std::int64_t cols, const T* x, const T* w, const T* inv_rms,
                      const T* dy, T* dx, T* dw);

}  // namespace prunerec::kernels
