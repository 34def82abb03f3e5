// Losses over the catalogue: cross-entropy with an ignore index, distillation
// (CE + temperature-scaled KL), and their fused output-layer forms.
//
// Note [fused output loss]: with V items and N positions the logits are N x V floats
// (6,400 x 3,500 = 90 MB for a training step of the SMALL config). The fused ops compute
// them in chunks of rows: for each chunk, logits = h W^T (GEMM), the loss and d loss /
// d logits in one pass over the chunk (tensor/kernels/softmax.h), then dh = dlogits W and
// dW += dlogits^T h (GEMMs). Chunks run in order, so dW is summed deterministically.
// Because the loss is a scalar, its gradients are complete after the forward; the node
// only scales them by the upstream gradient (1 for a loss that is backpropagated as is).
#include <algorithm>
#include <functional>
#include <numeric>

#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "tensor/kernels/elementwise.h"
#include "tensor/kernels/gemm.h"
#include "tensor/kernels/softmax.h"

namespace prunerec::ag {
namespace {

thread_local LossParts g_last_parts;

// Sends precomputed gradients back, scaled by the upstream scalar.
class PrecomputedGradNode final : public Node {
 public:
  explicit PrecomputedGradNode(const char* n) : op_name(n) {}
  const char* name() const override { return op_name; }
  void backward(const Tensor& dy, std::vector<Tensor>& grads) override {
    const double g = dy.item();
    for (std::size_t i = 0; i < grads.size() && i < saved.size(); ++i) {
      if (!saved[i].defined()) continue;
      if (g == 1.0) {
        grads[i] = saved[i];
      } else {
        Tensor s = Tensor::empty(saved[i].shape(), saved[i].dtype());
        dispatch_floating(s.dtype(), op_name, [&](auto tag) {
          using T = decltype(tag);
          kernels::scale<T>(s.numel(), static_cast<T>(g), saved[i].data<T>(), s.data<T>());
        });
        grads[i] = s;
      }
    }
  }
  void release() override { saved.clear(); }
  const char* op_name;
  std::vector<Tensor> saved;  // gradient per input (undefined: none)
};

std::int64_t count_valid(const Tensor& targets) {
  const std::int32_t* p = targets.data<std::int32_t>();
  return std::count_if(p, p + targets.numel(), [](std::int32_t t) { return t >= 0; });
}

// Sum of per-row values in row order (deterministic).
template <class T>
double ordered_sum(const std::vector<T>& v) {
  double s = 0;
  for (T x : v) s += x;
  return s;
}

std::int64_t chunk_rows(std::int64_t n, std::int64_t V) {
  const std::int64_t rows = std::max<std::int64_t>(n, 1);
  return std::clamp<std::int64_t>((std::int64_t{1} << 21) / std::max<std::int64_t>(V, 1), std::min<std::int64_t>(32, rows), rows);
}

}  // namespace

LossParts last_loss_parts() { return g_last_parts; }

Var cross_entropy(const Var& logits, const Tensor& targets) {
  PR_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, V], got ", detail::sh(logits));
  const std::int64_t N = logits.size(0), V = logits.size(1);
  detail::check_targets("cross_entropy", targets, N, V);
  const Tensor tc = targets.contiguous(), x = logits.value().contiguous();
  const std::int64_t valid = count_valid(tc);
  const bool need_grad = any_requires_grad({&logits});
  Tensor dx = need_grad ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
  double total = 0;
  dispatch_floating(x.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> rows(static_cast<std::size_t>(N));
    kernels::cross_entropy_rows<T>(N, V, x.data<T>(), tc.data<std::int32_t>(), rows.data(),
                                   need_grad ? dx.data<T>() : nullptr, valid ? T(1) / static_cast<T>(valid) : T(0));
    total = ordered_sum(rows);
  });
  const double loss = valid ? total / static_cast<double>(valid) : 0.0;
  g_last_parts = {loss, 0.0};
  std::shared_ptr<Node> node;
  if (need_grad) {
    auto n = std::make_shared<PrecomputedGradNode>("cross_entropy");
    n->inputs = {logits};
    n->saved = {dx};
    node = n;
  }
  return make_result(Tensor::scalar(loss, x.dtype()), std::move(node));
}

Var distill_loss(const Var& student, const Tensor& teacher, const Tensor& targets, double alpha, double temperature) {
  PR_CHECK(student.dim() == 2 && teacher.shape() == student.shape() && teacher.dtype() == student.dtype(),
           "distill_loss: student ", detail::sh(student), " and teacher ", teacher.shape_str(), " logits differ");
  PR_CHECK_T(ConfigError, alpha >= 0 && alpha <= 1 && temperature > 0, "distill_loss: alpha ", alpha,
             " must be in [0, 1] and temperature ", temperature, " positive");
  const std::int64_t N = student.size(0), V = student.size(1);
  detail::check_targets("distill_loss", targets, N, V);
  const Tensor tc = targets.contiguous(), s = student.value().contiguous(), t = teacher.contiguous();
  const std::int64_t valid = count_valid(tc);
  const bool need_grad = any_requires_grad({&student});
  Tensor ds = need_grad ? Tensor::empty(s.shape(), s.dtype()) : Tensor();
  double total = 0, ce = 0, kl = 0;
  dispatch_floating(s.dtype(), "distill_loss", [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> rows(N), ce_rows(N), kl_rows(N);
    kernels::distill_rows<T>(N, V, s.data<T>(), t.data<T>(), tc.data<std::int32_t>(), static_cast<T>(alpha),
                             static_cast<T>(temperature), rows.data(), ce_rows.data(), kl_rows.data(),
                             need_grad ? ds.data<T>() : nullptr, valid ? T(1) / static_cast<T>(valid) : T(0));
    total = ordered_sum(rows);
    ce = ordered_sum(ce_rows);
    kl = ordered_sum(kl_rows);
  });
  const double denom = valid ? static_cast<double>(valid) : 1.0;
  g_last_parts = {ce / denom, kl / denom};
  std::shared_ptr<Node> node;
  if (need_grad) {
    auto n = std::make_shared<PrecomputedGradNode>("distill_loss");
    n->inputs = {student};
    n->saved = {ds};
    node = n;
  }
  return make_result(Tensor::scalar(valid ? total / denom : 0.0, s.dtype()), std::move(node));
}

namespace {

// The fused output-layer pass of Note [fused output loss]. row_loss(r0, rows, logits,
// loss_rows, ce_rows, kl_rows, grad_scale) turns a chunk of logits into per-row losses and,
// when gradients are wanted, overwrites the logits with d loss / d logits.
template <class T, class RowLoss>
void fused_output_pass(std::int64_t N, std::int64_t d, std::int64_t V, const T* h, const T* w, bool need_grad,
                       T grad_scale, std::vector<T>& loss_rows, std::vector<T>& ce_rows, std::vector<T>& kl_rows,
                       T* dh, T* dw, RowLoss&& row_loss) {
  const std::int64_t chunk = chunk_rows(N, V);
  Tensor buffer = Tensor::empty({std::min(chunk, N), V}, dtype_of<T>);
  T* logits = buffer.data<T>();
  for (std::int64_t r0 = 0; r0 < N; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, N - r0);
    kernels::gemm<T>(false, true, rows, V, d, T(1), h + r0 * d, d, w, d, T(0), logits, V);
    row_loss(r0, rows, logits, loss_rows.data() + r0, ce_rows.data() + r0, kl_rows.data() + r0, grad_scale);
    if (need_grad) {
      if (dh) kernels::gemm<T>(false, false, rows, d, V, T(1), logits, V, w, d, T(0), dh + r0 * d, d);
      if (dw) kernels::gemm<T>(true, false, V, d, rows, T(1), logits, V, h + r0 * d, d, r0 == 0 ? T(0) : T(1), dw, d);
    }
  }
}

Var fused_loss(const char* op, const Var& h, const Var& weight, const Tensor& targets,
               const std::function<void(std::int64_t, std::int64_t, void*, void*, void*, void*, double, bool)>& rows_fn,
               bool distill) {
  using detail::sh;
  PR_CHECK(h.dim() == 2 && weight.dim() == 2 && h.size(1) == weight.size(1), op, ": h ", sh(h), " and weight ",
           sh(weight), " must be [N, d] and [V, d]");
  detail::check_same_dtype(op, h, weight);
  const std::int64_t N = h.size(0), d = h.size(1), V = weight.size(0);
  detail::check_targets(op, targets, N, V);
  const Tensor tc = targets.contiguous(), hc = h.value().contiguous(), wc = weight.value().contiguous();
  const std::int64_t valid = count_valid(tc);
  const bool need_grad = any_requires_grad({&h, &weight});
  Tensor dh = need_grad && h.requires_grad() ? Tensor::empty(hc.shape(), hc.dtype()) : Tensor();
  Tensor dw = need_grad && weight.requires_grad() ? Tensor::empty(wc.shape(), wc.dtype()) : Tensor();
  double total = 0, ce = 0, kl = 0;
  dispatch_floating(hc.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> loss_rows(N), ce_rows(N), kl_rows(N);
    fused_output_pass<T>(N, d, V, hc.data<T>(), wc.data<T>(), need_grad, valid ? T(1) / static_cast<T>(valid) : T(0),
                         loss_rows, ce_rows, kl_rows, dh.defined() ? dh.data<T>() : nullptr,
                         dw.defined() ? dw.data<T>() : nullptr,
                         [&](std::int64_t r0, std::int64_t rows, T* logits, T* lr, T* cr, T* kr, T scale) {
                           rows_fn(r0, rows, logits, lr, cr, kr, static_cast<double>(scale), need_grad);
                         });
    total = ordered_sum(loss_rows);
    ce = ordered_sum(ce_rows);
    kl = ordered_sum(kl_rows);
  });
  const double denom = valid ? static_cast<double>(valid) : 1.0;
  g_last_parts = {ce / denom, distill ? kl / denom : 0.0};
  std::shared_ptr<Node> node;
  if (need_grad) {
    auto n = std::make_shared<PrecomputedGradNode>(op);
    n->inputs = {h, weight};
    n->saved = {dh, dw};
    node = n;
  }
  return make_result(Tensor::scalar(valid ? total / denom : 0.0, hc.dtype()), std::move(node));
}

}  // namespace

Var linear_cross_entropy(const Var& h, const Var& weight, const Tensor& targets) {
  const Tensor tc = targets.defined() ? targets.contiguous() : targets;
  const std::int64_t V = weight.defined() && weight.dim() == 2 ? weight.size(0) : 0;
  return fused_loss(
      "linear_cross_entropy", h, weight, tc,
      [&](std::int64_t r0, std::int64_t rows, void* logits, void* lr, void* cr, void*, double scale, bool grad) {
        dispatch_floating(h.dtype(), "linear_cross_entropy", [&](auto tag) {
          using T = decltype(tag);
          T* x = static_cast<T*>(logits);
          kernels::cross_entropy_rows<T>(rows, V, x, tc.data<std::int32_t>() + r0, static_cast<T*>(lr),
                                         grad ? x : nullptr, static_cast<T>(scale));
          std::copy(static_cast<T*>(lr), static_cast<T*>(lr) + rows, static_cast<T*>(cr));
        });
      },
      false);
}

Var linear_distill_loss(const Var& h, const Var& weight, const Tensor& teacher_h, const Tensor& teacher_weight,
                        const Tensor& targets, double alpha, double temperature) {
  PR_CHECK_T(ConfigError, alpha >= 0 && alpha <= 1 && temperature > 0, "linear_distill_loss: alpha ", alpha,
             " must be in [0, 1] and temperature ", temperature, " positive");
  PR_CHECK(teacher_h.dim() == 2 && teacher_weight.dim() == 2 && teacher_h.size(1) == teacher_weight.size(1) &&
               h.defined() && teacher_h.size(0) == h.size(0) && weight.defined() &&
               teacher_weight.size(0) == weight.size(0) && teacher_h.dtype() == h.dtype() &&
               teacher_weight.dtype() == h.dtype(),
           "linear_distill_loss: teacher h ", teacher_h.shape_str(), " and weight ", teacher_weight.shape_str(),
           " do not match student h ", detail::sh(h), " and weight ", detail::sh(weight));
  const Tensor tc = targets.defined() ? targets.contiguous() : targets;
  const Tensor th = teacher_h.contiguous(), tw = teacher_weight.contiguous();
  const std::int64_t V = weight.size(0), dt = tw.size(1);
  Tensor teacher_logits = Tensor::empty({std::min(chunk_rows(h.size(0), V), std::max<std::int64_t>(h.size(0), 1)), V},
                                        h.dtype());
  return fused_loss(
      "linear_distill_loss", h, weight, tc,
      [&](std::int64_t r0, std::int64_t rows, void* logits, void* lr, void* cr, void* kr, double scale, bool grad) {
        dispatch_floating(h.dtype(), "linear_distill_loss", [&](auto tag) {
          using T = decltype(tag);
          T* s = static_cast<T*>(logits);
          T* t = teacher_logits.data<T>();
          kernels::gemm<T>(false, true, rows, V, dt, T(1), th.data<T>() + r0 * dt, dt, tw.data<T>(), dt, T(0), t, V);
          kernels::distill_rows<T>(rows, V, s, t, tc.data<std::int32_t>() + r0, static_cast<T>(alpha),
                                   static_cast<T>(temperature), static_cast<T*>(lr), static_cast<T*>(cr),
                                   static_cast<T*>(kr), grad ? s : nullptr, static_cast<T>(scale));
        });
      },
      true);
}

}  // namespace prunerec::ag
