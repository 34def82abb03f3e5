// Element-wise and shape ops: add, mul, scale, sum, mean, reshape, mul_channels, dropout.
#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "tensor/kernels/elementwise.h"

namespace prunerec::ag {
namespace {

template <class F>
Tensor map_unary(const Tensor& x, F&& f) {  // f(T*, const T*, n) on contiguous data
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), "elementwise", [&](auto tag) {
    using T = decltype(tag);
    f(out.data<T>(), xc.data<T>(), x.numel());
  });
  return out;
}

class AddNode final : public Node {
 public:
  const char* name() const override { return "add"; }
  void backward(const Tensor& dy, std::vector<Tensor>& grads) override {
    grads[0] = dy;  // Var::backward clones gradients it must own
    grads[1] = dy;
  }
};

class MulNode final : public Node {
 public:
  const char* name() const override { return "mul"; }
  void backward(const Tensor& dy_in, std::vector<Tensor>& grads) override {
    const Tensor dy = dy_in.contiguous();
    for (int i = 0; i < 2; ++i) {
      if (!inputs[i].requires_grad()) continue;
      const Tensor other = inputs[1 - i].value().contiguous();
      Tensor g = Tensor::empty(dy.shape(), dy.dtype());
      dispatch_floating(dy.dtype(), name(), [&](auto tag) {
        using T = decltype(tag);
        kernels::mul<T>(dy.numel(), dy.data<T>(), other.data<T>(), g.data<T>());
      });
      grads[i] = g;
    }
  }
};

class ScaleNode final : public Node {
 public:
  explicit ScaleNode(double f) : factor(f) {}
  const char* name() const override { return "scale"; }
  void backward(const Tensor& dy, std::vector<Tensor>& grads) override {
    const double f = factor;
    grads[0] = map_unary(dy, [f](auto* o, const auto* x, std::int64_t n) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(o)>>;
      kernels::scale<T>(n, static_cast<T>(f), x, o);
    });
  }
  double factor;
};

class SumNode final : public Node {
 public:
  explicit SumNode(double f) : factor(f) {}
  const char* name() const override { return factor == 1.0 ? "sum" : "mean"; }
  void backward(const Tensor& dy, std::vector<Tensor>& grads) override {
    const Var& x = inputs[0];
    grads[0] = Tensor::full(x.shape(), dy.item() * factor, x.dtype());
  }
  double factor;
};

class ReshapeNode final : public Node {
 public:
  const char* name() const override { return "reshape"; }
  void backward(const Tensor& dy, std::vector<Tensor>& grads) override {
    grads[0] = dy.reshape(inputs[0].shape());
  }
};

class MulChannelsNode final : public Node {
 public:
  explicit MulChannelsNode(Tensor g) : gate(std::move(g)) {}
  const char* name() const override { return "mul_channels"; }
  void backward(const Tensor& dy_in, std::vector<Tensor>& grads) override {
    const Tensor dy = dy_in.contiguous();
    Tensor g = Tensor::empty(dy.shape(), dy.dtype());
    const std::int64_t C = gate.numel();
    dispatch_floating(dy.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      kernels::mul_cols<T>(dy.numel() / C, C, dy.data<T>(), gate.data<T>(), g.data<T>());
    });
    grads[0] = g;
  }
  void release() override { gate = Tensor(); }
  Tensor gate;
};

// Where dropout reads its draws (DropoutRows resolved for x's shape), shared by the forward
// and the backward.
struct DropoutDraws {
  std::int64_t rows = 1, cols = 0, stride = 0, first = 0;
  template <class T>
  void apply(float p, std::uint64_t seed, std::uint64_t stream, const T* x, T* out) const {
    kernels::dropout_apply_rows<T>(rows, cols, stride, first, p, seed, stream, x, out);
  }
};

class DropoutNode final : public Node {
 public:
  DropoutNode(double p_, std::uint64_t seed_, std::uint64_t stream_, DropoutDraws draws_)
      : p(p_), seed(seed_), stream(stream_), draws(draws_) {}
  const char* name() const override { return "dropout"; }
  void backward(const Tensor& dy, std::vector<Tensor>& grads) override {
    const float pf = static_cast<float>(p);
    const std::uint64_t s = seed, st = stream;
    const DropoutDraws d = draws;
    grads[0] = map_unary(dy, [=](auto* o, const auto* x, std::int64_t) { d.apply(pf, s, st, x, o); });
  }
  double p;
  std::uint64_t seed, stream;
  DropoutDraws draws;
};

}  // namespace

Var add(const Var& a, const Var& b) {
  PR_CHECK(a.shape() == b.shape(), "add: shapes ", detail::sh(a), " and ", detail::sh(b), " differ");
  detail::check_same_dtype("add", a, b);
  const Tensor ac = a.value().contiguous(), bc = b.value().contiguous();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch_floating(a.dtype(), "add", [&](auto tag) {
    using T = decltype(tag);
    kernels::add<T>(y.numel(), ac.data<T>(), bc.data<T>(), y.data<T>());
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&a, &b})) {
    node = std::make_shared<AddNode>();
    node->inputs = {a, b};
  }
  return make_result(std::move(y), std::move(node));
}

Var mul(const Var& a, const Var& b) {
  PR_CHECK(a.shape() == b.shape(), "mul: shapes ", detail::sh(a), " and ", detail::sh(b), " differ");
  detail::check_same_dtype("mul", a, b);
  const Tensor ac = a.value().contiguous(), bc = b.value().contiguous();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch_floating(a.dtype(), "mul", [&](auto tag) {
    using T = decltype(tag);
    kernels::mul<T>(y.numel(), ac.data<T>(), bc.data<T>(), y.data<T>());
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&a, &b})) {
    node = std::make_shared<MulNode>();
    node->inputs = {a, b};
  }
  return make_result(std::move(y), std::move(node));
}

Var scale(const Var& a, double factor) {
  Tensor y = map_unary(a.value(), [factor](auto* o, const auto* x, std::int64_t n) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(o)>>;
    kernels::scale<T>(n, static_cast<T>(factor), x, o);
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&a})) {
    node = std::make_shared<ScaleNode>(factor);
    node->inputs = {a};
  }
  return make_result(std::move(y), std::move(node));
}

namespace {
Var reduce_sum(const Var& a, double factor) {
  const Tensor ac = a.value().contiguous();
  double s = 0;
  dispatch_floating(a.dtype(), "sum", [&](auto tag) {
    using T = decltype(tag);
    s = kernels::sum<T>(ac.numel(), ac.data<T>());
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&a})) {
    node = std::make_shared<SumNode>(factor);
    node->inputs = {a};
  }
  return make_result(Tensor::scalar(s * factor, a.dtype()), std::move(node));
}
}  // namespace

Var sum(const Var& a) { return reduce_sum(a, 1.0); }

Var mean(const Var& a) {
  PR_CHECK(a.numel() > 0, "mean: empty tensor ", detail::sh(a));
  return reduce_sum(a, 1.0 / static_cast<double>(a.numel()));
}

Var reshape(const Var& a, const Shape& shape) {
  Tensor y = a.value().reshape(shape);
  std::shared_ptr<Node> node;
  if (any_requires_grad({&a})) {
    node = std::make_shared<ReshapeNode>();
    node->inputs = {a};
  }
  return make_result(std::move(y), std::move(node));
}

Var mul_channels(const Var& a, const Tensor& gate) {
  PR_CHECK(gate.defined() && gate.dim() == 1 && a.dim() >= 1 && gate.size(0) == a.size(-1) &&
               gate.dtype() == a.dtype(),
           "mul_channels: gate ", gate.shape_str(), " does not match the last dim of ", detail::sh(a));
  const Tensor ac = a.value().contiguous(), gc = gate.contiguous();
  const std::int64_t C = gate.numel();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch_floating(a.dtype(), "mul_channels", [&](auto tag) {
    using T = decltype(tag);
    kernels::mul_cols<T>(a.numel() / std::max<std::int64_t>(C, 1), C, ac.data<T>(), gc.data<T>(), y.data<T>());
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&a})) {
    node = std::make_shared<MulChannelsNode>(gc);
    node->inputs = {a};
  }
  return make_result(std::move(y), std::move(node));
}

Var dropout(const Var& x, double p, std::uint64_t seed, std::uint64_t stream, const DropoutRows& at) {
  PR_CHECK_T(ConfigError, p >= 0.0 && p < 1.0, "dropout: probability ", p, " is not in [0, 1)");
  if (p == 0.0) return x;
  DropoutDraws draws;
  draws.rows = x.dim() > 0 ? x.shape()[0] : 1;
  draws.cols = draws.rows > 0 ? x.numel() / draws.rows : 0;
  draws.stride = at.row_elements > 0 ? at.row_elements : draws.cols;
  PR_CHECK(at.first_row >= 0 && draws.stride >= draws.cols, "dropout: ", detail::sh(x), " placed at row ", at.first_row,
           " of rows of ", at.row_elements, " elements: a row of x has ", draws.cols);
  draws.first = at.first_row * draws.stride + (draws.stride - draws.cols);
  const float pf = static_cast<float>(p);
  Tensor y = map_unary(x.value(), [=](auto* o, const auto* xp, std::int64_t) { draws.apply(pf, seed, stream, xp, o); });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&x})) {
    node = std::make_shared<DropoutNode>(p, seed, stream, draws);
    node->inputs = {x};
  }
  return make_result(std::move(y), std::move(node));
}

}  // namespace prunerec::ag
