// Plans and surgery: identity, zero-weight units, sliced == freshly built, masked ==
// sliced, optimizer state, uneven checkpoints, bad plans.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "nn/checkpoint.h"
#include "nn/text_proto.h"
#include "prune/surgery.h"
#include "tensor/rng.h"

namespace prunerec::prune {
namespace {

namespace fs = std::filesystem;

pb::ModelConfig config_text(const std::string& text) {
  pb::ModelConfig c;
  nn::parse_text_proto(text, "test", &c);
  return c;
}

// 3 layers, GQA with a non-contiguous map in layer 1, biases, uneven widths.
pb::ModelConfig uneven_config() {
  return config_text(R"(
    vocab_size: 40 hidden: 24 head_dim: 4 max_len: 9
    layers { num_heads: 6 num_kv_heads: 2 mlp_width: 20 }
    layers { num_heads: 4 num_kv_heads: 2 mlp_width: 12 kv_map: [1, 0, 0, 1] }
    layers { num_heads: 2 num_kv_heads: 1 mlp_width: 16 })");
}

struct Input {
  Tensor ids, pads, targets;
};
Input input(std::int64_t V, std::uint64_t seed) {
  const std::vector<int> lengths{9, 6, 2, 9};
  Input in{Tensor::full({4, 9}, -1, DType::i32), Tensor(), Tensor::full({4, 9}, -1, DType::i32)};
  Rng rng(seed);
  for (std::int64_t b = 0; b < 4; ++b)
    for (std::int64_t t = 9 - lengths[b]; t < 9; ++t) {
      in.ids.set({b, t}, static_cast<double>(rng.below(V)));
      in.targets.set({b, t}, static_cast<double>(rng.below(V)));
    }
  in.pads = nn::pads_from_ids(in.ids);
  return in;
}

Tensor logits(const nn::Transformer& m, const Input& in, const nn::ForwardOptions& fo = {}) {
  ag::NoGradGuard ng;
  return m.logits(m.hidden(in.ids, in.pads, fo)).value();
}

pb::PrunePlan plan_text(const std::string& text) {
  pb::PrunePlan p;
  nn::parse_text_proto(text, "plan", &p);
  return p;
}

// Heads {0, 2, 5} of layer 0 (all read KV head 0 or 1), heads {0, 3} of layer 1 (KV heads
// 1 and 1 → only KV head 1 kept), MLP channels of layers 0 and 2, no hidden change.
const char* kHeadsAndMlp = R"(
  layers { keep_all_heads: false kept_heads: [0, 2, 5] keep_all_mlp: false kept_mlp: [1, 4, 7, 19] }
  layers { keep_all_heads: false kept_heads: [0, 3] }
  layers { keep_all_mlp: false kept_mlp: [0, 15] })";

TEST(Surgery, KeepEverythingIsTheIdentityBitForBit) {
  nn::Transformer m(uneven_config(), DType::f32, 3);
  nn::Transformer ref(uneven_config(), DType::f32, 3);
  nn::AdamW opt(m, {});
  const Input in = input(40, 1);
  m.loss(in.ids, in.pads, in.targets).backward();
  opt.clip_and_step(1e-3, 1.0);
  std::map<std::string, Tensor> moments;
  for (const auto& [n, s] : opt.state()) moments[n] = s.exp_avg.clone();
  const Tensor before = logits(m, in);
  const pb::PrunePlan plan = apply_plan(m, pb::PrunePlan(), &opt);
  EXPECT_TRUE(bit_equal(before, logits(m, in)));
  EXPECT_EQ(m.config().SerializeAsString(), nn::normalize_config(m.config()).SerializeAsString());
  for (const auto& [n, s] : opt.state()) EXPECT_TRUE(bit_equal(s.exp_avg, moments.at(n))) << n;
  EXPECT_EQ(plan.kept_hidden_size(), 24);
  EXPECT_EQ(plan.layers(1).kept_kv_heads_size(), 2);
}

// A unit whose outgoing weights are zero contributes nothing: removing it must not change
// the output. Heads: o_proj columns; MLP channels: down_proj columns; a hidden channel:
// zero everywhere it enters (embedding column) and every row that writes it.
TEST(Surgery, RemovingUnitsWithZeroOutgoingWeightsChangesNothing) {
  nn::Transformer m(uneven_config(), DType::f64, 5);
  auto zero_cols = [&](const std::string& name, std::initializer_list<std::int64_t> cols) {
    Tensor w = m.parameter(name).value();
    for (std::int64_t c : cols)
      for (std::int64_t r = 0; r < w.size(0); ++r) w.set({r, c}, 0.0);
  };
  // Layer 0: heads 1, 3, 4 removed (o_proj columns 4..7, 12..19 zero).
  zero_cols("blocks.0.attn.o_proj.weight", {4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 18, 19});
  // Layer 1: heads 1, 2 removed (they read KV head 0, which goes too).
  zero_cols("blocks.1.attn.o_proj.weight", {4, 5, 6, 7, 8, 9, 10, 11});
  // MLP channels: layer 0 keeps {1,4,7,19}, layer 2 keeps {0,15}.
  {
    std::vector<bool> keep0(20, false), keep2(16, false);
    for (int j : {1, 4, 7, 19}) keep0[j] = true;
    for (int j : {0, 15}) keep2[j] = true;
    for (std::int64_t j = 0; j < 20; ++j)
      if (!keep0[j]) zero_cols("blocks.0.mlp.down_proj.weight", {j});
    for (std::int64_t j = 0; j < 16; ++j)
      if (!keep2[j]) zero_cols("blocks.2.mlp.down_proj.weight", {j});
  }
  const Input in = input(40, 2);
  const Tensor before = logits(m, in);
  apply_plan(m, plan_text(kHeadsAndMlp));
  // f64: the sliced model drops exact zeros from every sum; only summation order changes.
  EXPECT_LT(max_abs_diff(logits(m, in), before), 1e-12);
  EXPECT_EQ(m.block(0).attn().num_heads(), 3);
  EXPECT_EQ(m.block(1).attn().num_kv_heads(), 1);
  EXPECT_EQ(m.block(2).mlp().width(), 2);
}

TEST(Surgery, SlicedModelEqualsFreshlyBuiltSmallerModelWithTheSlicedWeights) {
  nn::Transformer m(uneven_config(), DType::f64, 7);
  const pb::PrunePlan plan = plan_text(std::string(kHeadsAndMlp) + R"(
      keep_all_hidden: false kept_hidden: [0, 2, 3, 5, 8, 9, 11, 13, 17, 20, 22, 23]
      keep_all_layers: false kept_layers: [0, 2])");
  apply_plan(m, plan);
  const pb::ModelConfig small = m.config();
  EXPECT_EQ(small.hidden(), 12);
  ASSERT_EQ(small.layers_size(), 2);
  EXPECT_EQ(small.layers(0).num_heads(), 3);
  EXPECT_EQ(small.layers(1).mlp_width(), 2);
  nn::Transformer fresh(small, DType::f64, 99);
  for (const auto& [name, var] : fresh.named_parameters()) {
    ASSERT_EQ(var.shape(), m.parameter(name).shape()) << name;
    Tensor v = var.value();
    v.copy_from(m.parameter(name).value());
  }
  for (auto& [name, buf] : fresh.named_buffers()) buf->copy_from(m.buffer(name));
  const Input in = input(40, 3);
  EXPECT_TRUE(bit_equal(logits(fresh, in), logits(m, in)));
}

TEST(Surgery, MaskedAndSlicedModelsGiveTheSameOutputs) {
  const pb::PrunePlan plan = plan_text(std::string(kHeadsAndMlp) + "keep_all_layers: false kept_layers: [0, 2]");
  nn::Transformer sliced(uneven_config(), DType::f64, 11), masked(uneven_config(), DType::f64, 11);
  apply_plan(sliced, plan);
  const nn::ForwardOptions fo = apply_mask(masked, plan);
  const Input in = input(40, 4);
  // f64: masked units multiply by exact zeros; the sums differ only in order.
  EXPECT_LT(max_abs_diff(logits(masked, in, fo), logits(sliced, in)), 1e-12);
  // Hidden channels cannot be masked under RMSNorm.
  EXPECT_THROW(apply_mask(masked, plan_text("keep_all_hidden: false kept_hidden: [0, 1]")), ConfigError);
}

TEST(Surgery, OptimizerMomentsAreSlicedAndRenamedWithTheirParameters) {
  nn::Transformer m(uneven_config(), DType::f32, 13);
  nn::AdamW opt(m, {});
  const Input in = input(40, 5);
  m.loss(in.ids, in.pads, in.targets).backward();
  opt.clip_and_step(1e-3, 1.0);
  const Tensor up2 = opt.state().at("blocks.2.mlp.up_proj.weight").exp_avg.clone();  // [16, 24]
  apply_plan(m, plan_text(std::string(kHeadsAndMlp) + R"(
      keep_all_hidden: false kept_hidden: [1, 4, 6, 7, 10, 12, 15, 16, 18, 19, 21, 22]
      keep_all_layers: false kept_layers: [1, 2])"), &opt);
  for (const auto& [name, var] : m.named_parameters()) {
    ASSERT_TRUE(opt.state().count(name)) << name;
    EXPECT_EQ(opt.state().at(name).exp_avg.shape(), var.shape()) << name;
    EXPECT_EQ(opt.state().at(name).exp_avg_sq.shape(), var.shape()) << name;
  }
  EXPECT_EQ(opt.state().count("blocks.2.attn.q_proj.weight"), 0u);  // only 2 layers remain
  // Old layer 2 is now layer 1: its up_proj moment keeps MLP rows {0, 15} and the hidden columns.
  const Tensor& moved = opt.state().at("blocks.1.mlp.up_proj.weight").exp_avg;
  ASSERT_EQ(moved.shape(), (Shape{2, 12}));
  EXPECT_EQ(moved.at({1, 3}), up2.at({15, 7}));
  EXPECT_EQ(moved.at({0, 0}), up2.at({0, 1}));
  // Training continues on the pruned model.
  m.zero_grad();
  m.loss(in.ids, in.pads, in.targets).backward();
  opt.clip_and_step(1e-3, 1.0);
}

TEST(Surgery, UnevenPrunedCheckpointsRoundTrip) {
  nn::Transformer m(uneven_config(), DType::f32, 17);
  apply_plan(m, plan_text(std::string(kHeadsAndMlp) + R"(
      keep_all_hidden: false kept_hidden: [0, 1, 2, 3, 5, 8, 13, 21]
      keep_all_layers: false kept_layers: [0, 1])"));
  const fs::path dir = fs::path(::testing::TempDir()) / "prunerec_surgery";
  fs::create_directories(dir);
  const std::string path = (dir / "pruned.prc").string();
  nn::save_model(path, m);
  const nn::LoadedModel l = nn::load_model(path);
  EXPECT_EQ(l.model->config().SerializeAsString(), m.config().SerializeAsString());
  const Input in = input(40, 6);
  EXPECT_TRUE(bit_equal(logits(*l.model, in), logits(m, in)));
  // Parameter counts equal the tensor sizes stored in the file.
  const nn::LoadedCheckpoint raw = nn::read_checkpoint(path);
  std::int64_t stored = 0;
  for (const auto& nt : raw.tensors)
    if (m.has_parameter(nt.name)) stored += nt.tensor.numel();
  EXPECT_EQ(stored, m.num_parameters());
}

TEST(Surgery, BadPlansAreRefusedAndLeaveTheModelUntouched) {
  nn::Transformer m(uneven_config(), DType::f32, 19);
  const Input in = input(40, 7);
  const Tensor before = logits(m, in);
  auto expect_refused = [&](const std::string& text, const std::string& needle) {
    try {
      apply_plan(m, plan_text(text));
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_refused("layers { } layers { }", "2 layer entries for a model with 3");
  expect_refused("layers { keep_all_heads: false kept_heads: [0, 9] } layers { } layers { }", "layer 0 heads: index 9");
  expect_refused("layers { keep_all_heads: false kept_heads: [3, 1] } layers { } layers { }", "ascending");
  expect_refused("keep_all_hidden: false kept_hidden: []", "hidden channels keeps nothing");
  expect_refused("keep_all_layers: false kept_layers: [0, 3]", "layers: index 3");
  expect_refused("layers { keep_all_heads: false kept_heads: [0] kept_kv_heads: [0, 1] } layers { } layers { }",
                 "kept_kv_heads");
  EXPECT_TRUE(bit_equal(before, logits(m, in)));
  m.check_invariants();
}

TEST(Surgery, SubBlocksCanBeRemovedByEmptyingThem) {
  nn::Transformer m(uneven_config(), DType::f64, 23);
  apply_plan(m, plan_text(R"(
    layers { keep_all_heads: false }
    layers { keep_all_mlp: false }
    layers { })"));
  EXPECT_EQ(m.block(0).attn().num_heads(), 0);
  EXPECT_EQ(m.block(0).attn().num_kv_heads(), 0);
  EXPECT_EQ(m.block(1).mlp().width(), 0);
  const Input in = input(40, 8);
  const Tensor out = logits(m, in);
  for (double v : out.to_vector<double>()) ASSERT_TRUE(std::isfinite(v));
  // Same as skipping those sub-blocks in the unpruned model.
  nn::Transformer full(uneven_config(), DType::f64, 23);
  nn::ForwardOptions fo;
  fo.skip_attention = {true, false, false};
  fo.skip_mlp = {false, true, false};
  EXPECT_LT(max_abs_diff(out, logits(full, in, fo)), 1e-12);
}

}  // namespace
}  // namespace prunerec::prune
