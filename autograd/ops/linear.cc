// linear and matmul: GEMMs through tensor/kernels/gemm.h.
//
//   y = x W^T + b         x [N, in], W [out, in], b [out]
//   dx = dy W             [N, out] @ [out, in]
//   dW = dy^T x           [out, N] @ [N, in]
//   db = sum_rows(dy)
#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "tensor/kernels/elementwise.h"
#include "tensor/kernels/gemm.h"

namespace prunerec::ag {
namespace {

class LinearNode final : public Node {
 public:
  const char* name() const override { return "linear"; }
  void backward(const Tensor& dy_in, std::vector<Tensor>& grads) override {
    const Tensor x = inputs[0].value().contiguous();
    const Tensor w = inputs[1].value().contiguous();
    const std::int64_t in = w.size(1), out = w.size(0), n = x.numel() / in;
    const Tensor dy = dy_in.contiguous();
    dispatch_floating(w.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      if (inputs[0].requires_grad()) {
        Tensor dx = Tensor::empty(x.shape(), x.dtype());
        kernels::gemm<T>(false, false, n, in, out, T(1), dy.data<T>(), out, w.data<T>(), in, T(0), dx.data<T>(), in);
        grads[0] = dx;
      }
      if (inputs[1].requires_grad()) {
        Tensor dw = Tensor::empty(w.shape(), w.dtype());
        kernels::gemm<T>(true, false, out, in, n, T(1), dy.data<T>(), out, x.data<T>(), in, T(0), dw.data<T>(), in);
        grads[1] = dw;
      }
      if (inputs.size() > 2 && inputs[2].requires_grad()) {
        Tensor db = Tensor::empty({out}, w.dtype());
        kernels::sum_rows<T>(n, out, dy.data<T>(), db.data<T>(), false);
        grads[2] = db;
      }
    });
  }
};

class MatmulNode final : public Node {
 public:
  const char* name() const override { return "matmul"; }
  void backward(const Tensor& dy_in, std::vector<Tensor>& grads) override {
    const Tensor a = inputs[0].value().contiguous(), b = inputs[1].value().contiguous();
    const std::int64_t M = a.size(0), K = a.size(1), N = b.size(1);
    const Tensor dy = dy_in.contiguous();
    dispatch_floating(a.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      if (inputs[0].requires_grad()) {  // da = dy b^T
        Tensor da = Tensor::empty({M, K}, a.dtype());
        kernels::gemm<T>(false, true, M, K, N, T(1), dy.data<T>(), N, b.data<T>(), N, T(0), da.data<T>(), K);
        grads[0] = da;
      }
      if (inputs[1].requires_grad()) {  // db = a^T dy
        Tensor db = Tensor::empty({K, N}, a.dtype());
        kernels::gemm<T>(true, false, K, N, M, T(1), a.data<T>(), K, dy.data<T>(), N, T(0), db.data<T>(), N);
        grads[1] = db;
      }
    });
  }
};

}  // namespace

Var linear(const Var& x, const Var& weight, const Var& bias) {
  using detail::sh;
  PR_CHECK(weight.dim() == 2, "linear: weight must be [out, in], got ", sh(weight));
  PR_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: x ", sh(x), " and weight ", sh(weight),
           ": in_features ", x.dim() ? x.size(-1) : 0, " != ", weight.size(1));
  detail::check_same_dtype("linear", x, weight);
  const std::int64_t in = weight.size(1), out = weight.size(0), n = x.numel() / std::max<std::int64_t>(in, 1);
  if (bias.defined()) {
    PR_CHECK(bias.dim() == 1 && bias.size(0) == out, "linear: bias ", sh(bias), " for weight ", sh(weight));
    detail::check_same_dtype("linear", x, bias);
  }
  Shape out_shape = x.shape();
  out_shape.back() = out;
  Tensor y = Tensor::empty(out_shape, x.dtype());
  const Tensor xc = x.value().contiguous(), wc = weight.value().contiguous();
  dispatch_floating(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.data<T>();
    T beta = T(0);
    const Tensor bc = bias.defined() ? bias.value().contiguous() : Tensor();  // alive for the loop
    if (bias.defined()) {  // y = broadcast(bias), then y += x W^T
      const T* bp = bc.data<T>();
      for (std::int64_t r = 0; r < n; ++r) std::copy(bp, bp + out, yp + r * out);
      beta = T(1);
    }
    kernels::gemm<T>(false, true, n, out, in, T(1), xc.data<T>(), in, wc.data<T>(), in, beta, yp, out);
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&x, &weight, &bias})) {
    node = std::make_shared<LinearNode>();
    node->inputs = bias.defined() ? std::vector<Var>{x, weight, bias} : std::vector<Var>{x, weight};
  }
  return make_result(std::move(y), std::move(node));
}

Var matmul(const Var& a, const Var& b) {
  using detail::sh;
  PR_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matmul: ", sh(a), " @ ", sh(b),
           ": inner dims ", a.dim() == 2 ? a.size(1) : -1, " != ", b.dim() == 2 ? b.size(0) : -1);
  detail::check_same_dtype("matmul", a, b);
  const std::int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  Tensor y = Tensor::empty({M, N}, a.dtype());
  const Tensor ac = a.value().contiguous(), bc = b.value().contiguous();
  dispatch_floating(a.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    kernels::gemm<T>(false, false, M, N, K, T(1), ac.data<T>(), K, bc.data<T>(), N, T(0), y.data<T>(), N);
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&a, &b})) {
    node = std::make_shared<MatmulNode>();
    node->inputs = {a, b};
  }
  return make_result(std::move(y), std::move(node));
}

}  // namespace prunerec::ag
