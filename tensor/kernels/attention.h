// Fused causal self-attention with RoPE, left padding, grouped-query attention through an
// explicit query-to-KV-head map, and per-head output gates.
//
// Layout (token-major, as produced by the q/k/v projections):
//   q   [B, T, Hq*dh]    head h is columns [h*dh, (h+1)*dh)
//   k,v [B, T, Hkv*dh]
//   out [B, T, Hq*dh]    out[b,i,h] = gate[h] * sum_j softmax_j(scale * rope(q_i).rope(k_j)) v_j
//   lse [B, Hq, T]       log-sum-exp of each softmax row, saved for the backward
// Row b has pads[b] leading padding tokens: its positions are t - pads[b], query i sees
// keys j with pads[b] <= j <= i, and padding query rows produce exact zeros.
//
// Note [attention parallelism]: work is split over (batch row, KV head) pairs; a task
// handles every query head mapped to its KV head, so the gradients of a shared K/V head
// are summed inside one task in head order: deterministic and free of write conflicts.
// Score matrices are materialised per task ([T, T] is small for recommendation
// histories) and computed with single-threaded GEMMs; the backward recomputes the
// probabilities from q, k and lse instead of storing them.
#pragma once

#include <cstdint>

#include "tensor/kernels/rope.h"

namespace prunerec::kernels {

struct AttentionDims {
  std::int64_t B = 0, T = 0, Hq = 0, Hkv = 0, dh = 0;
};

template <class T>
void attention_forward(const AttentionDims& d, const T* q, const T* k, const T* v, const std::int32_t* pads,
                       const std::int32_t* kv_map, const T* gates, const RopeTable<T>& rope, T scale, T* out, T* lse);

// Inference only: the output at each row's last position (T-1) alone, for scoring the next
// item. q_last [B, Hq*dh] is the query at that position; k, v are the full [B, T, Hkv*dh];
// out_last [B, Hq*dh] equals row T-1 of attention_forward's out (a row of all padding gives
// zeros). Costs O(T) per head instead of O(T^2), and lets the caller skip the query and
// output projections and the MLP of the other positions in the last layer
// (Note [last-position inference] in nn/transformer.cc).
template <class T>
void attention_forward_last(const AttentionDims& d, const T* q_last, const T* k, const T* v,
                            const std::int32_t* pads, const std::int32_t* kv_map, const T* gates,
                            const RopeTable<T>& rope, T scale, T* out_last);

// Inference only, incremental decoding over a cache of keys stored already rotated
// (Note [cached decoding] in nn/kv_cache.h). The cache holds P physical rows of `capacity`
// positions: k_rot, v [P, capacity, Hkv*dh]; logical row b reads position j (pads[b] <= j
// < T) from physical row rows[b * rows_ld + j]. k_rot at (r, j) is the key rotated by RoPE
// at position j - pads[b]. q_last [B, Hq*dh] is the query at position T-1 before RoPE;
// out_last [B, Hq*dh]. With the keys gathered back into [B, T, Hkv*dh] before rotation,
// the result equals attention_forward_last's bit for bit: the same rotation, dot products
// and sums in the same order (attend_newest in attention_impl.h), none of the key rotations.
template <class T>
void attention_decode(const AttentionDims& d, const T* q_last, const T* k_rot, const T* v, std::int64_t capacity,
                      const std::int32_t* rows, std::int64_t rows_ld, const std::int32_t* pads,
                      const std::int32_t* kv_map, const T* gates, const RopeTable<T>& rope, T scale, T* out_last);

// Gradients of sum(out * dout) with respect to q, k and v (written, not accumulated).
template <class T>
void attention_backward(const AttentionDims& d, const T* q, const T* k, const T* v, const std::int32_t* pads,
                        const std::int32_t* kv_map, const T* gates, const RopeTable<T>& rope, T scale, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv);

}  // namespace prunerec::kernels
