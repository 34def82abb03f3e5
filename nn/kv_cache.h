// Incremental decoding: keys and values of every layer kept across steps, so generating
// token t costs one position's projections and MLP plus attention over t cached positions
// instead of a forward pass over the whole sequence. Built for beam search (issue 15's
// title mode): rows are beams, and reorder() makes row b continue beam beam_index[b].
//
//   nn::KVCache cache;
//   Tensor h = cache.prefill(net, prompt_ids, 64);      // [B, T] left-padded with -1 -> [B, d]
//   for (...) {
//     Tensor logits = net.logits(ag::Var(h)).value();   // [B, V]
//     ... choose next ids [B] (i32), and for beams the parent row of each new beam ...
//     cache.reorder(parent_rows);                       // optional; any number of rows
//     h = cache.step(net, next_ids);                    // [B, d]
//   }
//
// Note [cached decoding]: per layer the cache holds keys already rotated by RoPE and values,
// in buffers [P, C, Hkv*dh] of P physical rows and capacity C positions, allocated by
// prefill and grown by doubling (an amortised O(1) copy per token; prefill reserves the
// caller's expected number of new tokens, so generation never grows). A step computes one
// position's k_proj / v_proj, rotates the key once, at its own position, writes both in
// place, and runs Attention::forward_cached (ag::attention_cached): the engine's
// last-position attention reading the cached keys as they are. Keys are never rotated
// again and nothing is copied per token but the new position, so a step costs
// O(prefix) in the attention read and O(1) in everything else (save the row table below,
// O(prefix) int32 per row, 1/(2 * Hkv*dh * layers) of the key and value bytes the
// attention reads). step() computes exactly what the old cache (unrotated keys, rotated
// on every read, whole-cache copies) computed, bit for bit, and what last_hidden()
// computes on the whole sequence up to GEMM rounding (tests/nn/kv_cache_test.cc).
//
// Beams share history through a row table rather than by copying it: logical row b reads
// position j from physical row rows[b, j]. A step writes position t of logical row b into
// physical row b (position t of every physical row is written exactly once, so nothing a
// table still names is overwritten); reorder() only gathers table rows (into a scratch
// table sized with the buffers, then swapped) and pads, and does nothing for the identity
// permutation. We chose this over gathering the cache rows themselves, which copies
// B * prefix * 2 * Hkv*dh values per layer per step (as much traffic as the attention read,
// and beam search almost never keeps the identity order), and over per-position parent
// pointers (an O(B) reorder, but every layer's attention would walk the chains backwards,
// or rebuild the same table each step). A side effect: the prompt is stored once per user,
// not once per beam. The physical rows grow when reorder() asks for more rows than exist
// (the first beam step after a prefill of one row per user). Padding is per logical row
// and moves with it; a beam's whole lineage shares its prompt, hence its padding, so every
// cached key was rotated at the position its readers expect.
//
// Inference only (NoGradGuard inside). Zero-width sub-blocks (Note [zero-width
// sub-blocks]) are skipped as in hidden(). Copies are deep: a copied cache is independent.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/transformer.h"

namespace prunerec::nn {

class KVCache {
 public:
  KVCache() = default;
  KVCache(const KVCache& other);
  KVCache& operator=(const KVCache& other);
  KVCache(KVCache&&) = default;
  KVCache& operator=(KVCache&&) = default;

  // Runs the prompt ids [B, T] (i32, left-padded with -1, T > 0) and keeps every layer's
  // keys and values, with room for reserve_new more positions before the buffers grow;
  // returns the final hidden state at the last position, [B, d].
  Tensor prefill(const Transformer& net, const Tensor& ids, std::int64_t reserve_new = 64);
  // Appends one token per row, next_ids i32 [B], and returns the final hidden state at the
  // new position, [B, d]. ShapeError if nothing was prefilled or B differs.
  Tensor step(const Transformer& net, const Tensor& next_ids);
  // Row b of the cache becomes old row beam_index[b] (any number of rows, repeats allowed),
  // e.g. the surviving beams after a beam-search step.
  void reorder(const std::vector<std::int32_t>& beam_index);

  std::int64_t batch() const { return pads_.defined() ? pads_.size(0) : 0; }
  std::int64_t length() const { return length_; }  // positions cached, padding included
  std::int64_t capacity() const { return rows_.defined() ? rows_.size(1) : 0; }  // before the buffers grow
  std::int64_t physical_rows() const { return rows_.defined() ? rows_.size(0) : 0; }

 private:
  // Reallocates every buffer as [rows, capacity, ..] and copies what is held.
  void grow(std::int64_t rows, std::int64_t capacity);

  std::vector<Tensor> k_, v_;  // per layer [P, C, Hkv*dh], keys rotated; undefined without attention
  Tensor rows_;                // i32 [P, C]: rows_[b, j] = physical row of position j of logical row b < B
  Tensor rows_scratch_;        // i32 [P, C]: reorder() gathers into it, then swaps
  Tensor pads_;                // i32 [B]
  std::int64_t length_ = 0;
};

}  // namespace prunerec::nn
