// Row-wise softmax and the fused losses over logits (rows x V, row-major).
//
// Note [fused losses]: cross-entropy and distillation write their gradient with respect
// to the logits in the same pass as the loss (the loss is a scalar, so d loss / d logits
// is known up to the upstream factor, which the autograd op applies). Rows whose target
// is negative (the ignore index) contribute nothing and get a zero gradient.
#pragma once

#include <cstdint>

namespace prunerec::kernels {

template <class T> void softmax_rows(std::int64_t rows, std::int64_t cols, const T* x, T* out);
template <class T> void log_softmax_rows(std::int64_t rows, std::int64_t cols, const T* x, T* out);

// Per-row cross-entropy: loss[r] = logsumexp(x[r]) - x[r, target[r]] (0 where target < 0).
// If dx is not null, dx[r] = (softmax(x[r]) - onehot(target[r])) * grad_scale (0 where
// ignored). dx may alias x (in place). Targets must be < V (callers check).
template <class T>
void cross_entropy_rows(std::int64_t rows, std::int64_t V, const T* x, const std::int32_t* target, T* loss,
                        T* dx, T grad_scale);

// Per-row distillation loss between student logits s and teacher logits t:
//   loss[r] = alpha * CE(s[r], target[r]) + (1 - alpha) * temp^2 * KL(softmax(t/temp) || softmax(s/temp))
// and, if ds is not null, ds[r] = d loss[r] / d s[r] * grad_scale. With alpha = 0 the
// target is only used for the ignore mask. ce and kl (per row, may be null) report the
// two parts separately. ds may alias s.
template <class T>
void distill_rows(std::int64_t rows, std::int64_t V, const T* s, const T* t, const std::int32_t* target, T alpha,
                  T temp, T* loss, T* ce, T* kl, T* ds, T grad_scale);

}  // namespace prunerec::kernels
