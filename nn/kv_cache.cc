#include "nn/kv_cache.h"

#include <algorithm>
#include <utility>

#include "tensor/kernels/rope.h"

namespace prunerec::nn {
namespace {

// dst[i] (Hkv*dh values) = src row i of [n, Hkv*dh] rotated by RoPE at position pos[i], head
// by head: kernels::rope_rotate, the rotation the attention kernels apply to keys, so the
// cached keys are the ones they would compute (Note [cached decoding]).
template <class T>
void rotate_into(const Attention& attn, const T* src, std::int64_t n, const std::int64_t* pos, T* const* dst) {
  const std::int64_t dh = attn.head_dim(), width = attn.num_kv_heads() * dh;
  std::int64_t max_pos = 1;
  for (std::int64_t i = 0; i < n; ++i) max_pos = std::max(max_pos, pos[i] + 1);
  const auto& rope = kernels::cached_rope_table<T>(max_pos, dh, attn.rope_theta());
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t c = 0; c < width; c += dh) kernels::rope_rotate(rope, pos[i], src + i * width + c, dst[i] + c, false);
}

}  // namespace

KVCache::KVCache(const KVCache& other) { *this = other; }

KVCache& KVCache::operator=(const KVCache& other) {
  if (this == &other) return *this;
  auto deep = [](const Tensor& t) { return t.defined() ? t.clone() : Tensor(); };
  k_.clear();
  v_.clear();
  for (const Tensor& t : other.k_) k_.push_back(deep(t));
  for (const Tensor& t : other.v_) v_.push_back(deep(t));
  rows_ = deep(other.rows_);
  rows_scratch_ = deep(other.rows_scratch_);
  pads_ = deep(other.pads_);
  length_ = other.length_;
  return *this;
}

Tensor KVCache::prefill(const Transformer& net, const Tensor& ids, std::int64_t reserve_new) {
  PR_CHECK(ids.dim() == 2 && ids.size(1) > 0 && ids.dtype() == DType::i32, "KVCache::prefill: ids must be i32 [B, T] "
           "with T > 0, got ", ids.shape_str());
  PR_CHECK(reserve_new >= 0, "KVCache::prefill: reserve_new ", reserve_new, " must be >= 0");
  ag::NoGradGuard no_grad;
  const std::int64_t B = ids.size(0), T = ids.size(1), C = T + std::max<std::int64_t>(reserve_new, 1);
  pads_ = pads_from_ids(ids);
  length_ = T;
  k_.assign(static_cast<std::size_t>(net.num_layers()), Tensor());
  v_.assign(static_cast<std::size_t>(net.num_layers()), Tensor());
  rows_ = Tensor::empty({B, C}, DType::i32);
  rows_scratch_ = Tensor::empty({B, C}, DType::i32);
  for (std::int64_t b = 0; b < B; ++b) std::fill_n(rows_.data<std::int32_t>() + b * C, T, static_cast<std::int32_t>(b));
  // Row b's unpadded positions pad..T-1 are RoPE positions 0..T-1-pad (padding positions,
  // never read, are rotated at 0).
  std::vector<std::int64_t> pos;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t j = 0; j < T; ++j) pos.push_back(std::max<std::int64_t>(0, j - pads_.data<std::int32_t>()[b]));
  ag::Var x = net.embed().forward(ids);
  for (int l = 0; l < net.num_layers(); ++l) {
    const Block& blk = net.block(l);
    if (blk.attn().num_heads() > 0) {
      const ag::Var n = blk.attn_norm().forward(x);
      const Tensor k = blk.attn().k_proj().forward(n).value().contiguous();  // [B, T, Hkv*dh]
      const Tensor v = blk.attn().v_proj().forward(n).value();
      const std::int64_t width = k.size(2);
      k_[l] = Tensor::empty({B, C, width}, net.dtype());
      v_[l] = Tensor::empty({B, C, width}, net.dtype());
      v_[l].narrow(1, 0, T).copy_from(v);
      dispatch_floating(net.dtype(), "KVCache::prefill", [&](auto tag) {
        using D = decltype(tag);
        std::vector<D*> dst;
        for (std::int64_t b = 0; b < B; ++b)
          for (std::int64_t j = 0; j < T; ++j) dst.push_back(k_[l].data<D>() + (b * C + j) * width);
        rotate_into<D>(blk.attn(), k.data<D>(), B * T, pos.data(), dst.data());
      });
      x = ag::add(x, blk.attn().forward(n, pads_));
    }
    if (blk.mlp().width() > 0) x = ag::add(x, blk.mlp().forward(blk.mlp_norm().forward(x)));
  }
  const ag::Var last(x.value().select(1, length_ - 1).contiguous());
  return net.final_norm().forward(last).value();
}

Tensor KVCache::step(const Transformer& net, const Tensor& next_ids) {
  PR_CHECK(length_ > 0, "KVCache::step: call prefill first");
  PR_CHECK(next_ids.dim() == 1 && next_ids.size(0) == batch() && next_ids.dtype() == DType::i32,
           "KVCache::step: next_ids must be i32 [", batch(), "], got ", next_ids.shape_str());
  PR_CHECK(static_cast<int>(k_.size()) == net.num_layers(), "KVCache::step: the cache has ", k_.size(),
           " layers, the model ", net.num_layers());
  const Tensor ids = next_ids.contiguous();
  const std::int64_t B = batch();
  for (std::int64_t b = 0; b < B; ++b)
    PR_CHECK(ids.data<std::int32_t>()[b] >= 0 && ids.data<std::int32_t>()[b] < net.vocab_size(),
             "KVCache::step: token id ", ids.data<std::int32_t>()[b], " in row ", b, " is outside [0, ",
             net.vocab_size(), ")");
  ag::NoGradGuard no_grad;
  if (length_ == capacity()) grow(physical_rows(), 2 * capacity());
  const std::int64_t t = length_, C = capacity();
  // Logical row b writes position t into physical row b (Note [cached decoding]).
  std::vector<std::int64_t> pos(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    rows_.data<std::int32_t>()[b * C + t] = static_cast<std::int32_t>(b);
    pos[static_cast<std::size_t>(b)] = t - pads_.data<std::int32_t>()[b];
  }
  const Tensor rows = rows_.narrow(0, 0, B);
  ag::Var x = net.embed().forward(ids);  // [B, d]
  for (int l = 0; l < net.num_layers(); ++l) {
    const Block& blk = net.block(l);
    if (blk.attn().num_heads() > 0) {
      const ag::Var n = blk.attn_norm().forward(x);
      const Tensor k = blk.attn().k_proj().forward(n).value().contiguous();  // [B, Hkv*dh]
      const std::int64_t width = k.size(1);
      v_[l].narrow(0, 0, B).select(1, t).copy_from(blk.attn().v_proj().forward(n).value());
      dispatch_floating(net.dtype(), "KVCache::step", [&](auto tag) {
        using D = decltype(tag);
        std::vector<D*> dst;
        for (std::int64_t b = 0; b < B; ++b) dst.push_back(k_[l].data<D>() + (b * C + t) * width);
        rotate_into<D>(blk.attn(), k.data<D>(), B, pos.data(), dst.data());
      });
      x = ag::add(x, blk.attn().forward_cached(n, k_[l], v_[l], rows, t + 1, pads_));
    }
    if (blk.mlp().width() > 0) x = ag::add(x, blk.mlp().forward(blk.mlp_norm().forward(x)));
  }
  ++length_;
  return net.final_norm().forward(x).value();
}

void KVCache::reorder(const std::vector<std::int32_t>& beam_index) {
  PR_CHECK(!beam_index.empty(), "KVCache::reorder: no rows");
  for (std::int32_t r : beam_index)
    PR_CHECK(r >= 0 && r < batch(), "KVCache::reorder: row ", r, " is outside [0, ", batch(), ")");
  const auto B = static_cast<std::int64_t>(beam_index.size());
  bool identity = B == batch();
  for (std::int64_t b = 0; identity && b < B; ++b) identity = beam_index[static_cast<std::size_t>(b)] == b;
  if (identity) return;
  if (B > physical_rows()) grow(B, capacity());
  const std::int64_t C = capacity();
  const std::int32_t* from = rows_.data<std::int32_t>();
  std::int32_t* to = rows_scratch_.data<std::int32_t>();
  std::vector<std::int32_t> pads(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int32_t parent = beam_index[static_cast<std::size_t>(b)];
    std::copy_n(from + parent * C, length_, to + b * C);
    pads[static_cast<std::size_t>(b)] = pads_.data<std::int32_t>()[parent];
  }
  std::swap(rows_, rows_scratch_);
  pads_ = Tensor::from_vector(pads);
}

void KVCache::grow(std::int64_t rows, std::int64_t capacity) {
  const std::int64_t P = physical_rows(), B = batch();
  auto regrow = [&](Tensor& t, const Shape& shape, std::int64_t held_rows) {
    Tensor bigger = Tensor::empty(shape, t.dtype());
    bigger.narrow(0, 0, held_rows).narrow(1, 0, length_).copy_from(t.narrow(0, 0, held_rows).narrow(1, 0, length_));
    t = bigger;
  };
  for (auto* layers : {&k_, &v_})
    for (Tensor& t : *layers)
      if (t.defined()) regrow(t, {rows, capacity, t.size(2)}, P);
  regrow(rows_, {rows, capacity}, B);
  rows_scratch_ = Tensor::empty({rows, capacity}, DType::i32);
}

}  // namespace prunerec::nn
