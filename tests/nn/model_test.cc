// Transformer, AdamW, schedules and model checkpoints.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "autograd/ops.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/text_proto.h"
#include "nn/transformer.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"

namespace prunerec::nn {
namespace {

namespace fs = std::filesystem;

pb::ModelConfig small_config() {
  pb::ModelConfig c;
  parse_text_proto(R"(
    vocab_size: 50 hidden: 16 head_dim: 4 max_len: 12
    num_layers: 2 layer_defaults { num_heads: 4 num_kv_heads: 2 mlp_width: 24 })",
                   "test", &c);
  return c;
}

// Random left-padded batch: ids [B,T] with row b having lengths[b] real items.
struct Data {
  Tensor ids, targets, pads;
};
Data random_batch(std::int64_t V, const std::vector<int>& lengths, std::int64_t T, std::uint64_t seed) {
  Data d{Tensor::full({static_cast<std::int64_t>(lengths.size()), T}, -1, DType::i32),
         Tensor::full({static_cast<std::int64_t>(lengths.size()), T}, -1, DType::i32), Tensor()};
  Rng rng(seed);
  for (std::size_t b = 0; b < lengths.size(); ++b)
    for (std::int64_t t = T - lengths[b]; t < T; ++t) {
      d.ids.set({static_cast<std::int64_t>(b), t}, static_cast<double>(rng.below(V)));
      d.targets.set({static_cast<std::int64_t>(b), t}, static_cast<double>(rng.below(V)));
    }
  d.pads = pads_from_ids(d.ids);
  return d;
}

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / "prunerec_model_test";
  fs::create_directories(dir);
  return (dir / name).string();
}

TEST(ModelConfig, ShorthandExpandsAndKvMapIsContiguous) {
  const pb::ModelConfig c = normalize_config(small_config());
  ASSERT_EQ(c.layers_size(), 2);
  EXPECT_EQ(std::vector<int>(c.layers(1).kv_map().begin(), c.layers(1).kv_map().end()), (std::vector<int>{0, 0, 1, 1}));
  EXPECT_FALSE(c.has_num_layers());
}

TEST(ModelConfig, InvalidFieldsAreNamed) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    pb::ModelConfig c;
    parse_text_proto(text, "cfg", &c);
    try {
      normalize_config(c);
      ADD_FAILURE() << "no error for " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("vocab_size: 0 hidden: 8 num_layers: 1 layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 4 }",
               "vocab_size");
  expect_error("vocab_size: 5 hidden: 8 head_dim: 3 num_layers: 1 layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 4 }",
               "head_dim");
  expect_error("vocab_size: 5 hidden: 8 layers { num_heads: 3 num_kv_heads: 2 mlp_width: 4 }", "layers[0]");
  expect_error("vocab_size: 5 hidden: 8 layers { num_heads: 2 num_kv_heads: 2 mlp_width: 4 kv_map: [0, 0] }",
               "KV head 1 is read by no query head");
  expect_error("vocab_size: 5 hidden: 8", "num_layers");
  // Every field within its own limit, the product beyond int64: refused, not overflowed.
  expect_error("vocab_size: 5 hidden: 1048576 head_dim: 1048576 num_layers: 4096 "
               "layer_defaults { num_heads: 4096 num_kv_heads: 4096 mlp_width: 4194304 }",
               "beyond the supported 1e12");
}

TEST(ModelConfig, TextFormatErrorsCarryLineAndColumn) {
  pb::ModelConfig c;
  try {
    parse_text_proto("vocab_size: 5\nhiden: 8\n", "model.pbtxt", &c);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.pbtxt:2:"), std::string::npos) << e.what();
  }
}

TEST(Transformer, NamesCountsAndConfigComeFromShapes) {
  Transformer m(small_config(), DType::f32, 1);
  const auto params = m.named_parameters();
  EXPECT_EQ(params.front().first, "embed.weight");
  EXPECT_EQ(params[1].first, "blocks.0.attn_norm.weight");
  EXPECT_EQ(params[2].first, "blocks.0.attn.q_proj.weight");
  EXPECT_EQ(params.back().first, "final_norm.weight");
  EXPECT_TRUE(m.has_parameter("blocks.1.mlp.down_proj.weight"));
  EXPECT_FALSE(m.has_parameter("lm_head.weight"));  // tied by default
  // Non-embedding parameters: per layer 2 norms (16 each), q 16*16+16, k and v 16*8+8,
  // o 16*16, MLP 3*16*24; plus the final norm.
  const std::int64_t per_layer = 2 * 16 + (256 + 16) + 2 * (128 + 8) + 256 + 3 * 16 * 24;
  EXPECT_EQ(m.non_embedding_parameters(), 2 * per_layer + 16);
  EXPECT_EQ(m.non_embedding_parameters(), count_non_embedding_parameters(small_config()));
  EXPECT_EQ(m.embedding_parameters(), 50 * 16);
  EXPECT_EQ(m.config().DebugString(), normalize_config(small_config()).DebugString());
  m.check_invariants();
}

TEST(Transformer, TensorSpecsListExactlyTheModelsTensors) {
  pb::ModelConfig c = small_config();
  c.set_tie_embeddings(false);
  c.mutable_layer_defaults()->set_num_heads(4);
  Transformer m(c, DType::f32, 1);
  std::vector<std::pair<std::string, Shape>> want;
  for (const auto& [n, v] : m.named_parameters()) want.emplace_back(n, v.shape());
  for (const auto& [n, t] : m.named_buffers()) want.emplace_back(n, t->shape());
  std::vector<std::pair<std::string, Shape>> got;
  for (const auto& s : tensor_specs(c)) got.emplace_back(s.name, s.shape);
  EXPECT_EQ(got, want);
}

TEST(Transformer, InvariantsCatchAnInconsistentSwap) {
  Transformer m(small_config(), DType::f32, 1);
  m.parameter("blocks.1.attn.o_proj.weight").set_value(Tensor::zeros({16, 12}));
  EXPECT_THROW(m.check_invariants(), InternalError);
}

TEST(Transformer, InitDependsOnlyOnSeedAndName) {
  Transformer a(small_config(), DType::f32, 7), b(small_config(), DType::f32, 7), c(small_config(), DType::f32, 8);
  EXPECT_TRUE(bit_equal(a.parameter("blocks.0.mlp.up_proj.weight").value(), b.parameter("blocks.0.mlp.up_proj.weight").value()));
  EXPECT_FALSE(bit_equal(a.parameter("blocks.0.mlp.up_proj.weight").value(), c.parameter("blocks.0.mlp.up_proj.weight").value()));
}

// Left padding changes nothing at real positions: a row scored alone equals the same row
// padded inside a longer batch.
TEST(Transformer, LeftPaddingIsInvisible) {
  Transformer m(small_config(), DType::f64, 3);
  const Data d = random_batch(50, {9, 4}, 9, 11);
  ag::NoGradGuard ng;
  const Tensor full = m.hidden(d.ids, d.pads).value();
  const Tensor row = d.ids.narrow(0, 1, 1).narrow(1, 5, 4).contiguous();
  const Tensor alone = m.hidden(row, pads_from_ids(row)).value();
  // f64: identical arithmetic up to summation order in the GEMMs.
  EXPECT_LT(max_abs_diff(full.narrow(0, 1, 1).narrow(1, 5, 4), alone), 1e-12);
  // Padding positions hold exact zeros before the final norm, hence after it too.
  EXPECT_EQ(max_abs_diff(full.narrow(0, 1, 1).narrow(1, 0, 5), Tensor::zeros({1, 5, 16}, DType::f64)), 0.0);
}

// Note [last-position inference]: the shortcut equals the full forward's last position,
// also for uneven models whose last layer lacks attention or MLP (as depth pruning by
// sub-blocks makes them).
TEST(Transformer, LastHiddenEqualsFullForwardAtTheLastPosition) {
  for (const char* layers : {"layers { num_heads: 4 num_kv_heads: 2 mlp_width: 24 } layers { num_heads: 0 "
                             "num_kv_heads: 0 mlp_width: 8 } layers { num_heads: 2 num_kv_heads: 1 mlp_width: 0 }",
                             "layers { num_heads: 4 num_kv_heads: 1 mlp_width: 24 } layers { num_heads: 0 "
                             "num_kv_heads: 0 mlp_width: 8 }",
                             "layers { num_heads: 3 num_kv_heads: 3 mlp_width: 5 }"}) {
    pb::ModelConfig c;
    parse_text_proto(std::string("vocab_size: 50 hidden: 16 head_dim: 4 max_len: 12 ") + layers, "test", &c);
    Transformer m(c, DType::f64, 3);
    const Data d = random_batch(50, {12, 7, 1}, 12, 5);
    ag::NoGradGuard ng;
    const Tensor full = m.hidden(d.ids, d.pads).value().select(1, 11).contiguous();
    const Tensor last = m.last_hidden(d.ids, d.pads);
    ASSERT_EQ(last.shape(), full.shape()) << layers;
    // f64, same formulas; only the attention's summation order differs (loops vs GEMM).
    EXPECT_LT(max_abs_diff(last, full), 1e-12) << layers;
  }
}

// Note [query-scale mask]: scales of 1 change no bit; a head whose query is scaled by 1e-4
// attends almost uniformly, so in layer 0 its output at position i is the mean of its V
// rows over the visible prefix; the last-position shortcut applies the scale too.
TEST(Attention, QueryScaleMasksAHeadTowardsUniformAttention) {
  Transformer m(small_config(), DType::f64, 3);
  const Data d = random_batch(50, {12, 7, 1}, 12, 5);
  ag::NoGradGuard ng;
  const Tensor plain = m.hidden(d.ids, d.pads).value();
  m.block(0).attn().set_query_scale({1, 1, 1, 1});
  EXPECT_TRUE(bit_equal(m.hidden(d.ids, d.pads).value(), plain));

  struct Heads : ForwardHooks {
    Tensor layer0;
    void on_attention_heads(int layer, const Tensor& h) override {
      if (layer == 0) layer0 = h.contiguous();
    }
  } hooks;
  ForwardOptions fo;
  fo.hooks = &hooks;
  m.block(0).attn().set_query_scale({1, 1e-4, 1, 1});  // head 1 reads KV head 0
  const Tensor masked = m.hidden(d.ids, d.pads, fo).value();
  EXPECT_GT(max_abs_diff(masked, plain), 1e-6);  // the mask does change the model
  // V of layer 0 from its input (the embeddings), head 1's KV group = columns [0, 4).
  const Block& b0 = m.block(0);
  const Tensor v = b0.attn().v_proj().forward(b0.attn_norm().forward(m.embed().forward(d.ids))).value().contiguous();
  double worst = 0, scale = 0;
  for (std::int64_t b = 0; b < 3; ++b) {
    const std::int64_t pad = static_cast<std::int64_t>(d.pads.at({b}));
    for (std::int64_t i = pad; i < 12; ++i)
      for (std::int64_t j = 0; j < 4; ++j) {
        double mean = 0;
        for (std::int64_t t = pad; t <= i; ++t) mean += v.at({b, t, j});
        mean /= static_cast<double>(i - pad + 1);
        worst = std::max(worst, std::fabs(hooks.layer0.at({b, i, 4 + j}) - mean));
        scale = std::max(scale, std::fabs(mean));
      }
  }
  // Scores q.k / sqrt(dh) shrink by 1e-4 to about 1e-4 here, so each softmax weight is
  // 1/n * (1 + O(1e-4)) and the output is the mean up to about 1e-4 of |V|.
  EXPECT_LT(worst, 1e-3 * scale);
  const Tensor last = m.last_hidden(d.ids, d.pads);
  EXPECT_LT(max_abs_diff(last, masked.select(1, 11).contiguous()), 1e-12);  // f64, as above
  m.block(0).attn().set_query_scale({});
  EXPECT_TRUE(bit_equal(m.hidden(d.ids, d.pads).value(), plain));
  EXPECT_THROW(m.block(0).attn().set_query_scale({1, 1}), ShapeError);
}

TEST(Transformer, FusedLossEqualsLogitsThenCrossEntropy) {
  Transformer m(small_config(), DType::f64, 3);
  const Data d = random_batch(50, {12, 7, 1}, 12, 5);
  const double fused = m.loss(d.ids, d.pads, d.targets).value().item();
  ag::Var logits = m.logits(m.hidden(d.ids, d.pads));
  const double plain = ag::cross_entropy(ag::reshape(logits, {36, 50}), d.targets.reshape({36})).value().item();
  EXPECT_NEAR(fused, plain, 1e-12);  // f64, same formula, different chunking
}

// Note [loss on the target rows]: the rows without a target (padding here, 16 of 36) are
// gathered away before the output layer; value and every parameter's gradient must be
// those of scoring all rows and ignoring them in the loss.
TEST(Transformer, LossOnTheTargetRowsKeepsValueAndGradients) {
  Transformer m(small_config(), DType::f64, 3);
  Data d = random_batch(50, {12, 7, 1}, 12, 5);
  d.targets.set({0, 3}, -1);  // an ignored row between targets, as a title-mode prompt has
  m.loss(d.ids, d.pads, d.targets).backward();
  std::vector<Tensor> fused_grads;
  for (const auto& [name, p] : m.named_parameters()) fused_grads.push_back(p.grad().clone());
  m.zero_grad();
  ag::Var logits = m.logits(m.hidden(d.ids, d.pads));
  ag::cross_entropy(ag::reshape(logits, {36, 50}), d.targets.reshape({36})).backward();
  std::size_t i = 0;
  for (const auto& [name, p] : m.named_parameters()) {
    // f64 throughout: the two paths differ only in summation order (chunked GEMMs).
    EXPECT_LT(max_abs_diff(p.grad(), fused_grads[i]), 1e-12) << name;
    ++i;
  }
}

TEST(Schedule, WarmupThenCosineToFloor) {
  pb::OptimizerConfig c;
  c.set_lr(1.0);
  c.set_warmup_fraction(0.1);
  c.set_min_lr_ratio(0.1);
  EXPECT_DOUBLE_EQ(lr_at(c, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(c, 9, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(c, 10, 100), 1.0);
  EXPECT_NEAR(lr_at(c, 55, 100), 0.55, 1e-12);  // half-way through the cosine
  EXPECT_NEAR(lr_at(c, 100, 100), 0.1, 1e-12);
  c.set_decay(pb::OptimizerConfig::LINEAR);
  EXPECT_NEAR(lr_at(c, 55, 100), 0.55, 1e-12);
  c.set_decay(pb::OptimizerConfig::CONSTANT);
  EXPECT_DOUBLE_EQ(lr_at(c, 80, 100), 1.0);
}

// Trains `steps` steps with dropout and returns the model (and its optimizer, if asked).
std::unique_ptr<Transformer> train_steps(int steps, std::uint64_t seed, AdamW** opt_out = nullptr) {
  auto m = std::make_unique<Transformer>(small_config(), DType::f32, seed);
  auto* opt = new AdamW(*m, {.weight_decay = 0.01});
  for (int s = 0; s < steps; ++s) {
    const Data d = random_batch(50, {12, 9, 5, 12}, 12, seed * 1000 + s);
    m->zero_grad();
    ForwardOptions fo;
    fo.dropout = 0.1;
    fo.seed = seed;
    fo.step = static_cast<std::uint64_t>(s);
    m->loss(d.ids, d.pads, d.targets, fo).backward();
    opt->clip_and_step(1e-2, 1.0);
  }
  if (opt_out)
    *opt_out = opt;
  else
    delete opt;
  return m;
}

// Note [global dropout masks]: rows 1..2 of a [6, 12] batch, padded to their own longest
// row (9), placed at global row 1 of a batch of length 12, are dropped as in the whole
// batch; one process's placement (row 0, its own length) is the unplaced forward, bit for bit.
TEST(Reproducibility, DropoutOfAShardPlacedInItsBatchEqualsTheBatchRows) {
  const Transformer m(small_config(), DType::f32, 3);
  const Data whole = random_batch(50, {12, 9, 5, 12, 7, 4}, 12, 8);
  Data shard;
  shard.ids = whole.ids.narrow(0, 1, 2).narrow(1, 3, 9).contiguous();
  shard.pads = pads_from_ids(shard.ids);
  ag::NoGradGuard ng;
  ForwardOptions fo;
  fo.dropout = 0.3;
  fo.seed = 5;
  fo.step = 2;
  const Tensor want = m.hidden(whole.ids, whole.pads, fo).value();  // [6, 12, 16]
  ForwardOptions own = fo;
  own.global_length = 12;
  EXPECT_TRUE(bit_equal(m.hidden(whole.ids, whole.pads, own).value(), want));
  ForwardOptions placed = fo;
  placed.global_row = 1;
  placed.global_length = 12;
  const Tensor got = m.hidden(shard.ids, shard.pads, placed).value(), unplaced = m.hidden(shard.ids, shard.pads, fo).value();
  double worst = 0, worst_unplaced = 0;
  for (std::int64_t r = 0; r < 2; ++r)
    for (std::int64_t t = shard.pads.data<std::int32_t>()[r]; t < 9; ++t)
      for (std::int64_t c = 0; c < 16; ++c) {
        const double w = want.data<float>()[((r + 1) * 12 + t + 3) * 16 + c];
        worst = std::max(worst, std::fabs(got.data<float>()[(r * 9 + t) * 16 + c] - w));
        worst_unplaced = std::max(worst_unplaced, std::fabs(unplaced.data<float>()[(r * 9 + t) * 16 + c] - w));
      }
  // The same rows with less padding: the same arithmetic up to f32 summation order in the
  // kernels (normalised states of size ~1; measured 2.4e-7), so 1e-5; the unplaced
  // shard's other masks moved them by 2.6 (measured).
  EXPECT_LT(worst, 1e-5);
  EXPECT_GT(worst_unplaced, 0.1);
}

TEST(Reproducibility, SameSeedAndThreadsGiveTheSameBits) {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    auto a = train_steps(20, 42), b = train_steps(20, 42);
    for (const auto& [name, var] : a->named_parameters())
      EXPECT_TRUE(bit_equal(var.value(), b->parameter(name).value())) << name << " with " << threads << " threads";
  }
  set_num_threads(2);
  auto c = train_steps(3, 43), d = train_steps(3, 42);
  EXPECT_FALSE(bit_equal(c->parameter("embed.weight").value(), d->parameter("embed.weight").value()));
}

TEST(Checkpoint, RoundTripIsBitExactWithOptimizerState) {
  AdamW* opt = nullptr;
  auto m = train_steps(2, 5, &opt);
  std::unique_ptr<AdamW> owned(opt);
  pb::TrainingState st;
  st.set_epoch(3);
  pb::ItemCatalog cat;
  cat.add_raw_ids("B0001");
  const std::string p = temp_path("rt.prc");
  save_model(p, *m, {.optimizer = opt, .state = &st, .catalog = &cat, .metadata = {{"k", "v"}}});
  for (bool mmap : {false, true}) {
    LoadedModel l = load_model(p, {.mmap = mmap});
    for (const auto& [name, var] : m->named_parameters())
      EXPECT_TRUE(bit_equal(var.value(), l.model->parameter(name).value())) << name;
    ASSERT_EQ(l.optimizer.size(), opt->state().size());
    for (const auto& [name, s] : opt->state()) {
      EXPECT_TRUE(bit_equal(s.exp_avg, l.optimizer.at(name).exp_avg)) << name;
      EXPECT_TRUE(bit_equal(s.exp_avg_sq, l.optimizer.at(name).exp_avg_sq)) << name;
    }
    EXPECT_EQ(l.manifest.state().step(), 2);
    EXPECT_EQ(l.manifest.state().epoch(), 3);
    EXPECT_EQ(l.manifest.catalog().raw_ids(0), "B0001");
    EXPECT_EQ(l.manifest.metadata().at("k"), "v");
    EXPECT_EQ(l.model->config().DebugString(), m->config().DebugString());
  }
}

// Gates are buffers, not parameters, but a NaN gate damages the outputs all the same.
TEST(Checkpoint, NonFiniteGatesAreRefusedByName) {
  Transformer m(small_config(), DType::f32, 1);
  m.block(1).attn().head_gate().set({2}, std::nan(""));
  const std::string p = temp_path("nan_gate.prc");
  save_model(p, m);
  try {
    load_model(p);
    ADD_FAILURE() << "a NaN head gate was loaded";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.1.attn.head_gate"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, MismatchesAreListedByName) {
  Transformer m(small_config(), DType::f32, 1);
  // A file whose config says mlp_width 24 but holds a 20-wide up_proj and lacks final_norm.
  pb::Manifest manifest;
  *manifest.mutable_config() = m.config();
  std::vector<NamedTensor> tensors;
  for (const auto& [name, var] : m.named_parameters()) {
    if (name == "final_norm.weight") continue;
    tensors.push_back({name, name == "blocks.0.mlp.up_proj.weight" ? Tensor::zeros({20, 16}) : var.value()});
  }
  for (const auto& [name, t] : m.named_buffers()) tensors.push_back({name, *t});
  tensors.push_back({"stray.weight", Tensor::zeros({2})});
  const std::string p = temp_path("bad.prc");
  write_checkpoint(p, manifest, tensors);
  try {
    load_model(p);
    FAIL() << "no error";
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("blocks.0.mlp.up_proj.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing tensor 'final_norm.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected tensor 'stray.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("3 problems"), std::string::npos) << msg;
  }
}

TEST(Checkpoint, ResumedTrainingMatchesUninterruptedBitForBit) {
  // 6 steps straight vs 3 steps, save, load, 3 more steps.
  auto step = [](Transformer& m, AdamW& opt, int s) {
    const Data d = random_batch(50, {12, 9, 5}, 12, 700 + s);
    m.zero_grad();
    ForwardOptions fo;
    fo.dropout = 0.1;
    fo.seed = 9;
    fo.step = static_cast<std::uint64_t>(s);
    m.loss(d.ids, d.pads, d.targets, fo).backward();
    opt.clip_and_step(1e-2, 1.0);
  };
  Transformer a(small_config(), DType::f32, 9);
  AdamW oa(a, {.weight_decay = 0.01});
  for (int s = 0; s < 6; ++s) step(a, oa, s);

  Transformer b(small_config(), DType::f32, 9);
  AdamW ob(b, {.weight_decay = 0.01});
  for (int s = 0; s < 3; ++s) step(b, ob, s);
  const std::string p = temp_path("resume.prc");
  SaveOptions so;
  so.optimizer = &ob;
  save_model(p, b, so);
  LoadedModel l = load_model(p);
  AdamW oc(*l.model, {.weight_decay = 0.01});
  restore_optimizer(oc, l);
  for (int s = 3; s < 6; ++s) step(*l.model, oc, s);
  for (const auto& [name, var] : a.named_parameters())
    EXPECT_TRUE(bit_equal(var.value(), l.model->parameter(name).value())) << name;
}

}  // namespace
}  // namespace prunerec::nn
