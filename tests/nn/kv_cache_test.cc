// Incremental decoding (nn/kv_cache.h): every step's logits equal those of a full forward
// pass over the whole sequence (left padding, GQA with a custom KV map, a layer without
// an MLP, a gated head included), reorder() makes rows continue other rows' beams, and the
// cache (rotated keys, row table, buffers with capacity) gives the bits of the plain cache
// it replaced (unrotated keys rotated on every read, whole-cache copies), kept below as a
// reference twin.
#include "nn/kv_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "autograd/var.h"

namespace prunerec::nn {
namespace {

pb::ModelConfig config() {
  pb::ModelConfig c;
  c.set_vocab_size(23);
  c.set_hidden(16);
  c.set_head_dim(4);
  c.set_max_len(32);
  c.set_rope_theta(1000.0);
  c.set_init_std(0.3);
  auto add = [&](int h, int kv, int mlp, std::vector<int> map) {
    pb::LayerConfig* L = c.add_layers();
    L->set_num_heads(h);
    L->set_num_kv_heads(kv);
    L->set_mlp_width(mlp);
    for (int g : map) L->add_kv_map(g);
  };
  add(4, 2, 24, {1, 0, 0, 1});
  add(2, 1, 0, {});
  add(3, 3, 8, {});
  return c;
}

// Logits [B, V] of the last position of each row, by a full forward pass.
Tensor full_logits(const Transformer& net, const std::vector<std::vector<std::int32_t>>& rows) {
  std::size_t T = 0;
  for (const auto& r : rows) T = std::max(T, r.size());
  std::vector<std::int32_t> flat;
  for (const auto& r : rows) {
    flat.insert(flat.end(), T - r.size(), -1);
    flat.insert(flat.end(), r.begin(), r.end());
  }
  const Tensor ids = Tensor::from_vector(flat, {static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(T)});
  ag::NoGradGuard no_grad;
  return net.logits(net.hidden(ids, pads_from_ids(ids))).value().select(1, static_cast<std::int64_t>(T) - 1).contiguous();
}

// Largest |a - b| relative to the largest |b|. f32 sums in different orders: the cached
// path multiplies the same rows in [B, d] instead of [B*T, d] GEMMs, so results differ by
// rounding (measured below 1e-6 of the scale).
double rel_diff(const Tensor& a, const Tensor& b) {
  double err = 0, scale = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    err = std::max(err, std::abs(double(a.data<float>()[i]) - b.data<float>()[i]));
    scale = std::max(scale, std::abs(double(b.data<float>()[i])));
  }
  return err / scale;
}

TEST(KVCache, StepsEqualTheFullForwardPass) {
  Transformer net(config(), DType::f32, 3);
  net.block(0).attn().head_gate().data<float>()[2] = 0.0f;  // a masked head
  std::vector<std::vector<std::int32_t>> rows = {{5, 1, 7}, {9}, {2, 2, 3, 4, 20}};
  std::vector<std::int32_t> flat;
  for (const auto& r : rows) {
    flat.insert(flat.end(), 5 - r.size(), -1);
    flat.insert(flat.end(), r.begin(), r.end());
  }
  KVCache cache;
  Tensor h = cache.prefill(net, Tensor::from_vector(flat, {3, 5}));
  ag::NoGradGuard no_grad;
  EXPECT_LE(rel_diff(net.logits(ag::Var(h)).value(), full_logits(net, rows)), 1e-5);
  const std::vector<std::vector<std::int32_t>> next = {{4, 0, 22}, {11, 12, 13}, {1, 1, 1}, {6, 3, 0}};
  for (const auto& ids : next) {
    h = cache.step(net, Tensor::from_vector(ids));
    for (std::size_t b = 0; b < rows.size(); ++b) rows[b].push_back(ids[b]);
    EXPECT_LE(rel_diff(net.logits(ag::Var(h)).value(), full_logits(net, rows)), 1e-5);
  }
  EXPECT_EQ(cache.length(), 9);
}

TEST(KVCache, ReorderContinuesOtherBeams) {
  const Transformer net(config(), DType::f32, 4);
  std::vector<std::vector<std::int32_t>> rows = {{5, 1, 7}, {9, 8, 2}};
  KVCache cache;
  cache.prefill(net, Tensor::from_vector(std::vector<std::int32_t>{5, 1, 7, 9, 8, 2}, {2, 3}));
  cache.reorder({1, 1, 0});  // three beams: two continue row 1, one row 0
  const std::vector<std::vector<std::int32_t>> beams = {{9, 8, 2, 3}, {9, 8, 2, 17}, {5, 1, 7, 3}};
  const Tensor h = cache.step(net, Tensor::from_vector(std::vector<std::int32_t>{3, 17, 3}));
  ag::NoGradGuard no_grad;
  EXPECT_LE(rel_diff(net.logits(ag::Var(h)).value(), full_logits(net, beams)), 1e-5);
  EXPECT_EQ(cache.batch(), 3);
  EXPECT_THROW(cache.reorder({3}), ShapeError);
  EXPECT_THROW(cache.step(net, Tensor::from_vector(std::vector<std::int32_t>{1, 2})), ShapeError);
  EXPECT_THROW(cache.step(net, Tensor::from_vector(std::vector<std::int32_t>{1, 2, 23})), ShapeError);
}

// The cache as first written: per layer the k_proj / v_proj outputs before RoPE [B, T, C],
// grown by a copy per token, reordered by index_select, read by ag::attention_last, which
// rotates every key at every step. The reference for the bit-for-bit test below.
class PlainCache {
 public:
  Tensor prefill(const Transformer& net, const Tensor& ids) {
    ag::NoGradGuard no_grad;
    pads_ = pads_from_ids(ids);
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
    return net.final_norm().forward(ag::Var(x.value().select(1, ids.size(1) - 1).contiguous())).value();
  }
  Tensor step(const Transformer& net, const Tensor& ids) {
    ag::NoGradGuard no_grad;
    ag::Var x = net.embed().forward(ids);
    for (int l = 0; l < net.num_layers(); ++l) {
      const Block& b = net.block(l);
      if (b.attn().num_heads() > 0) {
        const Attention& a = b.attn();
        const ag::Var n = b.attn_norm().forward(x);
        k_[l] = append(k_[l], a.k_proj().forward(n).value());
        v_[l] = append(v_[l], a.v_proj().forward(n).value());
        ag::AttentionArgs args;
        args.head_dim = a.head_dim();
        args.rope_theta = a.rope_theta();
        args.pads = pads_;
        args.kv_map = a.kv_map();
        args.head_gates = a.head_gate();
        x = ag::add(x, a.o_proj().forward(ag::attention_last(a.q_proj().forward(n), ag::Var(k_[l]), ag::Var(v_[l]), args)));
      }
      if (b.mlp().width() > 0) x = ag::add(x, b.mlp().forward(b.mlp_norm().forward(x)));
    }
    return net.final_norm().forward(x).value();
  }
  void reorder(const std::vector<std::int32_t>& beam_index) {
    const Tensor index = Tensor::from_vector(beam_index);
    for (auto* layers : {&k_, &v_})
      for (Tensor& t : *layers)
        if (t.defined()) t = t.index_select(0, index).contiguous();
    pads_ = pads_.index_select(0, index).contiguous();
  }

 private:
  static Tensor append(const Tensor& cache, const Tensor& row) {  // [B, T, C] + [B, C]
    Tensor out = Tensor::empty({cache.size(0), cache.size(1) + 1, cache.size(2)}, cache.dtype());
    out.narrow(1, 0, cache.size(1)).copy_from(cache);
    out.select(1, cache.size(1)).copy_from(row);
    return out;
  }
  std::vector<Tensor> k_, v_;
  Tensor pads_;
};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(), a.nbytes()) == 0;
}

// A beam search's life: a prefill of two padded prompts with room for 2 new tokens (so the
// buffers grow twice), an expansion to five beams (the physical rows grow), reorders that
// shrink, repeat and keep the identity, steps in between; a copied cache goes its own way.
// Every hidden state has the bits of the plain cache's, f32 and f64.
TEST(KVCache, SameBitsAsThePlainCacheThroughReordersAndGrowth) {
  for (DType dtype : {DType::f32, DType::f64}) {
    Transformer net(config(), dtype, 5);
    net.block(0).attn().head_gate().fill(0.5);
    net.block(2).attn().head_gate().set({1}, 0.0);
    const Tensor prompts = Tensor::from_vector(std::vector<std::int32_t>{-1, -1, 4, 9, 2, 2, 8, 1, 0, 13}, {2, 5});
    KVCache cache;
    PlainCache plain;
    ASSERT_TRUE(same_bits(cache.prefill(net, prompts, 2), plain.prefill(net, prompts)));
    EXPECT_EQ(cache.capacity(), 7);
    const std::vector<std::vector<std::int32_t>> orders = {{0, 0, 1, 1, 1}, {4, 0, 0}, {0, 1, 2}, {2, 2, 1, 0}, {3, 1}};
    const std::vector<std::vector<std::int32_t>> tokens = {
        {3, 17, 3, 22, 0}, {5, 5, 6}, {1, 2, 3}, {9, 10, 11, 12}, {7, 8}};
    KVCache copy;
    PlainCache plain_copy;
    for (std::size_t s = 0; s < orders.size(); ++s) {
      cache.reorder(orders[s]);
      plain.reorder(orders[s]);
      const Tensor ids = Tensor::from_vector(tokens[s]);
      EXPECT_TRUE(same_bits(cache.step(net, ids), plain.step(net, ids))) << dtype_name(dtype) << " step " << s;
      if (s == 1) {
        copy = cache;
        plain_copy = plain;
      }
    }
    EXPECT_EQ(cache.length(), 10);
    EXPECT_GE(cache.capacity(), 10);
    EXPECT_EQ(cache.physical_rows(), 5);
    const Tensor ids = Tensor::from_vector(std::vector<std::int32_t>{19, 20, 21});
    EXPECT_TRUE(same_bits(copy.step(net, ids), plain_copy.step(net, ids))) << dtype_name(dtype) << " copy";
  }
}

}  // namespace
}  // namespace prunerec::nn
