// Lazy AdamW rows (Note [lazy AdamW rows] in nn/optim.h) against dense AdamW.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "nn/optim.h"
#include "tensor/rng.h"

namespace prunerec::nn {
namespace {

class Table final : public Module {
 public:
  explicit Table(const Tensor& init) : weight(register_parameter("weight", init.clone())) {}
  ag::Var weight;
};

Tensor randn(const Shape& shape, std::uint64_t seed, DType dtype) {
  Tensor t = Tensor::empty(shape, DType::f64);
  fill_normal(t, 0.0, 1.0, seed, 5);
  return t.to(dtype);
}

// Gradient of sum(embedding(W, ids) * R): row-sparse (the embedding's backward), the same
// values as the dense gradient.
void backward_rows(const ag::Var& w, const std::vector<std::int32_t>& ids, std::uint64_t seed) {
  const std::int64_t d = w.size(1);
  const Tensor r = randn({static_cast<std::int64_t>(ids.size()), d}, seed, w.dtype());
  ag::sum(ag::mul(ag::embedding(w, Tensor::from_vector<std::int32_t>(ids)), ag::Var(r))).backward();
}

// The rows touched at step s (0-based): rows 0 and 1 always; row 2 on every third step;
// row 3 twice (once in the same batch twice); rows 4-5 never.
std::vector<std::int32_t> ids_at(int s) {
  std::vector<std::int32_t> ids{1, 0};
  if (s % 3 == 0) ids.push_back(2);
  if (s == 1 || s == 4) ids.insert(ids.end(), {3, 3});
  return ids;
}

TEST(LazyAdamW, RowsTouchedEveryStepEqualDenseAdamW) {
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor init = randn({6, 5}, 11, dtype);
    Table lazy_model(init), dense_model(init);
    AdamWOptions o{.beta1 = 0.9, .beta2 = 0.98, .eps = 1e-8, .weight_decay = 0.1};
    AdamWOptions lazy_o = o;
    lazy_o.lazy_rows = true;
    AdamW lazy(lazy_model, lazy_o), dense(dense_model, o);
    for (int s = 0; s < 7; ++s) {
      const double lr = 1e-2 * (1.0 + 0.1 * s);
      backward_rows(lazy_model.weight, ids_at(s), 100 + s);
      backward_rows(dense_model.weight, ids_at(s), 100 + s);
      ASSERT_TRUE(lazy_model.weight.has_row_grad());
      // No clipping: the norms are the same sums of squares in different orders (equal to
      // rounding), and a clip scale from them would differ in the last bit.
      const double nl = lazy.clip_and_step(lr, 0), nd = dense.clip_and_step(lr, 0);
      EXPECT_NEAR(nl, nd, 1e-6 * nd);
      (void)dense_model.weight.grad();
      lazy_model.zero_grad();
      dense_model.zero_grad();
      // Rows touched at every step: bit for bit the dense update.
      const std::int64_t d = 5;
      for (std::int32_t row : {0, 1})
        for (std::int64_t c = 0; c < d; ++c) {
          const double a = lazy_model.weight.value().to(DType::f64).data<double>()[row * d + c];
          const double b = dense_model.weight.value().to(DType::f64).data<double>()[row * d + c];
          EXPECT_EQ(a, b) << "row " << row << " step " << s;
        }
      // Every row touched at this step has the dense moments (the skipped steps'
      // decay beta^k is exactly what zero gradients do to them).
      for (std::int32_t row : ids_at(s))
        for (std::int64_t c = 0; c < d; ++c) {
          const auto& ls = lazy.state().at("weight");
          const auto& ds = dense.state().at("weight");
          // pow(beta, k) in one go against k multiplications: a few ulp.
          const double tol = dtype == DType::f64 ? 1e-12 : 1e-6;
          const double m_l = ls.exp_avg.to(DType::f64).data<double>()[row * d + c];
          const double m_d = ds.exp_avg.to(DType::f64).data<double>()[row * d + c];
          const double v_l = ls.exp_avg_sq.to(DType::f64).data<double>()[row * d + c];
          const double v_d = ds.exp_avg_sq.to(DType::f64).data<double>()[row * d + c];
          EXPECT_NEAR(m_l, m_d, tol * (1 + std::fabs(m_d))) << "row " << row << " step " << s;
          EXPECT_NEAR(v_l, v_d, tol * (1 + std::fabs(v_d))) << "row " << row << " step " << s;
        }
    }
    // Rows never touched are untouched by the lazy optimizer (dense AdamW decays them).
    const Tensor after = lazy_model.weight.value().to(DType::f64), before = init.to(DType::f64);  // held: data() points into them
    const double* p = after.data<double>();
    const double* q = before.data<double>();
    for (std::int64_t i = 4 * 5; i < 6 * 5; ++i) EXPECT_EQ(p[i], q[i]);
    // Row steps: row 2 was last touched at step 7 (s = 6), row 3 at step 5 (s = 4).
    const std::int64_t* rs = lazy.state().at("weight").row_step.data<std::int64_t>();
    EXPECT_EQ(rs[0], 7);
    EXPECT_EQ(rs[2], 7);
    EXPECT_EQ(rs[3], 5);
    EXPECT_EQ(rs[5], 0);
  }
}

// Rows touched now and then (Note [lazy AdamW rows]): the skipped steps' motion is
// replayed, so with a constant lr each row ends where dense AdamW puts it. Row 0 gets a
// gradient at every step, row 1 every 7th, row 2 at steps 0 and 40 only, row 3 a large
// gradient every 11th (a sampled negative's push: rare and ~1000 times a target's).
// Leaving the motion out (SparseAdam, LazyAdam) puts rows 1-3 off by up to ~ten of their
// Adam steps, ~1e-2 here. eps is tiny so that the comparison is exact up to rounding.
TEST(LazyAdamW, RowsTouchedNowAndThenFollowDenseAdamW) {
  // 60 steps: the replay sums its series term by term (bias corrections still < 1);
  // 2,100: row 2's last gap starts past step 1,950, where the sum is in closed form.
  for (int steps : {60, 2100}) {
    const Tensor init = randn({4, 5}, 13, DType::f64);
    Table lazy_model(init), dense_model(init);
    AdamWOptions o{.beta1 = 0.9, .beta2 = 0.98, .eps = 1e-14, .weight_decay = 0.1};
    AdamWOptions lazy_o = o;
    lazy_o.lazy_rows = true;
    AdamW lazy(lazy_model, lazy_o), dense(dense_model, o);
    const double lr = 1e-3;
    for (int s = 0; s < steps; ++s) {
      std::vector<std::int32_t> ids{0};
      if (s % 7 == 0) ids.push_back(1);
      if (s == 0 || s == 40 || s == steps - 100) ids.push_back(2);
      if (s % 11 == 3) ids.insert(ids.end(), 1000, 3);  // 1000 copies: a gradient ~1000 times larger
      backward_rows(lazy_model.weight, ids, 300 + s);
      backward_rows(dense_model.weight, ids, 300 + s);
      lazy.clip_and_step(lr, 0);
      dense.clip_and_step(lr, 0);
      lazy_model.zero_grad();
      dense_model.zero_grad();
    }
    // Bring every row up to date with one last step that touches all of them.
    backward_rows(lazy_model.weight, {0, 1, 2, 3}, 999);
    backward_rows(dense_model.weight, {0, 1, 2, 3}, 999);
    lazy.clip_and_step(lr, 0);
    dense.clip_and_step(lr, 0);
    const Tensor a = lazy_model.weight.value(), b = dense_model.weight.value(), p0 = init;
    double max_motion = 0;
    for (std::int64_t i = 0; i < 20; ++i) {
      max_motion = std::max(max_motion, std::fabs(b.data<double>()[i] - p0.data<double>()[i]));
      // At a constant lr the replay's one approximation is eps taken to shrink with
      // sqrt(v) over a gap, which eps = 1e-14 makes ~1e-13 relative (sqrt(v_hat) ~ 0.1 to
      // 1). What is left is the rounding of the updates in different orders (measured
      // 1.8e-15 after 60 steps, 1.2e-14 after 2,100); 1e-12 is far from the ~1e-2 that
      // leaving the motion out costs.
      EXPECT_NEAR(a.data<double>()[i], b.data<double>()[i], 1e-12) << "element " << i << ", " << steps << " steps";
    }
    EXPECT_GT(max_motion, 1e-2);  // the rows did move: the comparison is not vacuous
  }
}

TEST(LazyAdamW, WithoutLazyRowsSparseGradientsAreDense) {
  const Tensor init = randn({6, 5}, 12, DType::f64);
  Table a(init), b(init);
  AdamW opt_a(a, {}), opt_b(b, {});
  backward_rows(a.weight, ids_at(0), 7);
  backward_rows(b.weight, ids_at(0), 7);
  b.weight.set_grad(b.weight.grad().clone());  // b: an explicitly dense gradient
  opt_a.clip_and_step(1e-2, 0);
  opt_b.clip_and_step(1e-2, 0);
  const double* p = a.weight.value().data<double>();
  const double* q = b.weight.value().data<double>();
  for (std::int64_t i = 0; i < 30; ++i) EXPECT_EQ(p[i], q[i]);
  EXPECT_FALSE(opt_a.state().at("weight").row_step.defined());
}

}  // namespace
}  // namespace prunerec::nn
