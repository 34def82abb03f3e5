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
