// Incremental decoding: keys and values of every layer kept across steps, so generating
// token t costs one position's projections and MLP plus attention over t cached positions
// instead of a forward pass over the whole sequence. Built for beam search (issue 15's
// title mode): rows are beams, and reorder() makes row b continue beam beam_index[b].
//
//   nn::KVCache cache;
//   Tensor h = cache.prefill(net, prompt_ids);          // [B, T] left-padded with -1 -> [B, d]
//   for (...) {
//     Tensor logits = net.logits(ag::Var(h)).value();   // [B, V]
//     ... choose next ids [B] (i32), and for beams the parent row of each new beam ...
//     cache.reorder(parent_rows);                       // optional
//     h = cache.step(net, next_ids);                    // [B, d]
//   }
//
// Note [cached decoding]: the cache holds each layer's k_proj / v_proj outputs before RoPE,
// [B, T, Hkv*dh], and the rows' leading padding. A step appends one position and runs
// Attention::forward_cached, which is the engine's last-position attention
// (ag::attention_last: RoPE by position t - pad, causal, GQA map, head gates) over the
// cached keys, so step() computes exactly what last_hidden() computes on the whole
// sequence (tests/nn/kv_cache_test.cc checks the logits). Inference only (NoGradGuard
// inside). Zero-width sub-blocks (Note [zero-width sub-blocks]) are skipped as in hidden().
#pragma once

#include <cstdint>
#include <vector>

#include "nn/transformer.h"

namespace prunerec::nn {

class KVCache {
 public:
  // Runs the prompt ids [B, T] (i32, left-padded with -1, T > 0) and keeps every layer's
  // keys and values; returns the final hidden state at the last position, [B, d].
  Tensor prefill(const Transformer& net, const Tensor& ids);
  // Appends one token per row, next_ids i32 [B], and returns the final hidden state at the
  // new position, [B, d]. ShapeError if nothing was prefilled or B differs.
  Tensor step(const Transformer& net, const Tensor& next_ids);
  // Row b of the cache becomes old row beam_index[b] (any number of rows, repeats allowed),
  // e.g. the surviving beams after a beam-search step.
  void reorder(const std::vector<std::int32_t>& beam_index);

  std::int64_t batch() const { return pads_.defined() ? pads_.size(0) : 0; }
  std::int64_t length() const { return length_; }  // positions cached, padding included

 private:
  std::vector<Tensor> k_, v_;  // per layer [B, T, Hkv*dh]; undefined for layers without attention
  Tensor pads_;                // i32 [B]
  std::int64_t length_ = 0;
};

}  // namespace prunerec::nn
