// Fuzz target for everything a user writes in protobuf text format: the training recipe
// (`prunerec train --config`), a pruning plan, and the prune schedule (`--schedule`).
//
// Input (Note [input sections] in fuzz_common.h):  recipe  %%  plan  %%  schedule
//   recipe:   parsed as pb::Recipe; its optimizer settings go through adamw_options and
//             lr_at; then one epoch of train_model on a tiny built-in data set, with the
//             recipe's model when it is small (else a fixed tiny model) and its train
//             config (epochs capped at 1).
//   plan:     parsed as pb::PrunePlan; normalize_plan, apply_plan (with optimizer moments)
//             and apply_mask on a fixed uneven 3-layer model (one layer without attention,
//             one without MLP), then check_invariants and a forward pass. A plan that
//             normalises must apply; a refused plan must leave the model untouched.
//   schedule: prune::parse_schedule; when valid, run_schedule on a tiny teacher (epochs
//             capped at 1, calibration at 16 sequences, at most 4 stages, no latency).
// Sizes the user asked for are the user's business (a recipe asking for a 10 GB model
// gets one), so the recipe's model is only built when small; the checkpoint target is
// where a file's claimed sizes must be checked before allocation.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <string_view>

#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/text_proto.h"
#include "nn/transformer.h"
#include "prune/schedule.h"
#include "prune/surgery.h"
#include "proto/train.pb.h"
#include "recsys/batching.h"
#include "recsys/data/split.h"
#include "recsys/recommender.h"
#include "recsys/trainer.h"
#include "tensor/parallel.h"
#include "tests/fuzz/fuzz_common.h"

namespace prunerec::fuzz {
namespace {

constexpr int kItems = 10;

// 12 users over 10 items with a clear next-item structure.
const recsys::SequenceDataset& tiny_data() {
  static const recsys::SequenceDataset data = [] {
    recsys::SequenceDataset d;
    d.source = "fuzz-data";
    d.format = "user-seq";
    for (int i = 0; i < kItems; ++i) d.items.add("i" + std::to_string(i));
    for (int u = 0; u < 12; ++u) {
      d.users.push_back("u" + std::to_string(u));
      std::vector<std::int32_t> seq;
      for (int k = 0; k < 4 + u % 3; ++k) seq.push_back((u + k) % kItems);
      d.sequences.push_back(seq);
    }
    return d;
  }();
  return data;
}

const recsys::DataSplit& tiny_split() {
  static const recsys::DataSplit split = recsys::leave_one_out(tiny_data());
  return split;
}

// 3 uneven layers: GQA with an explicit kv_map, a layer without attention, one without MLP.
pb::ModelConfig fixed_config() {
  pb::ModelConfig c;
  c.set_name("fuzz");
  c.set_vocab_size(kItems);
  c.set_hidden(8);
  c.set_head_dim(4);
  c.set_max_len(6);
  auto* l0 = c.add_layers();
  l0->set_num_heads(4);
  l0->set_num_kv_heads(2);
  for (int g : {0, 1, 1, 0}) l0->add_kv_map(g);
  l0->set_mlp_width(6);
  auto* l1 = c.add_layers();
  l1->set_num_heads(0);
  l1->set_num_kv_heads(0);
  l1->set_mlp_width(4);
  auto* l2 = c.add_layers();
  l2->set_num_heads(2);
  l2->set_num_kv_heads(1);
  l2->set_mlp_width(0);
  return c;
}

// Whether a recipe's model is small enough to build per input (before normalisation,
// which itself expands num_layers).
bool small_model(const pb::ModelConfig& c) {
  auto small_layer = [](const pb::LayerConfig& L) {
    return L.num_heads() <= 8 && L.num_kv_heads() <= 8 && L.mlp_width() <= 64 && L.kv_map_size() <= 8;
  };
  if (c.num_layers() > 4 || c.layers_size() > 4 || c.hidden() > 32 || c.head_dim() > 16 || c.max_len() > 16) return false;
  if (!small_layer(c.layer_defaults())) return false;
  return std::all_of(c.layers().begin(), c.layers().end(), small_layer);
}

recsys::Batch tiny_batch(int max_len) {
  std::vector<std::vector<std::int32_t>> histories = {{1, 2, 3}, {4}, {5, 6, 7, 8, 9, 0, 1, 2}};
  return recsys::make_history_batch(histories, max_len);
}

// One training step, so the optimizer has moments to slice.
void one_step(nn::Transformer& model, nn::AdamW& opt) {
  const recsys::Batch b = tiny_batch(static_cast<int>(model.config().max_len()));
  std::vector<std::int32_t> targets(static_cast<std::size_t>(b.ids.numel()));
  for (std::size_t i = 0; i < targets.size(); ++i) targets[i] = static_cast<std::int32_t>(i % kItems);
  const Tensor t = Tensor::from_vector(targets, b.ids.shape());
  ag::Var loss = model.loss(b.ids, b.pads, t);
  loss.backward();
  opt.clip_and_step(1e-3, 1.0);
  model.zero_grad();
}

void forward(const nn::Transformer& model) {
  const recsys::Batch b = tiny_batch(static_cast<int>(model.config().max_len()));
  (void)recsys::next_item_scores(model, b.ids, b.pads);
}

void fuzz_recipe(std::string_view text, const ScratchDir& dir) {
  pb::Recipe recipe;
  if (!expect_errors("parse recipe", [&] { nn::parse_text_proto(std::string(text), "recipe", &recipe); })) return;
  const pb::OptimizerConfig& oc = recipe.train().optimizer();
  // Finding F4 (docs/reliability.md, fixed): a huge or non-finite warmup_fraction must be
  // refused, not converted to an integer.
  expect_errors("adamw_options", [&] { (void)nn::adamw_options(oc); });
  for (std::int64_t total : {std::int64_t{0}, std::int64_t{1}, std::int64_t{7}, std::int64_t{1} << 40})
    for (std::int64_t step : {std::int64_t{0}, total / 2, total - 1, total})
      expect_errors("lr_at", [&] { (void)nn::lr_at(oc, step, total); });

  pb::ModelConfig config = small_model(recipe.model()) ? recipe.model() : fixed_config();
  config.set_vocab_size(kItems);
  std::unique_ptr<nn::Transformer> model;
  if (!expect_errors("build model", [&] { model = std::make_unique<nn::Transformer>(config, DType::f32, 1); })) return;
  expect_errors("forward", [&] { forward(*model); });

  pb::TrainConfig train = recipe.train();
  train.set_epochs(std::min(train.epochs(), 1));
  if (train.batch_size() > 64) train.set_batch_size(64);
  recsys::TrainSpec spec;
  spec.data = &tiny_data();
  spec.split = &tiny_split();
  spec.config = train;
  spec.out_path = dir.path("model.prc");
  spec.resume = false;
  spec.catalog = &tiny_data().items;
  std::ostringstream log;
  spec.log = &log;
  spec.progress = Progress::Mode::kSilent;
  dir.clear();
  expect_errors("train_model", [&] { (void)recsys::train_model(*model, spec); });
}

void fuzz_plan(std::string_view text) {
  pb::PrunePlan plan;
  if (!expect_errors("parse plan", [&] { nn::parse_text_proto(std::string(text), "plan", &plan); })) return;
  static const pb::ModelConfig config = fixed_config();
  nn::Transformer model(config, DType::f32, 3);
  const bool normalizes = expect_errors("normalize_plan", [&] { (void)prune::normalize_plan(plan, model); });

  nn::AdamW opt(model, nn::AdamWOptions{});
  one_step(model, opt);
  const std::string before = model.config().SerializeAsString();
  const bool applied = expect_errors("apply_plan", [&] {
    (void)prune::apply_plan(model, plan, &opt);
    model.check_invariants();
  });
  require(applied == normalizes, "apply_plan", "a plan that normalises does not apply (or the reverse)");
  if (applied) {
    expect_errors("forward after surgery", [&] { forward(model); });
    expect_errors("step after surgery", [&] { one_step(model, opt); });
  } else {
    require(model.config().SerializeAsString() == before, "apply_plan", "a refused plan changed the model");
  }

  nn::Transformer masked(config, DType::f32, 3);
  nn::ForwardOptions fo;
  if (expect_errors("apply_mask", [&] { fo = prune::apply_mask(masked, plan); })) {
    const recsys::Batch b = tiny_batch(static_cast<int>(config.max_len()));
    expect_errors("masked forward", [&] { (void)masked.hidden(b.ids, b.pads, fo); });
  }
}

void fuzz_schedule(std::string_view text, const ScratchDir& dir) {
  pb::Schedule schedule;
  if (!expect_errors("parse_schedule", [&] { schedule = prune::parse_schedule(std::string(text), "schedule"); })) return;
  // Keep the run small: what is under test is how a schedule meets a model.
  while (schedule.stages_size() > 4) schedule.mutable_stages()->RemoveLast();
  auto cap = [](pb::RecoveryConfig* r) {
    pb::TrainConfig* t = r->mutable_train();
    if (t->epochs() > 1) t->set_epochs(1);
    if (t->batch_size() > 64) t->set_batch_size(64);
  };
  cap(schedule.mutable_recovery_defaults());
  for (auto& st : *schedule.mutable_stages())
    if (st.has_recovery()) cap(st.mutable_recovery());
  if (schedule.calibration().sequences() > 16) schedule.mutable_calibration()->set_sequences(16);

  dir.clear();
  const std::string teacher = dir.path("teacher.prc");
  expect_errors("write teacher", [&] {
    nn::Transformer net(fixed_config(), DType::f32, 5);
    recsys::save_recommender(teacher, net, tiny_data().items);
  });
  prune::PruneRun run;
  run.data = &tiny_data();
  run.split = &tiny_split();
  run.teacher_path = teacher;
  run.out_dir = dir.path("prune");
  run.schedule = schedule;
  run.latency = false;
  std::ostringstream log;
  run.log = &log;
  run.progress = Progress::Mode::kSilent;
  expect_errors("run_schedule", [&] { (void)prune::run_schedule(run); });
}

}  // namespace
}  // namespace prunerec::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  prunerec::set_num_threads(1);
  prunerec::fuzz::silence_protobuf_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prunerec;
  static const fuzz::ScratchDir dir;
  const auto parts = fuzz::sections(fuzz::as_text(data, size), 3);
  fuzz::fuzz_recipe(parts[0], dir);
  if (parts.size() > 1) fuzz::fuzz_plan(parts[1]);
  if (parts.size() > 2) fuzz::fuzz_schedule(parts[2], dir);
  return 0;
}
