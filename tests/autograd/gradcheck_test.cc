// Gradient checks for every op in autograd/ops.h: backward() against central finite
// differences in f64 on small shapes, on every element of every leaf; plus value checks
// against the naive twins (a gradient check only proves the gradient matches the value).
//
// Note [gradient check tolerance]: f64, central differences with step h = 1e-6. The
// truncation error is h^2/6 |f'''| ~ 1e-13 for the O(1) third derivatives of these
// smooth functions, and the cancellation error is ~ eps |f| / h = 2.2e-16 |f| / 1e-6
// ~ 2e-10 |f| (|f| is at most ~10 here). A tolerance of 1e-6 + 1e-6 |fd| is some 500x above
// both, while a wrong factor, sign, index or missing term gives errors of order |g| itself.
// The largest error seen per check is printed as "[ measured ]".
//
// Non-scalar ops are reduced with sum(mul(op(...), R)) for a fixed random R, so every
// output element carries its own weight into the gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "autograd/var.h"
#include "tensor/kernels/reference.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace prunerec::ag {
namespace {

constexpr double kStep = 1e-6;   // Note [gradient check tolerance]
constexpr double kAtol = 1e-6;
constexpr double kRtol = 1e-6;

Tensor randn(const Shape& shape, std::uint64_t seed, double scale = 1.0, DType dtype = DType::f64) {
  Tensor t = Tensor::empty(shape, DType::f64);
  fill_normal(t, 0.0, scale, seed, 3);
  return t.to(dtype);
}

Var leaf(const Shape& shape, std::uint64_t seed, double scale = 1.0) { return Var(randn(shape, seed, scale), true); }

// sum(y * R) with R fixed and random (seeded by the output's shape and `seed`).
Var weighted_sum(const Var& y, std::uint64_t seed = 1234) {
  return sum(mul(y, Var(randn(y.shape(), seed, 1.0, y.dtype()))));
}

// Pointer to element `flat` (row-major) of any layout: lets the check perturb the values of
// non-contiguous leaves in place.
double* element(const Tensor& t, std::int64_t flat) {
  std::int64_t off = t.offset();
  for (int d = t.dim() - 1; d >= 0; --d) {
    off += (flat % t.size(d)) * t.stride(d);
    flat /= t.size(d);
  }
  return static_cast<double*>(t.storage()->data()) + off;
}

// Compares backward() with central differences on every element of every leaf that
// requires a gradient; leaves that do not must get no gradient. f rebuilds the scalar from
// the current leaf values (it is called 2 * elements + 1 times).
void expect_gradients_match(const std::string& name, std::vector<Var> leaves, const std::function<Var()>& f) {
  for (Var& l : leaves) {
    ASSERT_EQ(l.dtype(), DType::f64) << name << ": gradient checks run in f64";
    l.zero_grad();
  }
  const Var y = f();
  ASSERT_EQ(y.numel(), 1) << name;
  {
    // The finite differences need f to be a pure function of the leaf values.
    NoGradGuard no_grad;
    const double again = f().value().item(), once_more = f().value().item();
    ASSERT_EQ(again, y.value().item()) << name << ": f is not deterministic (no-grad vs recorded forward)";
    ASSERT_EQ(once_more, again) << name << ": f is not deterministic";
  }
  y.backward();
  double max_err = 0, max_ratio = 0;
  std::int64_t checked = 0;
  for (std::size_t li = 0; li < leaves.size(); ++li) {
    const Var& l = leaves[li];
    if (!l.requires_grad()) {
      EXPECT_FALSE(l.grad().defined()) << name << ": leaf " << li << " does not require a gradient but got one";
      continue;
    }
    ASSERT_TRUE(l.grad().defined()) << name << ": no gradient for leaf " << li;
    ASSERT_EQ(l.grad().shape(), l.shape()) << name << ": leaf " << li;
    const std::vector<double> g = l.grad().to_vector<double>();
    int failures = 0;
    for (std::int64_t i = 0; i < l.numel(); ++i) {
      double* p = element(l.value(), i);
      const double x0 = *p;
      double up, down;
      {
        NoGradGuard no_grad;
        *p = x0 + kStep;
        up = f().value().item();
        *p = x0 - kStep;
        down = f().value().item();
      }
      *p = x0;
      const double fd = (up - down) / (2 * kStep), err = std::fabs(g[i] - fd), bound = kAtol + kRtol * std::fabs(fd);
      if (!(err <= bound) && failures++ < 5)
        ADD_FAILURE() << name << ": leaf " << li << " element " << i << ": backward " << g[i] << ", finite difference "
                      << fd << ", |err| " << err;
      max_err = std::max(max_err, err);
      max_ratio = std::max(max_ratio, err / bound);
      ++checked;
    }
  }
  std::printf("[ measured ] gradcheck %-52s %5ld elements  max|err| %9.3g  max err/tol %7.3g\n", name.c_str(),
              static_cast<long>(checked), max_err, max_ratio);
}

// Tolerance for f64 value checks against the twins: sums of at most a few hundred O(1)
// terms in a different order, so ~1e-14 relative; 1e-12 leaves 100x.
constexpr double kValueTol = 1e-12;

void expect_values_close(const Tensor& got, const Tensor& want, const std::string& name, double tol = kValueTol) {
  ASSERT_EQ(got.shape(), want.shape()) << name;
  EXPECT_TRUE(allclose(got, want, tol, tol)) << name << ": max |diff| " << max_abs_diff(got, want);
}

// ---- linear algebra ------------------------------------------------------------------------

Tensor linear_ref(const Tensor& x, const Tensor& w, const Tensor& b) {
  const std::int64_t in = w.size(1), out = w.size(0), n = x.numel() / in;
  const std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>();
  std::vector<double> y(n * out);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t o = 0; o < out; ++o) {
      double s = b.defined() ? b.at({o}) : 0.0;
      for (std::int64_t k = 0; k < in; ++k) s += xv[r * in + k] * wv[o * in + k];
      y[r * out + o] = s;
    }
  Shape shape = x.shape();
  shape.back() = out;
  return Tensor::from_vector(y, shape);
}

TEST(GradCheck, Linear) {
  Var x = leaf({5, 7}, 1), w = leaf({3, 7}, 2), b = leaf({3}, 3);
  expect_values_close(linear(x, w, b).value(), linear_ref(x.value(), w.value(), b.value()), "linear");
  expect_gradients_match("linear with bias", {x, w, b}, [&] { return weighted_sum(linear(x, w, b)); });
  expect_gradients_match("linear without bias", {x, w}, [&] { return weighted_sum(linear(x, w)); });
  Var x3 = leaf({2, 3, 7}, 4);
  expect_values_close(linear(x3, w, b).value(), linear_ref(x3.value(), w.value(), b.value()), "linear 3-D");
  expect_gradients_match("linear 3-D input", {x3, w, b}, [&] { return weighted_sum(linear(x3, w, b)); });
  // Non-contiguous x (a transposed view) and weight (every other row), 1-D x.
  Var xt(randn({7, 5}, 5).transpose(0, 1), true);
  Var ws(randn({6, 7}, 6).slice(0, 0, 6, 2), true);
  Var bs(randn({6}, 7).slice(0, 1, 6, 2), true);
  ASSERT_FALSE(xt.value().is_contiguous());
  expect_values_close(linear(xt, ws, bs).value(), linear_ref(xt.value(), ws.value(), bs.value()), "linear views");
  expect_gradients_match("linear on non-contiguous views", {xt, ws, bs}, [&] { return weighted_sum(linear(xt, ws, bs)); });
  Var x1 = leaf({7}, 8);
  expect_gradients_match("linear 1-D input", {x1, w, b}, [&] { return weighted_sum(linear(x1, w, b)); });
  // Only some inputs require a gradient.
  Var wc(randn({3, 7}, 9));
  expect_gradients_match("linear constant weight", {x, wc, b}, [&] { return weighted_sum(linear(x, wc, b)); });
}

TEST(GradCheck, Matmul) {
  Var a = leaf({4, 6}, 11), b = leaf({6, 5}, 12);
  expect_values_close(matmul(a, b).value(), linear_ref(a.value(), b.value().transpose(0, 1).contiguous(), Tensor()),
                      "matmul");
  expect_gradients_match("matmul", {a, b}, [&] { return weighted_sum(matmul(a, b)); });
  Var at(randn({6, 4}, 13).transpose(0, 1), true);  // non-contiguous
  expect_gradients_match("matmul transposed view", {at, b}, [&] { return weighted_sum(matmul(at, b)); });
  Var row = leaf({1, 6}, 14), col = leaf({6, 1}, 15);
  expect_gradients_match("matmul 1x6 @ 6x1", {row, col}, [&] { return weighted_sum(matmul(row, col)); });
}

// ---- element-wise and shape ops --------------------------------------------------------------

TEST(GradCheck, AddMulScale) {
  Var a = leaf({3, 5}, 21), b = leaf({3, 5}, 22);
  expect_values_close(add(a, b).value(), Tensor::from_vector([&] {
                        auto x = a.value().to_vector<double>(), y = b.value().to_vector<double>();
                        for (std::size_t i = 0; i < x.size(); ++i) x[i] += y[i];
                        return x;
                      }(), {3, 5}), "add");
  expect_gradients_match("add", {a, b}, [&] { return weighted_sum(add(a, b)); });
  expect_gradients_match("mul", {a, b}, [&] { return weighted_sum(mul(a, b)); });
  expect_gradients_match("scale", {a}, [&] { return weighted_sum(scale(a, -1.7)); });
  Var p(randn({5, 3}, 23).transpose(0, 1), true);  // non-contiguous operand
  expect_gradients_match("mul with a transposed view", {a, p}, [&] { return weighted_sum(mul(a, p)); });
  expect_gradients_match("mul(a, a) ", {a}, [&] { return weighted_sum(mul(a, a)); });
}

TEST(GradCheck, SumMeanReshape) {
  Var a = leaf({3, 4}, 31);
  EXPECT_NEAR(sum(a).value().item(), [&] {
    double s = 0;
    for (double v : a.value().to_vector<double>()) s += v;
    return s;
  }(), kValueTol);
  EXPECT_EQ(sum(a).shape(), Shape{});
  expect_gradients_match("sum", {a}, [&] { return scale(sum(a), 0.5); });
  expect_gradients_match("mean", {a}, [&] { return mean(a); });
  EXPECT_NEAR(mean(a).value().item(), sum(a).value().item() / 12, kValueTol);
  expect_gradients_match("reshape", {a}, [&] { return weighted_sum(reshape(a, {2, -1, 3})); });
  EXPECT_EQ(reshape(a, {2, -1, 3}).shape(), (Shape{2, 2, 3}));
  Var t(randn({4, 3}, 32).transpose(0, 1), true);  // reshape of a non-contiguous leaf copies
  expect_gradients_match("reshape of a view", {t}, [&] { return weighted_sum(reshape(t, {12})); });
  expect_gradients_match("sum of a view", {t}, [&] { return sum(mul(t, t)); });
}

TEST(GradCheck, MulChannels) {
  Var a = leaf({2, 3, 5}, 41);
  const Tensor gate = Tensor::from_vector<double>({1.0, 0.0, 2.5, -0.5, 0.0});
  const Tensor y = mul_channels(a, gate).value();
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < 3; ++j)
      for (std::int64_t c = 0; c < 5; ++c) EXPECT_EQ(y.at({i, j, c}), a.value().at({i, j, c}) * gate.at({c}));
  expect_gradients_match("mul_channels", {a}, [&] { return weighted_sum(mul_channels(a, gate)); });
}

TEST(GradCheck, Dropout) {
  Var x = leaf({7, 13}, 51);
  const double p = 0.4;
  // The mask is a pure function of (seed, stream, index): the same in every evaluation,
  // so the function is linear in x and the finite differences are exact up to rounding.
  expect_gradients_match("dropout p 0.4", {x}, [&] { return weighted_sum(dropout(x, p, 5, 9)); });
  // Dropped positions get zero gradient, kept ones R / (1 - p).
  const Tensor y = dropout(x, p, 5, 9).value();
  x.zero_grad();
  sum(dropout(x, p, 5, 9)).backward();
  const std::vector<double> yv = y.to_vector<double>(), xv = x.value().to_vector<double>(),
                            gv = x.grad().to_vector<double>();
  const double keep_scale = 1.0 / (1.0 - static_cast<double>(static_cast<float>(p)));
  int dropped = 0;
  for (std::size_t i = 0; i < yv.size(); ++i) {
    if (yv[i] == 0.0) {
      ++dropped;
      EXPECT_EQ(gv[i], 0.0);
    } else {
      EXPECT_NEAR(yv[i], xv[i] * keep_scale, 1e-15 * std::fabs(yv[i]));
      EXPECT_NEAR(gv[i], keep_scale, 1e-15);
    }
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, static_cast<int>(yv.size()));
  EXPECT_TRUE(dropout(x, 0.0, 5, 9).same(x));  // p = 0: the identity, no node
  EXPECT_THROW(dropout(x, 1.0, 5, 9), ConfigError);
}

// ---- normalisation and activations --------------------------------------------------------------

TEST(GradCheck, RmsNorm) {
  Var x = leaf({2, 3, 5}, 61), w = leaf({5}, 62);
  Tensor want = Tensor::empty({2, 3, 5}, DType::f64);
  kernels::ref::rmsnorm<double>(6, 5, x.value().data<double>(), w.value().data<double>(), 1e-5, want.data<double>());
  expect_values_close(rmsnorm(x, w, 1e-5).value(), want, "rmsnorm");
  expect_gradients_match("rmsnorm x and weight", {x, w}, [&] { return weighted_sum(rmsnorm(x, w, 1e-5)); });
  Var xs(randn({4, 10}, 63).slice(1, 0, 10, 2), true);  // non-contiguous rows
  expect_gradients_match("rmsnorm strided x", {xs, w}, [&] { return weighted_sum(rmsnorm(xs, w, 1e-5)); });
  Var wc(randn({5}, 64));
  expect_gradients_match("rmsnorm constant weight", {x, wc}, [&] { return weighted_sum(rmsnorm(x, wc, 1e-5)); });
  Var xc(randn({2, 3, 5}, 65));
  expect_gradients_match("rmsnorm constant x", {xc, w}, [&] { return weighted_sum(rmsnorm(xc, w, 1e-5)); });
}

TEST(GradCheck, Swiglu) {
  Var g = leaf({4, 6}, 71, 2.0), u = leaf({4, 6}, 72);
  const Tensor channel_gate = Tensor::from_vector<double>({1.0, 0.0, 2.5, -0.5, 1.0, 0.0});
  for (bool gated : {false, true}) {
    const Tensor cg = gated ? channel_gate : Tensor();
    Tensor want = Tensor::empty({4, 6}, DType::f64);
    kernels::ref::swiglu<double>(4, 6, g.value().data<double>(), u.value().data<double>(),
                                 gated ? cg.data<double>() : nullptr, want.data<double>());
    expect_values_close(swiglu(g, u, cg).value(), want, gated ? "swiglu gated" : "swiglu");
    expect_gradients_match(gated ? "swiglu with channel gate" : "swiglu", {g, u},
                           [&] { return weighted_sum(swiglu(g, u, cg)); });
  }
  Var g3 = leaf({2, 2, 6}, 73), u3 = leaf({2, 2, 6}, 74);
  expect_gradients_match("swiglu 3-D", {g3, u3}, [&] { return weighted_sum(swiglu(g3, u3, channel_gate)); });
}

// ---- embedding ----------------------------------------------------------------------------------

TEST(GradCheck, Embedding) {
  Var table = leaf({6, 4}, 81);
  const Tensor ids = Tensor::from_vector<std::int32_t>({2, -1, 5, 2, 0, -1, 2, 5, 3, 2}, {2, 5});
  const Tensor y = embedding(table, ids).value();
  ASSERT_EQ(y.shape(), (Shape{2, 5, 4}));
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < 5; ++j) {
      const auto id = static_cast<std::int64_t>(ids.at({i, j}));
      for (std::int64_t c = 0; c < 4; ++c) EXPECT_EQ(y.at({i, j, c}), id < 0 ? 0.0 : table.value().at({id, c}));
    }
  // Padding ids (-1) get nothing, repeated ids (2 four times) sum, unused rows (1, 4) are 0.
  expect_gradients_match("embedding", {table}, [&] { return weighted_sum(embedding(table, ids)); });
  const Tensor all_pad = Tensor::full({3}, -1.0, DType::i32);
  table.zero_grad();
  weighted_sum(embedding(table, all_pad)).backward();
  EXPECT_EQ(max_abs_diff(table.grad(), Tensor::zeros({6, 4}, DType::f64)), 0.0);
}

// ---- attention ----------------------------------------------------------------------------------

struct AttnConfig {
  std::int64_t B, T, Hq, Hkv, dh;
  std::vector<std::int32_t> pads, kv_map;
  std::vector<double> gates;  // empty: none
  std::string name;
};

Tensor attention_ref(const Var& q, const Var& k, const Var& v, const AttnConfig& c, double theta) {
  Tensor out = Tensor::empty(q.shape(), DType::f64);
  const Tensor qc = q.value().contiguous(), kc = k.value().contiguous(), vc = v.value().contiguous();
  kernels::ref::attention<double>(c.B, c.T, c.Hq, c.Hkv, c.dh, qc.data<double>(), kc.data<double>(), vc.data<double>(),
                                  c.pads.data(), c.kv_map.data(), c.gates.empty() ? nullptr : c.gates.data(), theta,
                                  out.data<double>());
  return out;
}

TEST(GradCheck, Attention) {
  const std::vector<AttnConfig> configs = {
      // GQA with a non-contiguous map, gates incl. 0 and negative, a fully padded row.
      {3, 5, 4, 2, 4, {0, 2, 5}, {1, 0, 0, 1}, {1.0, 0.5, 0.0, -1.2}, "GQA, padding, gates, fully padded row"},
      {2, 1, 2, 1, 4, {0, 1}, {0, 0}, {0.7, 1.0}, "T = 1"},
      {2, 4, 2, 2, 6, {1, 0}, {0, 1}, {}, "MHA, no gates"},
      {1, 3, 2, 2, 4, {0}, {1, 1}, {1.0, 1.0}, "KV head 0 unused"},
  };
  for (const AttnConfig& c : configs) {
    Var q = leaf({c.B, c.T, c.Hq * c.dh}, 91), k = leaf({c.B, c.T, c.Hkv * c.dh}, 92), v = leaf({c.B, c.T, c.Hkv * c.dh}, 93);
    AttentionArgs args;
    args.head_dim = c.dh;
    args.rope_theta = 100.0;  // a small theta so every frequency rotates visibly at T <= 5
    args.pads = Tensor::from_vector<std::int32_t>(c.pads);
    args.kv_map = c.kv_map;
    if (!c.gates.empty()) args.head_gates = Tensor::from_vector<double>(c.gates);
    expect_values_close(attention(q, k, v, args).value(), attention_ref(q, k, v, c, args.rope_theta),
                        "attention " + c.name);
    expect_gradients_match("attention " + c.name, {q, k, v}, [&] { return weighted_sum(attention(q, k, v, args)); });
  }
  // Non-contiguous q and k: column slices of wider projection outputs (as when q, k and v
  // come from one fused projection).
  const AttnConfig& c = configs[0];
  Var q(randn({3, 5, 40}, 94).narrow(2, 8, 16), true), k(randn({3, 5, 16}, 95).narrow(2, 8, 8), true),
      v = leaf({3, 5, 8}, 96);
  ASSERT_FALSE(q.value().is_contiguous());
  AttentionArgs args;
  args.head_dim = 4;
  args.pads = Tensor::from_vector<std::int32_t>(c.pads);
  args.kv_map = c.kv_map;
  args.head_gates = Tensor::from_vector<double>(c.gates);
  expect_values_close(attention(q, k, v, args).value(), attention_ref(q, k, v, c, args.rope_theta), "attention views");
  expect_gradients_match("attention q, k strided views", {q, k, v}, [&] { return weighted_sum(attention(q, k, v, args)); });
}

// ---- losses -------------------------------------------------------------------------------------

TEST(GradCheck, CrossEntropy) {
  Var logits = leaf({6, 5}, 101, 2.0);
  const Tensor targets = Tensor::from_vector<std::int32_t>({0, -1, 4, 2, -1, 1});
  EXPECT_NEAR(cross_entropy(logits, targets).value().item(),
              kernels::ref::cross_entropy_mean<double>(6, 5, logits.value().data<double>(), targets.data<std::int32_t>()),
              kValueTol);
  expect_gradients_match("cross_entropy with ignored rows", {logits}, [&] { return cross_entropy(logits, targets); });
  expect_gradients_match("cross_entropy scaled upstream", {logits}, [&] { return scale(cross_entropy(logits, targets), -1.3); });
  Var view(randn({5, 6}, 102).transpose(0, 1), true);
  expect_gradients_match("cross_entropy of a view", {view}, [&] { return cross_entropy(view, targets); });
  // Every row ignored: the loss is 0 and the gradient exists and is zero.
  const Tensor none = Tensor::full({6}, -1.0, DType::i32);
  logits.zero_grad();
  const Var l = cross_entropy(logits, none);
  EXPECT_EQ(l.value().item(), 0.0);
  l.backward();
  ASSERT_TRUE(logits.grad().defined());
  EXPECT_EQ(max_abs_diff(logits.grad(), Tensor::zeros({6, 5}, DType::f64)), 0.0);
  EXPECT_THROW(cross_entropy(logits, Tensor::from_vector<std::int32_t>({0, 1, 5, 0, 0, 0})), ShapeError);
}

double distill_ref(const Tensor& s, const Tensor& t, const Tensor& targets, double alpha, double temp) {
  const std::int64_t N = s.size(0), V = s.size(1);
  const Tensor sc = s.contiguous(), tc = t.contiguous();
  double total = 0;
  std::int64_t valid = 0;
  for (std::int64_t r = 0; r < N; ++r) {
    const std::int32_t* tg = targets.data<std::int32_t>() + r;
    if (*tg < 0) continue;
    ++valid;
    const double ce = kernels::ref::cross_entropy_mean<double>(1, V, sc.data<double>() + r * V, tg);
    const double kl = kernels::ref::kl_mean<double>(1, V, sc.data<double>() + r * V, tc.data<double>() + r * V, tg, temp);
    total += alpha * ce + (1 - alpha) * temp * temp * kl;
  }
  return valid ? total / valid : 0.0;
}

TEST(GradCheck, DistillLoss) {
  Var s = leaf({5, 7}, 111, 2.0);
  const Tensor t = randn({5, 7}, 112, 2.0);
  const Tensor targets = Tensor::from_vector<std::int32_t>({3, -1, 0, 6, 2});
  for (double alpha : {0.0, 0.3, 1.0})
    for (double temp : {1.0, 2.0}) {
      const std::string name = "distill_loss alpha " + std::to_string(alpha).substr(0, 3) + " T " + std::to_string(temp).substr(0, 3);
      const Var l = distill_loss(s, t, targets, alpha, temp);
      EXPECT_NEAR(l.value().item(), distill_ref(s.value(), t, targets, alpha, temp), kValueTol) << name;
      const LossParts parts = last_loss_parts();
      EXPECT_NEAR(alpha * parts.ce + (1 - alpha) * temp * temp * parts.kl, l.value().item(), kValueTol) << name;
      expect_gradients_match(name, {s}, [&] { return distill_loss(s, t, targets, alpha, temp); });
    }
  const Tensor none = Tensor::full({5}, -1.0, DType::i32);
  s.zero_grad();
  const Var l = distill_loss(s, t, none, 0.3, 2.0);
  EXPECT_EQ(l.value().item(), 0.0);
  l.backward();
  EXPECT_EQ(max_abs_diff(s.grad(), Tensor::zeros({5, 7}, DType::f64)), 0.0);
  EXPECT_THROW(distill_loss(s, t, targets, 1.5, 1.0), ConfigError);
  EXPECT_THROW(distill_loss(s, t, targets, 0.5, 0.0), ConfigError);
}

// ---- fused output layer + loss -------------------------------------------------------------------

TEST(GradCheck, LinearCrossEntropySmall) {
  Var h = leaf({6, 5}, 121), w = leaf({9, 5}, 122);
  const Tensor targets = Tensor::from_vector<std::int32_t>({8, -1, 0, 4, 4, -1});
  expect_gradients_match("linear_cross_entropy h and weight", {h, w}, [&] { return linear_cross_entropy(h, w, targets); });
  expect_gradients_match("linear_cross_entropy scaled upstream", {h, w},
                         [&] { return scale(linear_cross_entropy(h, w, targets), 0.7); });
  Var wc(randn({9, 5}, 123));
  expect_gradients_match("linear_cross_entropy constant weight", {h, wc}, [&] { return linear_cross_entropy(h, wc, targets); });
  // Same value as the composition (through linear, which is h @ w^T).
  EXPECT_NEAR(linear_cross_entropy(h, w, targets).value().item(), cross_entropy(linear(h, w), targets).value().item(),
              kValueTol);
  const Tensor none = Tensor::full({6}, -1.0, DType::i32);
  h.zero_grad();
  w.zero_grad();
  const Var l = linear_cross_entropy(h, w, none);
  EXPECT_EQ(l.value().item(), 0.0);
  l.backward();
  EXPECT_EQ(max_abs_diff(h.grad(), Tensor::zeros({6, 5}, DType::f64)), 0.0);
  EXPECT_EQ(max_abs_diff(w.grad(), Tensor::zeros({9, 5}, DType::f64)), 0.0);
}

TEST(GradCheck, LinearDistillLossSmall) {
  Var h = leaf({6, 5}, 131), w = leaf({9, 5}, 132);
  const Tensor th = randn({6, 3}, 133), tw = randn({9, 3}, 134, 1.5);
  const Tensor targets = Tensor::from_vector<std::int32_t>({8, -1, 0, 4, 4, 2});
  for (double alpha : {0.0, 0.3, 1.0})
    for (double temp : {1.0, 2.0}) {
      const std::string name = "linear_distill_loss alpha " + std::to_string(alpha).substr(0, 3) + " T " +
                               std::to_string(temp).substr(0, 3);
      const Tensor teacher_logits = linear(Var(th), Var(tw)).value();
      EXPECT_NEAR(linear_distill_loss(h, w, th, tw, targets, alpha, temp).value().item(),
                  distill_loss(linear(h, w), teacher_logits, targets, alpha, temp).value().item(), kValueTol)
          << name;
      expect_gradients_match(name, {h, w}, [&] { return linear_distill_loss(h, w, th, tw, targets, alpha, temp); });
    }
}

// The teacher's top k of Note [top-k distillation] from its logits [N, V]: items by
// descending logit (ties to the lower index), log-probabilities at temperature T, and the
// log of the rest's mass (computed over the rest, -inf when k = V).
struct TeacherTopK {
  Tensor items, logp, rest;
};
TeacherTopK teacher_top_k(const Tensor& logits, int k, double temp) {
  const std::int64_t N = logits.size(0), V = logits.size(1);
  TeacherTopK t{Tensor::empty({N, k}, DType::i32), Tensor::empty({N, k}, DType::f64), Tensor::empty({N}, DType::f64)};
  for (std::int64_t r = 0; r < N; ++r) {
    const double* x = logits.data<double>() + r * V;
    std::vector<int> order(static_cast<std::size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return x[a] > x[b]; });
    const double m = x[order[0]] / temp;
    double z = 0, z_rest = 0;
    for (std::int64_t j = 0; j < V; ++j) z += std::exp(x[order[j]] / temp - m);
    for (std::int64_t j = k; j < V; ++j) z_rest += std::exp(x[order[j]] / temp - m);
    for (int i = 0; i < k; ++i) {
      t.items.data<std::int32_t>()[r * k + i] = order[i];
      t.logp.data<double>()[r * k + i] = x[order[i]] / temp - m - std::log(z);
    }
    t.rest.data<double>()[r] = k == V ? -std::numeric_limits<double>::infinity() : std::log(z_rest) - std::log(z);
  }
  return t;
}

// With every item in the teacher's list, top-k distillation is full distillation.
TEST(TopKDistill, AllItemsEqualsFullDistillation) {
  Var h = leaf({6, 5}, 141), w = leaf({9, 5}, 142);
  const Tensor th = randn({6, 3}, 143), tw = randn({9, 3}, 144, 1.5);
  const Tensor targets = Tensor::from_vector<std::int32_t>({8, -1, 0, 4, 4, 2});
  for (double temp : {1.0, 2.0}) {
    const TeacherTopK t = teacher_top_k(linear(Var(th), Var(tw)).value(), 9, temp);
    h.zero_grad();
    w.zero_grad();
    const Var full = linear_distill_loss(h, w, th, tw, targets, 0.3, temp);
    full.backward();
    const Tensor gh = h.grad().clone(), gw = w.grad().clone();
    h.zero_grad();
    w.zero_grad();
    const Var topk = linear_topk_distill_loss(h, w, t.items, t.logp, t.rest, targets, 0.3, temp);
    topk.backward();
    EXPECT_NEAR(topk.value().item(), full.value().item(), kValueTol) << "T " << temp;
    expect_values_close(h.grad(), gh, "dh, T " + std::to_string(temp));
    expect_values_close(w.grad(), gw, "dW, T " + std::to_string(temp));
  }
}

TEST(GradCheck, TopKDistillLoss) {
  Var h = leaf({6, 5}, 145), w = leaf({9, 5}, 146);
  const Tensor th = randn({6, 3}, 147), tw = randn({9, 3}, 148, 1.5);
  const Tensor targets = Tensor::from_vector<std::int32_t>({8, -1, 0, 4, 4, 2});
  for (int k : {1, 3})
    for (double alpha : {0.0, 0.3})
      for (double temp : {1.0, 2.0}) {
        const TeacherTopK t = teacher_top_k(linear(Var(th), Var(tw)).value(), k, temp);
        const std::string name = "linear_topk_distill_loss k " + std::to_string(k) + " alpha " +
                                 std::to_string(alpha).substr(0, 3) + " T " + std::to_string(temp).substr(0, 3);
        expect_gradients_match(name, {h, w}, [&] {
          return linear_topk_distill_loss(h, w, t.items, t.logp, t.rest, targets, alpha, temp);
        });
      }
  // The KL part is zero when the student's own top-k view is the teacher's.
  const TeacherTopK self = teacher_top_k(linear(h, w).value(), 3, 2.0);
  (void)linear_topk_distill_loss(h, w, self.items, self.logp, self.rest, targets, 0.0, 2.0);
  EXPECT_NEAR(last_loss_parts().kl, 0.0, 1e-12);
  // A teacher item listed twice in a row is refused, naming it.
  Tensor twice = self.items.clone();
  twice.data<std::int32_t>()[1] = twice.data<std::int32_t>()[0];
  EXPECT_THROW(linear_topk_distill_loss(h, w, twice, self.logp, self.rest, targets, 0.3, 2.0), ShapeError);
}

// Multi-chunk equality with the unfused composition matmul(h, W^T) + loss. Chunks hold
// clamp(2^21 / V, 32, N) rows: V = 20011 gives 104-row chunks, so N = 233 runs chunks of
// 104, 104 and 25 rows (too large for finite differences; compared with the composition).
//
// Tolerances: both sides run the same loss kernel; they differ in the GEMMs (chunked
// h W^T vs one product, and dlogits W / dlogits^T h summed over V or N in other orders).
// A K-term product has error <= K eps sum|terms|, so each gradient entry is compared with
// (V + N + d) eps sum_k |dlogits| |factor| (the dlogits come from the unfused graph through
// retain_grad), and the loss with (d + 8) eps times the mean |logit| scale, 100x looser.
template <class Loss, class Unfused>
void expect_fused_matches_unfused(const std::string& name, DType dtype, Loss&& fused_loss, Unfused&& unfused_loss) {
  const std::int64_t N = 233, V = 20011, d = 8;
  const double eps = dtype == DType::f32 ? std::numeric_limits<float>::epsilon() : std::numeric_limits<double>::epsilon();
  Var h(randn({N, d}, 141, 1.0, dtype), true), w(randn({V, d}, 142, 0.7, dtype), true);
  std::vector<std::int32_t> tv(N);
  Rng rng(143);
  for (auto& t : tv) t = rng.below(5) == 0 ? -1 : static_cast<std::int32_t>(rng.below(V));
  const Tensor targets = Tensor::from_vector(tv);

  const Var fused = fused_loss(h, w, targets);
  fused.backward();
  const Tensor dh_fused = h.grad(), dw_fused = w.grad();
  h.zero_grad();
  w.zero_grad();
  Var wt(w.value().transpose(0, 1), true);  // [d, V], a non-contiguous view of the same values
  Var logits = matmul(h, wt);
  logits.retain_grad();
  const Var unfused = unfused_loss(logits, targets);
  unfused.backward();
  const Tensor dl = logits.grad().to(DType::f64), hv = h.value().to(DType::f64), wv = w.value().to(DType::f64);
  ASSERT_TRUE(dl.defined());

  // Loss: logits differ by <= d eps sum|h w| ~ d eps |logit|; the loss is O(|logit|).
  EXPECT_NEAR(fused.value().item(), unfused.value().item(), 100 * (d + 8) * eps * (1 + std::fabs(unfused.value().item())))
      << name;
  const std::vector<double> dlv = dl.to_vector<double>(), h_v = hv.to_vector<double>(), w_v = wv.to_vector<double>();
  const std::vector<double> dh_f = dh_fused.to_vector<double>(), dh_u = h.grad().to_vector<double>();
  const std::vector<double> dw_f = dw_fused.to_vector<double>(), dwt_u = wt.grad().to_vector<double>();
  double worst = 0;
  int failures = 0;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t c = 0; c < d; ++c) {
      double mag = 0;
      for (std::int64_t v = 0; v < V; ++v) mag += std::fabs(dlv[n * V + v] * w_v[v * d + c]);
      const double err = std::fabs(dh_f[n * d + c] - dh_u[n * d + c]), bound = (V + N + d) * eps * mag + 1e-300;
      worst = std::max(worst, err / bound);
      if (!(err <= bound) && failures++ < 5) ADD_FAILURE() << name << " dh[" << n << "," << c << "] |err| " << err << " > " << bound;
    }
  std::vector<double> mag_w(V * d, 0.0);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t v = 0; v < V; ++v) {
      const double g = std::fabs(dlv[n * V + v]);
      if (g == 0) continue;
      for (std::int64_t c = 0; c < d; ++c) mag_w[v * d + c] += g * std::fabs(h_v[n * d + c]);
    }
  for (std::int64_t v = 0; v < V; ++v)
    for (std::int64_t c = 0; c < d; ++c) {
      const double err = std::fabs(dw_f[v * d + c] - dwt_u[c * V + v]), bound = (V + N + d) * eps * mag_w[v * d + c] + 1e-300;
      worst = std::max(worst, err / bound);
      if (!(err <= bound) && failures++ < 5) ADD_FAILURE() << name << " dw[" << v << "," << c << "] |err| " << err << " > " << bound;
    }
  std::printf("[ measured ] %-62s loss |diff| %9.3g  grads max err/bound %7.3g\n", name.c_str(),
              std::fabs(fused.value().item() - unfused.value().item()), worst);
}

TEST(FusedLoss, LinearCrossEntropyMultiChunkEqualsUnfused) {
  for (DType dtype : {DType::f64, DType::f32})
    expect_fused_matches_unfused(
        std::string("linear_cross_entropy 3 chunks ") + dtype_name(dtype), dtype,
        [](const Var& h, const Var& w, const Tensor& t) { return linear_cross_entropy(h, w, t); },
        [](const Var& logits, const Tensor& t) { return cross_entropy(logits, t); });
}

TEST(FusedLoss, LinearDistillLossMultiChunkEqualsUnfused) {
  for (DType dtype : {DType::f64, DType::f32}) {
    const Tensor th = randn({233, 5}, 151, 1.0, dtype), tw = randn({20011, 5}, 152, 0.8, dtype);
    const Tensor teacher_logits = linear(Var(th), Var(tw)).value();
    expect_fused_matches_unfused(
        std::string("linear_distill_loss 3 chunks ") + dtype_name(dtype), dtype,
        [&](const Var& h, const Var& w, const Tensor& t) { return linear_distill_loss(h, w, th, tw, t, 0.3, 2.0); },
        [&](const Var& logits, const Tensor& t) { return distill_loss(logits, teacher_logits, t, 0.3, 2.0); });
    // The parts reported for logging agree with the unfused op's.
    (void)linear_distill_loss(Var(randn({233, 8}, 153, 1.0, dtype)), Var(randn({20011, 8}, 154, 0.7, dtype)), th, tw,
                              Tensor::full({233}, 7.0, DType::i32), 0.3, 2.0);
    const LossParts fused_parts = last_loss_parts();
    (void)distill_loss(linear(Var(randn({233, 8}, 153, 1.0, dtype)), Var(randn({20011, 8}, 154, 0.7, dtype))),
                       teacher_logits, Tensor::full({233}, 7.0, DType::i32), 0.3, 2.0);
    const LossParts parts = last_loss_parts();
    const double tol = dtype == DType::f32 ? 1e-4 : 1e-10;  // f32: V-term sums of O(1) values, ~V eps relative
    EXPECT_NEAR(fused_parts.ce, parts.ce, tol * (1 + std::fabs(parts.ce)));
    EXPECT_NEAR(fused_parts.kl, parts.kl, tol * (1 + std::fabs(parts.kl)));
  }
}


// ---- sampled output losses (Note [sampled output loss] in autograd/ops/loss.cc) ------------

TEST(GradCheck, SampledSoftmaxLoss) {
  Var h = leaf({6, 5}, 161), w = leaf({9, 5}, 162);
  const Tensor targets = Tensor::from_vector<std::int32_t>({8, -1, 0, 4, 4, 2});
  // Negative 4 is an accidental hit for rows 3 and 4; 7 is drawn twice.
  const Tensor negatives = Tensor::from_vector<std::int32_t>({7, 4, 1, 7});
  const Tensor log_count = randn({4}, 163, 0.5);
  expect_gradients_match("sampled_softmax_loss", {h, w},
                         [&] { return sampled_softmax_loss(h, w, targets, negatives, log_count); });
  expect_gradients_match("sampled_softmax_loss scaled upstream", {h, w},
                         [&] { return scale(sampled_softmax_loss(h, w, targets, negatives, log_count), 0.7); });
  Var wc(randn({9, 5}, 162));
  expect_gradients_match("sampled_softmax_loss constant weight", {h, wc},
                         [&] { return sampled_softmax_loss(h, wc, targets, negatives, log_count); });
  // The weight's gradient arrives row-sparse: only targets' and negatives' rows.
  h.zero_grad();
  w.zero_grad();
  sampled_softmax_loss(h, w, targets, negatives, log_count).backward();
  ASSERT_TRUE(w.has_row_grad());
  const RowGrad rg = w.row_grad();
  EXPECT_EQ(std::vector<std::int32_t>(rg.rows.data<std::int32_t>(), rg.rows.data<std::int32_t>() + rg.rows.numel()),
            (std::vector<std::int32_t>{0, 1, 2, 4, 7, 8}));
}

TEST(GradCheck, GbceLoss) {
  Var h = leaf({6, 5}, 171), w = leaf({9, 5}, 172);
  const Tensor targets = Tensor::from_vector<std::int32_t>({8, -1, 0, 4, 4, 2});
  const Tensor negatives = Tensor::from_vector<std::int32_t>({7, 4, 1, 7, 3});
  for (double t : {0.0, 0.75, 1.0}) {
    const double beta = gbce_beta(5, 9, t);
    expect_gradients_match("gbce_loss t " + std::to_string(t).substr(0, 4), {h, w},
                           [&] { return gbce_loss(h, w, targets, negatives, beta); });
  }
  // Value against the definition, row by row (f64).
  const double beta = 0.4;
  const Tensor logits = linear(h, w).value();
  const std::int32_t* tp = targets.data<std::int32_t>();
  const std::int32_t* np = negatives.data<std::int32_t>();
  double want = 0;
  int valid = 0;
  for (int n = 0; n < 6; ++n) {
    if (tp[n] < 0) continue;
    ++valid;
    auto sig = [](double z) { return 1 / (1 + std::exp(-z)); };
    double row = -std::log(std::pow(sig(logits.data<double>()[n * 9 + tp[n]]), beta));
    for (int j = 0; j < 5; ++j)
      if (np[j] != tp[n]) row -= std::log(1 - sig(logits.data<double>()[n * 9 + np[j]]));
    want += row / 6.0;  // / (S + 1)
  }
  EXPECT_NEAR(gbce_loss(h, w, targets, negatives, beta).value().item(), want / valid, kValueTol);
  // beta from t: 0 -> plain BCE, 1 -> the sampling rate alpha = S / (V - 1).
  EXPECT_DOUBLE_EQ(gbce_beta(256, 10001, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(gbce_beta(256, 10001, 1.0), 256.0 / 10000.0);
}

// Every item once as a uniform negative: S q_j = V (1/V) = 1, so the correction is log 1 = 0
// and, with the row's own target left out of the negatives, the loss is over exactly the V
// logits of the full softmax. Same value and gradients as linear_cross_entropy.
TEST(SampledLoss, AllItemsAsNegativesEqualsFullSoftmax) {
  const std::int64_t V = 37, N = 11, d = 6;
  Var h(randn({N, d}, 181), true), w(randn({V, d}, 182), true);
  std::vector<std::int32_t> t(N), all(V);
  for (std::int64_t n = 0; n < N; ++n) t[n] = n == 3 ? -1 : static_cast<std::int32_t>((n * 7) % V);
  for (std::int64_t j = 0; j < V; ++j) all[j] = static_cast<std::int32_t>(j);
  const Tensor targets = Tensor::from_vector<std::int32_t>(t), negatives = Tensor::from_vector<std::int32_t>(all);
  const Tensor no_correction = Tensor::zeros({V}, DType::f64);
  const Var sampled = sampled_softmax_loss(h, w, targets, negatives, no_correction);
  sampled.backward();
  const Tensor dh_s = h.grad().clone(), dw_s = w.grad().clone();
  h.zero_grad();
  w.zero_grad();
  const Var full = linear_cross_entropy(h, w, targets);
  full.backward();
  // f64: the two sides sum the same V exponentials in different orders (the target first
  // here), so they agree to a few ulp of the O(1) values.
  EXPECT_NEAR(sampled.value().item(), full.value().item(), 1e-12);
  EXPECT_LT(max_abs_diff(dh_s, h.grad()), 1e-12);
  EXPECT_LT(max_abs_diff(dw_s, w.grad()), 1e-12);
}

// Note [log-Q test]: negatives drawn with replacement from a skewed, known q. With the
// correction log(S q_j), sum_j exp(s_j - log(S q_j)) over the draws is an unbiased
// estimate of sum over the other items of exp(s_j), so the sampled loss converges to the
// full softmax loss as S grows; without it the sampled loss is off by about log S.
TEST(SampledLoss, LogQCorrectionOnKnownDistribution) {
  const std::int64_t V = 20, N = 4, d = 3, S = 200000;
  const Var h(randn({N, d}, 191)), w(randn({V, d}, 192));
  const Tensor targets = Tensor::from_vector<std::int32_t>({3, 0, 17, 9});
  std::vector<double> q(V), cum(V);
  double total = 0;
  for (std::int64_t j = 0; j < V; ++j) total += (q[j] = 1.0 / std::pow(j + 1.0, 1.2));
  for (std::int64_t j = 0; j < V; ++j) cum[j] = (j ? cum[j - 1] : 0) + (q[j] /= total);
  Rng rng(7, 1);
  std::vector<std::int32_t> draws(S);
  std::vector<double> log_count(S), none(S, 0.0);
  for (std::int64_t i = 0; i < S; ++i) {
    const double u = rng.uniform();
    draws[i] = static_cast<std::int32_t>(std::min<std::int64_t>(
        std::upper_bound(cum.begin(), cum.end(), u) - cum.begin(), V - 1));
    log_count[i] = std::log(static_cast<double>(S) * q[draws[i]]);
  }
  const Tensor negatives = Tensor::from_vector<std::int32_t>(draws);
  const double full = linear_cross_entropy(h, w, targets).value().item();
  const double corrected =
      sampled_softmax_loss(h, w, targets, negatives, Tensor::from_vector<double>(log_count)).value().item();
  const double uncorrected =
      sampled_softmax_loss(h, w, targets, negatives, Tensor::from_vector<double>(none)).value().item();
  // The estimate's relative standard deviation is about sqrt(max_j p_j / q_j / S) < 0.01
  // here (p_j / q_j <= 20 for these O(1) scores), so its log is within 0.05 with a wide
  // margin; the uncorrected loss is off by about log S = 12.
  EXPECT_NEAR(corrected, full, 0.05);
  EXPECT_GT(std::fabs(uncorrected - full), 5.0);
}

}  // namespace
}  // namespace prunerec::ag
