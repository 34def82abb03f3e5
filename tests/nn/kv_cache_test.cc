// Incremental decoding (nn/kv_cache.h): every step's logits equal those of a full forward
// pass over the whole sequence (left padding, GQA with a custom KV map, a layer without
// an MLP, a gated head included), and reorder() makes rows continue other rows' beams.
#include "nn/kv_cache.h"

#include <gtest/gtest.h>

#include <cmath>

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

}  // namespace
}  // namespace prunerec::nn
