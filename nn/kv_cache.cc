#include "nn/kv_cache.h"

namespace prunerec::nn {
namespace {

// [B, T, C] + [B, C] -> [B, T+1, C].
Tensor append_position(const Tensor& cache, const Tensor& row) {
  const std::int64_t B = cache.size(0), T = cache.size(1), C = cache.size(2);
  Tensor out = Tensor::empty({B, T + 1, C}, cache.dtype());
  if (T > 0) out.narrow(1, 0, T).copy_from(cache);
  out.select(1, T).copy_from(row);
  return out;
}

}  // namespace

Tensor KVCache::prefill(const Transformer& net, const Tensor& ids) {
  PR_CHECK(ids.dim() == 2 && ids.size(1) > 0 && ids.dtype() == DType::i32, "KVCache::prefill: ids must be i32 [B, T] "
           "with T > 0, got ", ids.shape_str());
  ag::NoGradGuard no_grad;
  pads_ = pads_from_ids(ids);
  length_ = ids.size(1);
  k_.assign(static_cast<std::size_t>(net.num_layers()), Tensor());
  v_.assign(static_cast<std::size_t>(net.num_layers()), Tensor());
  ag::Var x = net.embed().forward(ids);
  for (int l = 0; l < net.num_layers(); ++l) {
    const Block& b = net.block(l);
    if (b.attn().num_heads() > 0) {
      const ag::Var n = b.attn_norm().forward(x);
      k_[l] = b.attn().k_proj().forward(n).value().contiguous();
      v_[l] = b.attn().v_proj().forward(n).value().contiguous();
      x = ag::add(x, b.attn().forward(n, pads_));
    }
    if (b.mlp().width() > 0) x = ag::add(x, b.mlp().forward(b.mlp_norm().forward(x)));
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
  for (std::int64_t b = 0; b < ids.numel(); ++b)
    PR_CHECK(ids.data<std::int32_t>()[b] >= 0 && ids.data<std::int32_t>()[b] < net.vocab_size(),
             "KVCache::step: token id ", ids.data<std::int32_t>()[b], " in row ", b, " is outside [0, ",
             net.vocab_size(), ")");
  ag::NoGradGuard no_grad;
  ag::Var x = net.embed().forward(ids);  // [B, d]
  for (int l = 0; l < net.num_layers(); ++l) {
    const Block& b = net.block(l);
    if (b.attn().num_heads() > 0) {
      const ag::Var n = b.attn_norm().forward(x);
      k_[l] = append_position(k_[l], b.attn().k_proj().forward(n).value());
      v_[l] = append_position(v_[l], b.attn().v_proj().forward(n).value());
      x = ag::add(x, b.attn().forward_cached(n, k_[l], v_[l], pads_));
    }
    if (b.mlp().width() > 0) x = ag::add(x, b.mlp().forward(b.mlp_norm().forward(x)));
  }
  ++length_;
  return net.final_norm().forward(x).value();
}

void KVCache::reorder(const std::vector<std::int32_t>& beam_index) {
  PR_CHECK(!beam_index.empty(), "KVCache::reorder: no rows");
  for (std::int32_t r : beam_index)
    PR_CHECK(r >= 0 && r < batch(), "KVCache::reorder: row ", r, " is outside [0, ", batch(), ")");
  const Tensor index = Tensor::from_vector(beam_index);
  for (auto& t : k_)
    if (t.defined()) t = t.index_select(0, index).contiguous();
  for (auto& t : v_)
    if (t.defined()) t = t.index_select(0, index).contiguous();
  pads_ = pads_.index_select(0, index).contiguous();
}

}  // namespace prunerec::nn
