// Whole-model reference check against the independent PyTorch implementation in
// tools/make_golden.py (fixture tests/fixtures/golden_model_small.txt): a 2-layer uneven
// GQA model with q/k/v biases, a tied head, an explicit non-contiguous kv_map and left
// padding. Logits, loss, the gradient of every named parameter and 3 AdamW steps with
// clipping and weight decay must agree.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/ops.h"
#include "nn/optim.h"
#include "nn/text_proto.h"
#include "nn/transformer.h"
#include "tests/common/golden.h"

namespace prunerec::nn {
namespace {

using prunerec::testing::Golden;
using prunerec::testing::load_golden;

Tensor to_i32(const Tensor& t) { return t.to(DType::i32); }

struct GoldenRun {
  Golden g = load_golden("golden_model_small.txt");
  pb::ModelConfig config;
  GoldenRun() { parse_text_proto(g.meta_value("config"), "golden config", &config); }

  std::unique_ptr<Transformer> build(DType dtype) const {
    auto model = std::make_unique<Transformer>(config, dtype, /*seed=*/1);
    for (auto& [name, var] : model->named_parameters()) {
      const Tensor& ref = g.tensor(name);
      EXPECT_EQ(ref.shape(), var.shape()) << name;
      Tensor v = var.value();
      v.copy_from(ref);
    }
    return model;
  }
};

// Max |a - b| / (max |b| + tiny): error relative to the tensor's scale.
double rel_err(const Tensor& a, const Tensor& b) {
  const std::vector<double> y = b.to_vector<double>();
  double scale = 1e-30;
  for (double v : y) scale = std::max(scale, std::fabs(v));
  return max_abs_diff(a, b) / scale;
}

void check_model(DType dtype, double tol) {
  GoldenRun run;
  const Golden& g = run.g;
  auto model = run.build(dtype);
  ASSERT_EQ(model->config().DebugString(), normalize_config(run.config).DebugString());
  const Tensor ids = to_i32(g.tensor("ids")), targets = to_i32(g.tensor("targets"));
  const Tensor pads = pads_from_ids(ids);

  // Forward: logits through the unfused path, loss through both paths.
  ag::Var h = model->hidden(ids, pads);
  EXPECT_LT(rel_err(h.value(), g.tensor("hidden.final")), tol) << "hidden.final";
  ag::Var logits = model->logits(h);
  EXPECT_LT(rel_err(logits.value(), g.tensor("logits")), tol) << "logits";
  const double want_loss = g.tensor("loss").item();
  ag::Var unfused = ag::cross_entropy(ag::reshape(logits, {21, 37}), targets.reshape({21}));
  EXPECT_NEAR(unfused.value().item(), want_loss, tol * std::fabs(want_loss));

  // Gradients of every named parameter from the fused loss.
  model->zero_grad();
  ag::Var loss = model->loss(ids, pads, targets);
  EXPECT_NEAR(loss.value().item(), want_loss, tol * std::fabs(want_loss));
  loss.backward();
  int checked = 0;
  for (const auto& [name, var] : model->named_parameters()) {
    ASSERT_TRUE(var.grad().defined()) << name;
    EXPECT_LT(rel_err(var.grad(), g.tensor("grad." + name)), tol) << "grad." << name;
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(g.names_with_prefix("grad.").size()));

  // Three AdamW steps with clipping and per-step learning rates.
  const std::vector<double> lrs = g.meta_numbers("lrs"), betas = g.meta_numbers("betas");
  AdamWOptions opt;
  opt.beta1 = betas[0];
  opt.beta2 = betas[1];
  opt.eps = g.meta_numbers("eps")[0];
  opt.weight_decay = g.meta_numbers("weight_decay")[0];
  AdamW adam(*model, opt);
  const std::vector<double> losses = g.tensor("losses").to_vector<double>();
  const std::vector<double> norms = g.tensor("grad_norm").to_vector<double>();
  for (int step = 0; step < 3; ++step) {
    model->zero_grad();
    ag::Var l = model->loss(ids, pads, targets);
    EXPECT_NEAR(l.value().item(), losses[step], tol * std::fabs(losses[step])) << "step " << step;
    l.backward();
    const double norm = adam.clip_and_step(lrs[step], g.meta_numbers("clip_norm")[0]);
    EXPECT_NEAR(norm, norms[step], tol * norms[step]) << "grad norm at step " << step;
  }
  ag::NoGradGuard no_grad;
  EXPECT_NEAR(model->loss(ids, pads, targets).value().item(), losses[3], tol * std::fabs(losses[3]));
  for (const auto& [name, var] : model->named_parameters())
    EXPECT_LT(rel_err(var.value(), g.tensor("final." + name)), tol) << "final." << name;
}

// f64 end to end: the only differences are summation order (BLAS vs torch), which gives
// errors of ~1.5e-15 relative to each tensor's scale. 1e-12 leaves room for another BLAS
// kernel, yet any formula difference shows up at 1e-4 or worse.
TEST(GoldenModel, MatchesPyTorchInFloat64) { check_model(DType::f64, 1e-12); }

// f32: same weights cast to float. Float rounding over two layers, a 37-way softmax and
// three Adam steps (whose update m/sqrt(v) amplifies tiny gradient differences for
// near-zero gradients) gives relative errors up to ~1e-4; 2e-3 still catches formula bugs.
TEST(GoldenModel, MatchesPyTorchInFloat32) { check_model(DType::f32, 1e-5); }

}  // namespace
}  // namespace prunerec::nn
