// autograd/var.h: the tape. Accumulation over several backward calls, a Var used twice,
// diamonds, NoGradGuard, retain_grad, seeds, error messages, leaves without gradients, and
// that no two gradients share storage.
//
// Values are small integers or exact binary fractions where the arithmetic is checked
// exactly (every sum and product below is exact in f64).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "autograd/var.h"
#include "tensor/tensor.h"
#include "tests/common/expect_error.h"

namespace prunerec::ag {
namespace {

using prunerec::testing::expect_shape_error;

Tensor vec(const std::vector<double>& v) { return Tensor::from_vector(v); }
Tensor mat(const std::vector<double>& v, std::int64_t rows, std::int64_t cols) { return Tensor::from_vector(v, {rows, cols}); }
std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

TEST(Engine, LeafBasics) {
  Var x(vec({1, 2}), true), c(vec({3, 4}));
  EXPECT_TRUE(x.is_leaf());
  EXPECT_TRUE(x.requires_grad());
  EXPECT_FALSE(c.requires_grad());
  EXPECT_FALSE(x.grad().defined());
  EXPECT_EQ(x.grad_fn(), nullptr);
  const Var y = mul(x, c);
  EXPECT_FALSE(y.is_leaf());
  ASSERT_NE(y.grad_fn(), nullptr);
  EXPECT_STREQ(y.grad_fn()->name(), "mul");
  EXPECT_TRUE(y.requires_grad());
  EXPECT_FALSE(add(c, c).requires_grad());  // no input needs a gradient: no node
  EXPECT_EQ(add(c, c).grad_fn(), nullptr);
  EXPECT_THROW(Var(Tensor::zeros({2}, DType::i32), true), ShapeError);  // integers cannot require a gradient
  Var ids(Tensor::zeros({2}, DType::i32));
  EXPECT_FALSE(ids.requires_grad());
  EXPECT_THROW(Var{Tensor()}, ShapeError);
  Var y2 = y;
  EXPECT_THROW(y2.set_requires_grad(false), ShapeError);  // only leaves
}

TEST(Engine, GradientsAccumulateOverBackwardCalls) {
  Var x(vec({1, 2, 3}), true);
  const Tensor w = vec({2, -1, 0.5});
  sum(mul(x, Var(w))).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, -1, 0.5}));
  sum(mul(x, Var(w))).backward();  // a second forward and backward adds
  EXPECT_EQ(values(x.grad()), (std::vector<double>{4, -2, 1}));
  scale(sum(x), 3.0).backward();   // a different graph on the same leaf adds too
  EXPECT_EQ(values(x.grad()), (std::vector<double>{7, 1, 4}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(x).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{1, 1, 1}));
  // A graph is used once: its nodes free their saved tensors after the backward, so a
  // second backward through it is refused rather than silently wrong.
  x.zero_grad();
  const Var y = sum(mul(x, x));
  y.backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, 4, 6}));
  expect_shape_error([&] { y.backward(); }, {"already used", "forward again"});
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, 4, 6}));
}

TEST(Engine, VarUsedTwiceGetsBothContributions) {
  Var x(vec({1.5, -2, 3}), true);
  sum(mul(x, x)).backward();  // d/dx sum x^2 = 2x
  EXPECT_EQ(values(x.grad()), (std::vector<double>{3, -4, 6}));
  x.zero_grad();
  sum(add(x, x)).backward();  // add passes one gradient tensor to both slots
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, 2, 2}));
  x.zero_grad();
  Var w(mat({1, 2, 3, 4, 5, 6}, 2, 3), true);
  const Var xm = reshape(x, {1, 3});
  sum(linear(linear(xm, w), Var(mat({1, 0, 0, 1, 1, 1}, 3, 2)))).backward();  // w used once, x through a chain
  EXPECT_TRUE(x.grad().defined());
  EXPECT_TRUE(w.grad().defined());
}

// Note [leaf-ready hook]: each leaf is reported once, when its gradient is final; a leaf
// used by two nodes is reported after the second. Here w2 is final first (its one node
// runs second in the backward pass); x is an input of the last mul and of x w1, so it is
// final only with w1, at the last node (reported in input order: x, then w1); c, which
// does not require a gradient, is never reported.
TEST(Engine, LeafReadyHookReportsEachLeafOnceWithItsFinalGradient) {
  Var x(vec({1.5, -2, 3}), true), w1(vec({0.5, 1, 2}), true), w2(vec({-1, 2, 0.25}), true), c(vec({1, 1, 1}), false);
  const Var y = mul(x, w1);
  const Var loss = sum(mul(mul(add(y, c), w2), x));  // sum((x w1 + 1) w2 x)
  std::vector<std::string> order;
  std::vector<std::vector<double>> at_report;
  const std::function<void(const VarImpl*)> hook = [&](const VarImpl* leaf) {
    const Var* which = leaf == x.impl() ? &x : leaf == w1.impl() ? &w1 : leaf == w2.impl() ? &w2 : nullptr;
    ASSERT_NE(which, nullptr) << "a leaf that does not require a gradient was reported";
    order.push_back(which == &x ? "x" : which == &w1 ? "w1" : "w2");
    at_report.push_back(values(which->grad()));
  };
  loss.backward(Tensor(), &hook);
  EXPECT_EQ(order, (std::vector<std::string>{"w2", "x", "w1"}));
  // What each leaf held when reported is its final gradient.
  for (std::size_t i = 0; i < order.size(); ++i) {
    const Var& v = order[i] == "x" ? x : order[i] == "w1" ? w1 : w2;
    EXPECT_EQ(at_report[i], values(v.grad())) << order[i];
  }
  // d/dx = w1 w2 x + (x w1 + 1) w2
  EXPECT_EQ(values(x.grad()), (std::vector<double>{1.5 * 0.5 * -1 + (0.75 + 1) * -1, -2 * 1 * 2 + (-2 + 1) * 2,
                                                   3 * 2 * 0.25 + (6 + 1) * 0.25}));
}

TEST(Engine, DiamondGraphs) {
  // a -> b = 2a, c = a*a -> d = b*c = 2a^3: dd/da = 6a^2.
  Var a(vec({1, -2, 0.5}), true);
  const Var b = scale(a, 2.0), c = mul(a, a);
  sum(mul(b, c)).backward();
  EXPECT_EQ(values(a.grad()), (std::vector<double>{6, 24, 1.5}));
  // A non-leaf used by two consumers: u = a + a; y = u*u + 3u -> dy/da = 2 (2u + 3).
  a.zero_grad();
  const Var u = add(a, a);
  sum(add(mul(u, u), scale(u, 3.0))).backward();
  EXPECT_EQ(values(a.grad()), (std::vector<double>{14, -10, 10}));
  // Two leaves meeting in a diamond through reshapes.
  Var p(mat({1, 2, 3, 4}, 2, 2), true), q(mat({5, 6, 7, 8}, 2, 2), true);
  const Var s = add(p, q);
  sum(mul(reshape(s, {4}), reshape(mul(p, q), {4}))).backward();  // sum((p+q) p q)
  // d/dp = 2pq + q^2, d/dq = p^2 + 2pq
  EXPECT_EQ(values(p.grad()), (std::vector<double>{35, 60, 91, 128}));
  EXPECT_EQ(values(q.grad()), (std::vector<double>{11, 28, 51, 80}));
}

TEST(Engine, NoGradGuardRecordsNothing) {
  Var x(vec({1, 2}), true);
  EXPECT_TRUE(grad_enabled());
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(grad_enabled());
    const Var y = mul(x, x);
    EXPECT_EQ(y.grad_fn(), nullptr);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(values(y.value()), (std::vector<double>{1, 4}));
    const Var l = cross_entropy(reshape(x, {1, 2}), Tensor::from_vector<std::int32_t>({1}));
    EXPECT_EQ(l.grad_fn(), nullptr);
    EXPECT_THROW(l.backward(), ShapeError);  // nothing to backpropagate
    {
      NoGradGuard nested;
      EXPECT_FALSE(grad_enabled());
    }
    EXPECT_FALSE(grad_enabled());  // the inner guard restores the outer state
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_NE(mul(x, x).grad_fn(), nullptr);
  EXPECT_FALSE(x.grad().defined());
}

TEST(Engine, RetainGradOnNonLeaf) {
  Var x(vec({1, 2, 3}), true);
  Var h = scale(x, 2.0);
  h.retain_grad();
  const Var other = scale(x, 5.0);  // not retained
  sum(add(mul(h, h), other)).backward();
  ASSERT_TRUE(h.grad().defined());
  EXPECT_EQ(values(h.grad()), (std::vector<double>{4, 8, 12}));  // 2h
  EXPECT_FALSE(other.grad().defined());
  EXPECT_EQ(values(x.grad()), (std::vector<double>{13, 21, 29}));  // 2 * 2h + 5
  // Retained gradients do not alias the leaf's.
  EXPECT_FALSE(h.grad().shares_storage(x.grad()));
}

TEST(Engine, SeedsAndScalars) {
  Var x(vec({1, 2, 3}), true);
  const Var y = scale(x, 3.0);
  expect_shape_error([&] { y.backward(); }, {"backward", "scalar", "f64[3]"});
  y.backward(vec({1, 0, -2}));  // an explicit seed of the output's shape
  EXPECT_EQ(values(x.grad()), (std::vector<double>{3, 0, -6}));
  expect_shape_error([&] { y.backward(vec({1, 2})); }, {"seed", "f64[2]", "f64[3]"});
  // A one-element non-scalar is fine without a seed.
  Var z(Tensor::full({1, 1}, 2.0, DType::f64), true);
  mul(z, z).backward();
  EXPECT_EQ(values(z.grad()), (std::vector<double>{4}));
  // backward of a leaf: its gradient is the seed, owned (not the caller's tensor).
  Var leaf(vec({5}), true);
  const Tensor seed = vec({1});
  leaf.backward(seed);
  EXPECT_FALSE(leaf.grad().shares_storage(seed));
  Var c(vec({1}));
  EXPECT_THROW(c.backward(), ShapeError);  // does not require a gradient
}

TEST(Engine, ShapeErrorsNameTheOpAndShapes) {
  Var x(Tensor::zeros({2, 3}, DType::f64), true), w(Tensor::zeros({4, 5}, DType::f64), true);
  expect_shape_error([&] { (void)linear(x, w); }, {"linear", "f64[2,3]", "f64[4,5]"});
  expect_shape_error([&] { (void)linear(x, Var(Tensor::zeros({4, 3}, DType::f64)), Var(Tensor::zeros({5}, DType::f64))); },
                     {"linear", "bias", "f64[5]", "f64[4,3]"});
  expect_shape_error([&] { (void)matmul(x, w); }, {"matmul", "f64[2,3]", "f64[4,5]", "3 != 4"});
  expect_shape_error([&] { (void)add(x, w); }, {"add", "f64[2,3]", "f64[4,5]"});
  expect_shape_error([&] { (void)mul(x, w); }, {"mul", "f64[2,3]", "f64[4,5]"});
  expect_shape_error([&] { (void)add(x, Var(Tensor::zeros({2, 3}))); }, {"add", "dtype", "f64[2,3]", "f32[2,3]"});
  expect_shape_error([&] { (void)reshape(x, {4, 2}); }, {"f64[2,3]", "[4,2]"});
  expect_shape_error([&] { (void)mul_channels(x, Tensor::zeros({4}, DType::f64)); }, {"mul_channels", "f64[4]", "f64[2,3]"});
  expect_shape_error([&] { (void)rmsnorm(x, Var(Tensor::ones({4}, DType::f64)), 1e-5); }, {"rmsnorm", "f64[2,3]", "f64[4]"});
  expect_shape_error([&] { (void)swiglu(x, w); }, {"swiglu", "f64[2,3]", "f64[4,5]"});
  expect_shape_error([&] { (void)embedding(w, Tensor::from_vector<std::int32_t>({4})); }, {"embedding", "4", "f64[4,5]"});
  expect_shape_error([&] { (void)embedding(w, Tensor::from_vector<std::int32_t>({-2})); }, {"embedding", "-2"});
  expect_shape_error([&] { (void)embedding(w, Tensor::zeros({2}, DType::i64)); }, {"embedding", "i64[2]"});
  expect_shape_error([&] { (void)cross_entropy(x, Tensor::from_vector<std::int32_t>({0})); }, {"cross_entropy", "i32[1]"});
  expect_shape_error([&] { (void)cross_entropy(x, Tensor::from_vector<std::int32_t>({0, 3})); },
                     {"cross_entropy", "target 3", "row 1"});
  expect_shape_error([&] { (void)distill_loss(x, Tensor::zeros({2, 4}, DType::f64), Tensor::from_vector<std::int32_t>({0, 0}), 0.5, 1.0); },
                     {"distill_loss", "f64[2,3]", "f64[2,4]"});
  expect_shape_error([&] { (void)linear_cross_entropy(x, w, Tensor::from_vector<std::int32_t>({0, 0})); },
                     {"linear_cross_entropy", "f64[2,3]", "f64[4,5]"});
  AttentionArgs args;
  args.head_dim = 2;
  args.pads = Tensor::from_vector<std::int32_t>({0});
  args.kv_map = {0};
  Var q(Tensor::zeros({1, 3, 2}, DType::f64)), k(Tensor::zeros({1, 4, 2}, DType::f64));
  expect_shape_error([&] { (void)attention(q, k, k, args); }, {"attention", "f64[1,3,2]", "f64[1,4,2]"});
  args.kv_map = {1};
  expect_shape_error([&] { (void)attention(q, q, q, args); }, {"attention", "kv_map"});
  args.kv_map = {0};
  args.pads = Tensor::from_vector<std::int32_t>({4});
  expect_shape_error([&] { (void)attention(q, q, q, args); }, {"attention", "pads"});
  args.pads = Tensor::from_vector<std::int32_t>({0});
  args.head_dim = 3;
  expect_shape_error([&] { (void)attention(q, q, q, args); }, {"attention", "head_dim"});
}

TEST(Engine, LeavesWithoutRequiresGradGetNoGradient) {
  Var x(vec({1, 2}), true), c(vec({3, 4})), d(vec({5, 6}));
  sum(mul(add(x, c), d)).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{5, 6}));
  EXPECT_FALSE(c.grad().defined());
  EXPECT_FALSE(d.grad().defined());
  // A leaf that stops requiring a gradient is skipped from then on.
  Var w(vec({1, 1}), true);
  w.set_requires_grad(false);
  sum(mul(x, w)).backward();
  EXPECT_FALSE(w.grad().defined());
  // Constants handed to ops (teacher logits, gates, ids) never get one either.
  Var s(mat({1, 2, 3, 4}, 2, 2), true);
  const Tensor teacher = mat({0, 1, 1, 0}, 2, 2);
  distill_loss(s, teacher, Tensor::from_vector<std::int32_t>({0, 1}), 0.5, 2.0).backward();
  EXPECT_TRUE(s.grad().defined());
}

TEST(Engine, GradientsAreNotAliasedBetweenLeaves) {
  Var a(vec({1, 2, 3}), true), b(vec({4, 5, 6}), true);
  sum(add(a, b)).backward();
  ASSERT_TRUE(a.grad().defined());
  ASSERT_TRUE(b.grad().defined());
  EXPECT_FALSE(a.grad().shares_storage(b.grad()));
  Tensor ga = a.grad();
  ga.set({0}, 100.0);  // modify a's gradient in place
  EXPECT_EQ(values(b.grad()), (std::vector<double>{1, 1, 1}));
  // The same through an explicit seed: the caller's seed is not adopted by either leaf.
  a.zero_grad();
  b.zero_grad();
  const Tensor seed = vec({1, 2, 3});
  add(a, b).backward(seed);
  EXPECT_FALSE(a.grad().shares_storage(seed));
  EXPECT_FALSE(b.grad().shares_storage(seed));
  EXPECT_FALSE(a.grad().shares_storage(b.grad()));
  Tensor ga2 = a.grad();  // shares the gradient's storage
  ga2.set({1}, -7.0);
  EXPECT_EQ(values(seed), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(values(b.grad()), (std::vector<double>{1, 2, 3}));
  // A reshape passes a view of the incoming gradient: the leaf must own a copy.
  Var m(mat({1, 2, 3, 4}, 2, 2), true), n(vec({1, 1, 1, 1}), true);
  const Var r = add(reshape(m, {4}), n);
  r.backward(vec({1, 2, 3, 4}));
  EXPECT_FALSE(m.grad().shares_storage(n.grad()));
  Tensor gm = m.grad();
  gm.set({0, 0}, 50.0);
  EXPECT_EQ(values(n.grad()), (std::vector<double>{1, 2, 3, 4}));
  // A leaf's gradient is contiguous and of its shape even when the leaf is a view.
  Var view(mat({1, 2, 3, 4, 5, 6}, 2, 3).transpose(0, 1), true);
  sum(mul(view, view)).backward();
  EXPECT_EQ(view.grad().shape(), (Shape{3, 2}));
  EXPECT_TRUE(view.grad().is_contiguous());
  EXPECT_EQ(values(view.grad()), (std::vector<double>{2, 8, 4, 10, 6, 12}));
}

TEST(Engine, SetValueAndSetGrad) {
  Var w(vec({1, 2}), true);
  sum(mul(w, w)).backward();
  EXPECT_TRUE(w.grad().defined());
  w.set_value(vec({3, 4, 5}));  // surgery swaps the tensor in the slot; the gradient is dropped
  EXPECT_FALSE(w.grad().defined());
  EXPECT_EQ(w.shape(), (Shape{3}));
  sum(w).backward();
  EXPECT_EQ(values(w.grad()), (std::vector<double>{1, 1, 1}));
  EXPECT_THROW(w.set_grad(vec({1})), ShapeError);
  w.set_grad(vec({0, 0, 1}));
  sum(w).backward();
  EXPECT_EQ(values(w.grad()), (std::vector<double>{1, 1, 2}));
  const Var y = scale(w, 2.0);
  Var y2 = y;
  EXPECT_THROW(y2.set_value(vec({1})), ShapeError);  // only leaves
}

TEST(Engine, SavedTensorsAreReleasedAfterBackward) {
  // Note [graph lifetime]: a node drops its saved tensors once its backward has run.
  Var q(Tensor::full({1, 2, 4}, 0.5, DType::f64), true);
  AttentionArgs args;
  args.head_dim = 4;
  args.pads = Tensor::from_vector<std::int32_t>({0});
  args.kv_map = {0};
  std::weak_ptr<Node> node;
  {
    const Var y = attention(q, q, q, args);
    node = y.grad_fn();
    sum(y).backward();
  }
  EXPECT_TRUE(node.expired());  // freed with the last Var referring to it
  EXPECT_TRUE(q.grad().defined());
}

}  // namespace
}  // namespace prunerec::ag
