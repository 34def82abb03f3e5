// Fused RMSNorm and SwiGLU (derivations in docs/derivations.md).
#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "tensor/kernels/elementwise.h"
#include "tensor/kernels/norm.h"

namespace prunerec::ag {
namespace {

class RmsNormNode final : public Node {
 public:
  const char* name() const override { return "rmsnorm"; }
  void backward(const Tensor& dy_in, std::vector<Tensor>& grads) override {
    const Tensor x = inputs[0].value().contiguous(), w = inputs[1].value().contiguous(), dy = dy_in.contiguous();
    const std::int64_t C = w.numel(), rows = x.numel() / C;
    Tensor dx, dw;
    if (inputs[0].requires_grad()) dx = Tensor::empty(x.shape(), x.dtype());
    if (inputs[1].requires_grad()) dw = Tensor::zeros(w.shape(), w.dtype());
    dispatch_floating(x.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      kernels::rmsnorm_backward<T>(rows, C, x.data<T>(), w.data<T>(), inv_rms.data<T>(), dy.data<T>(),
                                   dx.defined() ? dx.data<T>() : nullptr, dw.defined() ? dw.data<T>() : nullptr);
    });
    grads[0] = dx;
    grads[1] = dw;
  }
  void release() override { inv_rms = Tensor(); }
  Tensor inv_rms;  // [rows]
};

class SwigluNode final : public Node {
 public:
  const char* name() const override { return "swiglu"; }
  void backward(const Tensor& dy_in, std::vector<Tensor>& grads) override {
    const Tensor g = inputs[0].value().contiguous(), u = inputs[1].value().contiguous(), dy = dy_in.contiguous();
    const std::int64_t C = g.size(-1), rows = g.numel() / std::max<std::int64_t>(C, 1);
    Tensor dg, du;
    if (inputs[0].requires_grad()) dg = Tensor::empty(g.shape(), g.dtype());
    if (inputs[1].requires_grad()) du = Tensor::empty(u.shape(), u.dtype());
    dispatch_floating(g.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      kernels::swiglu_backward<T>(rows, C, g.data<T>(), u.data<T>(), gate.defined() ? gate.data<T>() : nullptr,
                                  dy.data<T>(), dg.defined() ? dg.data<T>() : nullptr,
                                  du.defined() ? du.data<T>() : nullptr);
    });
    grads[0] = dg;
    grads[1] = du;
  }
  void release() override { gate = Tensor(); }
  Tensor gate;  // [C] or undefined
};

}  // namespace

Var rmsnorm(const Var& x, const Var& weight, double eps) {
  using detail::sh;
  PR_CHECK(weight.dim() == 1 && x.dim() >= 1 && x.size(-1) == weight.size(0), "rmsnorm: x ", sh(x), " and weight ",
           sh(weight), ": channels differ");
  detail::check_same_dtype("rmsnorm", x, weight);
  PR_CHECK_T(ConfigError, eps > 0, "rmsnorm: eps must be positive, got ", eps);
  const std::int64_t C = weight.size(0), rows = x.numel() / std::max<std::int64_t>(C, 1);
  const Tensor xc = x.value().contiguous(), wc = weight.value().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor inv = Tensor::empty({rows}, x.dtype());
  dispatch_floating(x.dtype(), "rmsnorm", [&](auto tag) {
    using T = decltype(tag);
    kernels::rmsnorm_forward<T>(rows, C, xc.data<T>(), wc.data<T>(), static_cast<T>(eps), y.data<T>(), inv.data<T>());
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&x, &weight})) {
    auto n = std::make_shared<RmsNormNode>();
    n->inputs = {x, weight};
    n->inv_rms = inv;
    node = n;
  }
  return make_result(std::move(y), std::move(node));
}

Var swiglu(const Var& gate, const Var& up, const Tensor& channel_gate) {
  using detail::sh;
  PR_CHECK(gate.shape() == up.shape() && gate.dim() >= 1, "swiglu: gate ", sh(gate), " and up ", sh(up), " differ");
  detail::check_same_dtype("swiglu", gate, up);
  const std::int64_t C = gate.size(-1), rows = gate.numel() / std::max<std::int64_t>(C, 1);
  Tensor cg;
  if (channel_gate.defined()) {
    PR_CHECK(channel_gate.dim() == 1 && channel_gate.size(0) == C && channel_gate.dtype() == gate.dtype(),
             "swiglu: channel gate ", channel_gate.shape_str(), " for ", sh(gate));
    cg = channel_gate.contiguous();
  }
  const Tensor g = gate.value().contiguous(), u = up.value().contiguous();
  Tensor y = Tensor::empty(gate.shape(), gate.dtype());
  dispatch_floating(gate.dtype(), "swiglu", [&](auto tag) {
    using T = decltype(tag);
    kernels::swiglu_forward<T>(rows, C, g.data<T>(), u.data<T>(), cg.defined() ? cg.data<T>() : nullptr, y.data<T>());
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&gate, &up})) {
    auto n = std::make_shared<SwigluNode>();
    n->inputs = {gate, up};
    n->gate = cg;
    node = n;
  }
  return make_result(std::move(y), std::move(node));
}

}  // namespace prunerec::ag
