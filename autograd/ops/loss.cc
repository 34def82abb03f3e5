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
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "tensor/kernels/elementwise.h"
#include "tensor/kernels/embedding.h"
#include "tensor/kernels/gemm.h"
#include "tensor/kernels/softmax.h"
#include "tensor/parallel.h"

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

// Note [top-k distillation]: the teacher's distribution at temperature T is kept as its k
// most likely items with their log-probabilities plus the log of the mass of all the rest
// (one bucket), so a recovery needs neither the teacher's output layer per step nor its
// full distribution. Per row, with q = softmax(s / T) the student's distribution, K the
// teacher's k items, p_i their teacher probabilities and p_R = 1 - sum_K p_i:
//   KL = sum_{i in K} p_i (log p_i - log q_i) + p_R (log p_R - log q_R),  q_R = sum_{j not in K} q_j
//   d KL / d s_j = (q_j - target_j) / T,  target_j = p_j on K, p_R q_j / q_R off K
// (the rest bucket's mass is spread over the other items as the student spreads its own);
// loss = alpha CE + (1 - alpha) T^2 KL as in full distillation, which it equals when K
// holds every item. q_R is summed over the items outside K, never taken as 1 - sum_K q
// (which cancels when the rest is small). Accumulation in double; the GEMMs around it
// dominate the cost (Note [fused output loss]).
Var linear_topk_distill_loss(const Var& h, const Var& weight, const Tensor& teacher_items, const Tensor& teacher_logp,
                             const Tensor& teacher_rest_logp, const Tensor& targets, double alpha, double temperature) {
  constexpr const char* kOp = "linear_topk_distill_loss";
  PR_CHECK_T(ConfigError, alpha >= 0 && alpha <= 1 && temperature > 0, kOp, ": alpha ", alpha,
             " must be in [0, 1] and temperature ", temperature, " positive");
  PR_CHECK(h.defined() && weight.defined() && h.dim() == 2 && weight.dim() == 2, kOp, ": h and weight must be 2-D");
  const std::int64_t N = h.size(0), V = weight.size(0);
  PR_CHECK(teacher_items.defined() && teacher_items.dtype() == DType::i32 && teacher_items.dim() == 2 &&
               teacher_items.size(0) == N && teacher_items.size(1) >= 1 && teacher_items.size(1) <= V,
           kOp, ": teacher items ", teacher_items.defined() ? teacher_items.shape_str() : "undefined",
           " must be i32 [", N, ", k] with 1 <= k <= ", V);
  const std::int64_t k = teacher_items.size(1);
  PR_CHECK(teacher_logp.defined() && teacher_logp.shape() == teacher_items.shape() && is_floating(teacher_logp.dtype()) &&
               teacher_rest_logp.defined() && teacher_rest_logp.numel() == N && is_floating(teacher_rest_logp.dtype()),
           kOp, ": teacher log-probabilities must be [", N, ", ", k, "] and [", N, "]");
  const Tensor tc = targets.defined() ? targets.contiguous() : targets;
  const Tensor items = teacher_items.contiguous();
  const Tensor logp = teacher_logp.to(DType::f64).contiguous(), rest = teacher_rest_logp.to(DType::f64).contiguous();
  const std::int32_t* ip = items.data<std::int32_t>();
  detail::check_targets(kOp, tc, N, V);
  std::vector<std::uint8_t> seen(static_cast<std::size_t>(V), 0);
  for (std::int64_t r = 0; r < N; ++r) {
    if (tc.data<std::int32_t>()[r] < 0) continue;  // ignored rows may hold anything
    const std::int32_t* row = ip + r * k;
    for (std::int64_t i = 0; i < k; ++i) {
      PR_CHECK(row[i] >= 0 && row[i] < V, kOp, ": teacher item ", row[i], " at row ", r, " is out of range for ", V,
               " items");
      PR_CHECK(!seen[row[i]], kOp, ": teacher item ", row[i], " is listed twice in row ", r);
      seen[row[i]] = 1;
    }
    for (std::int64_t i = 0; i < k; ++i) seen[row[i]] = 0;
  }
  return fused_loss(
      kOp, h, weight, tc,
      [&](std::int64_t r0, std::int64_t rows, void* logits, void* lr, void* cr, void* kr, double scale, bool grad) {
        dispatch_floating(h.dtype(), kOp, [&](auto tag) {
          using T = decltype(tag);
          T* s_all = static_cast<T*>(logits);
          const std::int32_t* tgt = tc.data<std::int32_t>() + r0;
          parallel_for(0, rows, 1, [&](std::int64_t lo, std::int64_t hi) {
            std::vector<double> a(static_cast<std::size_t>(V)), b(static_cast<std::size_t>(V));
            std::vector<std::uint8_t> in_k(static_cast<std::size_t>(V), 0);
            for (std::int64_t r = lo; r < hi; ++r) {
              T* s = s_all + r * V;
              T* loss = static_cast<T*>(lr) + r;
              T* ce_out = static_cast<T*>(cr) + r;
              T* kl_out = static_cast<T*>(kr) + r;
              if (tgt[r] < 0) {
                *loss = *ce_out = *kl_out = T(0);
                if (grad) std::fill(s, s + V, T(0));
                continue;
              }
              const std::int32_t* row_items = ip + (r0 + r) * k;
              const double* row_logp = logp.data<double>() + (r0 + r) * k;
              const double rest_logp = rest.data<double>()[r0 + r];
              const double ms = *std::max_element(s, s + V);
              double zs = 0, zst = 0, zr = 0;
              for (std::int64_t j = 0; j < V; ++j) {
                a[j] = std::exp(static_cast<double>(s[j]) - ms);
                b[j] = std::exp((static_cast<double>(s[j]) - ms) / temperature);
                zs += a[j];
                zst += b[j];
              }
              for (std::int64_t i = 0; i < k; ++i) in_k[row_items[i]] = 1;
              for (std::int64_t j = 0; j < V; ++j)
                if (!in_k[j]) zr += b[j];
              const double log_zst = std::log(zst);
              const double ce = ms + std::log(zs) - static_cast<double>(s[tgt[r]]);
              double kl = 0;
              for (std::int64_t i = 0; i < k; ++i) {
                const double p = std::exp(row_logp[i]);
                if (p > 0) kl += p * (row_logp[i] - ((static_cast<double>(s[row_items[i]]) - ms) / temperature - log_zst));
              }
              const double p_rest = std::exp(rest_logp);
              if (p_rest > 0) kl += p_rest * (rest_logp - (std::log(zr) - log_zst));
              *loss = static_cast<T>(alpha * ce + (1 - alpha) * temperature * temperature * kl);
              *ce_out = static_cast<T>(ce);
              *kl_out = static_cast<T>(kl);
              if (grad) {
                // d/ds_j = alpha (softmax(s)_j - [j = target]) + (1 - alpha) T (q_j - target_j), scaled.
                const double ca = alpha * scale / zs, cb = (1 - alpha) * temperature * scale;
                const double rest_per_q = zr > 0 ? p_rest / zr : 0.0;  // target_j = p_R b_j / zr off K
                for (std::int64_t j = 0; j < V; ++j)
                  s[j] = static_cast<T>(ca * a[j] + cb * (b[j] / zst - (in_k[j] ? 0.0 : rest_per_q * b[j])));
                for (std::int64_t i = 0; i < k; ++i) s[row_items[i]] -= static_cast<T>(cb * std::exp(row_logp[i]));
                s[tgt[r]] -= static_cast<T>(alpha * scale);
              }
              for (std::int64_t i = 0; i < k; ++i) in_k[row_items[i]] = 0;
            }
          });
        });
      },
      true);
}


// ---- sampled output losses ---------------------------------------------------------------
//
// Note [sampled output loss]: with a catalogue of V items the full softmax costs N V d
// per step in each of the three GEMMs of Note [fused output loss], and its weight
// gradient is a dense [V, d] tensor. The sampled losses score each position's target and
// S negatives shared by the whole batch instead (one [N, d] x [d, S] GEMM, so the cost no
// longer grows with V), and hand the item table a row-sparse gradient: the rows of the
// targets and of the negatives (Note [row-sparse gradients] in autograd/var.h). A negative
// equal to a row's own target (an "accidental hit") is left out of that row's loss.
// Derivations in docs/derivations.md ("Sampled softmax with the log-Q correction", "gBCE").
namespace {

// Scales a dense gradient and the weight's row-sparse one by the upstream scalar.
class SampledGradNode final : public Node {
 public:
  explicit SampledGradNode(const char* n) : op_name(n) {}
  const char* name() const override { return op_name; }
  void backward(const Tensor& dy, std::vector<Tensor>& grads) override {
    const double g = dy.item();
    auto scaled = [&](const Tensor& t) {
      if (g == 1.0) return t;
      Tensor s = Tensor::empty(t.shape(), t.dtype());
      dispatch_floating(s.dtype(), op_name, [&](auto tag) {
        using T = decltype(tag);
        kernels::scale<T>(s.numel(), static_cast<T>(g), t.data<T>(), s.data<T>());
      });
      return s;
    };
    if (dh.defined()) grads[0] = scaled(dh);
    if (weight_rows.defined()) set_row_grad(1, weight_rows, scaled(weight_values));
  }
  void release() override { dh = weight_rows = weight_values = Tensor(); }
  const char* op_name;
  Tensor dh;                          // [N, d] or undefined
  Tensor weight_rows, weight_values;  // i32 [R], [R, d]
};

enum class SampledKind { kSoftmax, kGbce };

// Both sampled losses: per row chunk, logits = [h.w_target | h W_neg^T] (GEMM for the
// negatives), the row loss and d loss / d logits in place, then dh and d W_neg by GEMMs.
Var sampled_loss(const char* op, SampledKind kind, const Var& h, const Var& weight, const Tensor& targets,
                 const Tensor& negatives, const Tensor& neg_log_count, double beta) {
  using detail::sh;
  PR_CHECK(h.defined() && weight.defined() && h.dim() == 2 && weight.dim() == 2 && h.size(1) == weight.size(1), op,
           ": h ", sh(h), " and weight ", sh(weight), " must be [N, d] and [V, d]");
  detail::check_same_dtype(op, h, weight);
  const std::int64_t N = h.size(0), d = h.size(1), V = weight.size(0);
  detail::check_targets(op, targets, N, V);
  PR_CHECK(negatives.defined() && negatives.dtype() == DType::i32 && negatives.dim() == 1 && negatives.numel() > 0, op,
           ": negatives ", negatives.defined() ? negatives.shape_str() : "undefined", " must be a non-empty i32 [S]");
  const std::int64_t S = negatives.numel();
  const Tensor nc = negatives.contiguous();
  for (std::int64_t j = 0; j < S; ++j)
    PR_CHECK(nc.data<std::int32_t>()[j] >= 0 && nc.data<std::int32_t>()[j] < V, op, ": negative ",
             nc.data<std::int32_t>()[j], " at ", j, " is out of range for ", V, " items");
  Tensor lc;
  if (kind == SampledKind::kSoftmax) {
    PR_CHECK(neg_log_count.defined() && neg_log_count.numel() == S && is_floating(neg_log_count.dtype()), op,
             ": neg_log_count ", neg_log_count.defined() ? neg_log_count.shape_str() : "undefined",
             " must be floating with ", S, " elements");
    lc = neg_log_count.to(DType::f64).contiguous();
  } else {
    PR_CHECK_T(ConfigError, beta > 0 && beta <= 1 && std::isfinite(beta), op, ": beta ", beta, " must be in (0, 1]");
  }
  const Tensor tc = targets.contiguous(), hc = h.value().contiguous(), wc = weight.value().contiguous();
  const std::int32_t* tp = tc.data<std::int32_t>();
  const std::int32_t* np = nc.data<std::int32_t>();
  const std::int64_t valid = count_valid(tc);
  const bool need_grad = any_requires_grad({&h, &weight});
  const bool grad_h = need_grad && h.requires_grad(), grad_w = need_grad && weight.requires_grad();
  Tensor dh = grad_h ? Tensor::empty({N, d}, hc.dtype()) : Tensor();
  Tensor w_rows, w_values;
  double total = 0;
  dispatch_floating(hc.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* hp = hc.data<T>();
    const T* wp = wc.data<T>();
    const T scale = valid ? T(1) / static_cast<T>(valid) : T(0);
    // W_neg [S, d]: the negatives' rows, gathered once.
    Tensor w_neg = Tensor::empty({S, d}, hc.dtype());
    kernels::embedding_gather<T>(S, d, wp, np, w_neg.template data<T>());
    const T* wn = w_neg.template data<T>();
    Tensor dw_neg = grad_w ? Tensor::zeros({S, d}, hc.dtype()) : Tensor();
    std::vector<T> pos_grad(static_cast<std::size_t>(N), T(0)), loss_rows(static_cast<std::size_t>(N), T(0));
    const std::int64_t width = S + 1;  // column 0: the target; 1..S: the negatives
    const std::int64_t chunk = chunk_rows(N, width);
    Tensor buffer = Tensor::empty({std::max<std::int64_t>(std::min(chunk, N), 1), width}, hc.dtype());
    T* logits = buffer.template data<T>();
    const T minus_inf = -std::numeric_limits<T>::infinity();
    for (std::int64_t r0 = 0; r0 < N; r0 += chunk) {
      const std::int64_t rows = std::min(chunk, N - r0);
      kernels::gemm<T>(false, true, rows, S, d, T(1), hp + r0 * d, d, wn, d, T(0), logits + 1, width);
      parallel_for(0, rows, 16, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t r = lo; r < hi; ++r) {
          const std::int64_t n = r0 + r;
          T* x = logits + r * width;
          const std::int32_t t = tp[n];
          if (t < 0) {
            std::fill(x, x + width, T(0));
            continue;
          }
          T pos = 0;
          for (std::int64_t c = 0; c < d; ++c) pos += hp[n * d + c] * wp[t * d + c];
          x[0] = pos;
          if (kind == SampledKind::kSoftmax) {
            // Corrected logits; the target stays uncorrected (Note [sampled output loss]).
            for (std::int64_t j = 0; j < S; ++j)
              x[1 + j] = np[j] == t ? minus_inf : x[1 + j] - static_cast<T>(lc.data<double>()[j]);
            const std::int32_t zero = 0;
            kernels::cross_entropy_rows<T>(1, width, x, &zero, &loss_rows[n], need_grad ? x : nullptr, scale);
            if (need_grad)
              for (std::int64_t j = 0; j < S; ++j)
                if (np[j] == t) x[1 + j] = 0;  // exactly nothing through a left-out hit
          } else {
            // gBCE: beta softplus(-pos) + sum over negatives of softplus(s_j).
            auto softplus = [](T z) { return std::max(z, T(0)) + std::log1p(std::exp(-std::fabs(z))); };
            auto sigmoid = [](T z) { return T(1) / (T(1) + std::exp(-z)); };
            // Divided by S + 1 as in the paper (one positive and S negatives per row).
            const T per_row = T(1) / static_cast<T>(S + 1), gs = scale * per_row;
            T loss = static_cast<T>(beta) * softplus(-pos);
            x[0] = need_grad ? -static_cast<T>(beta) * sigmoid(-pos) * gs : T(0);
            for (std::int64_t j = 0; j < S; ++j) {
              const T s = x[1 + j];
              if (np[j] == t) {
                x[1 + j] = 0;
                continue;
              }
              loss += softplus(s);
              x[1 + j] = need_grad ? sigmoid(s) * gs : T(0);
            }
            loss_rows[n] = loss * per_row;
          }
          pos_grad[n] = x[0];
        }
      });
      if (!need_grad) continue;
      if (grad_h) {
        T* dhp = dh.template data<T>() + r0 * d;
        kernels::gemm<T>(false, false, rows, d, S, T(1), logits + 1, width, wn, d, T(0), dhp, d);
        parallel_for(0, rows, 64, [&](std::int64_t lo, std::int64_t hi) {
          for (std::int64_t r = lo; r < hi; ++r) {
            const std::int32_t t = tp[r0 + r];
            if (t < 0) continue;
            for (std::int64_t c = 0; c < d; ++c) dhp[r * d + c] += pos_grad[r0 + r] * wp[t * d + c];
          }
        });
      }
      if (grad_w)
        kernels::gemm<T>(true, false, S, d, rows, T(1), logits + 1, width, hp + r0 * d, d, T(1),
                         dw_neg.template data<T>(), d);
    }
    total = ordered_sum(loss_rows);
    if (grad_w) {
      // Row-sparse weight gradient: one row per valid position (its target), then the
      // negatives' rows.
      w_rows = Tensor::empty({valid + S}, DType::i32);
      w_values = Tensor::empty({valid + S, d}, hc.dtype());
      std::int32_t* rp = w_rows.data<std::int32_t>();
      T* vp = w_values.template data<T>();
      std::int64_t r = 0;
      for (std::int64_t n = 0; n < N; ++n) {
        if (tp[n] < 0) continue;
        rp[r] = tp[n];
        for (std::int64_t c = 0; c < d; ++c) vp[r * d + c] = pos_grad[n] * hp[n * d + c];
        ++r;
      }
      std::copy(np, np + S, rp + valid);
      std::copy(dw_neg.template data<T>(), dw_neg.template data<T>() + S * d, vp + valid * d);
    }
  });
  const double loss = valid ? total / static_cast<double>(valid) : 0.0;
  g_last_parts = {loss, 0.0};
  std::shared_ptr<Node> node;
  if (need_grad) {
    auto n = std::make_shared<SampledGradNode>(op);
    n->inputs = {h, weight};
    n->dh = dh;
    n->weight_rows = w_rows;
    n->weight_values = w_values;
    node = n;
  }
  return make_result(Tensor::scalar(loss, hc.dtype()), std::move(node));
}

}  // namespace

Var sampled_softmax_loss(const Var& h, const Var& weight, const Tensor& targets, const Tensor& negatives,
                         const Tensor& neg_log_count) {
  return sampled_loss("sampled_softmax_loss", SampledKind::kSoftmax, h, weight, targets, negatives, neg_log_count, 0);
}

Var gbce_loss(const Var& h, const Var& weight, const Tensor& targets, const Tensor& negatives, double beta) {
  return sampled_loss("gbce_loss", SampledKind::kGbce, h, weight, targets, negatives, Tensor(), beta);
}

double gbce_beta(std::int64_t num_negatives, std::int64_t num_items, double t) {
  PR_CHECK_T(ConfigError, num_negatives > 0 && num_items > 1 && t >= 0 && t <= 1, "gbce_beta: need negatives > 0, items > 1 and t in [0, 1], got ",
             num_negatives, ", ", num_items, ", ", t);
  const double alpha = std::min(1.0, static_cast<double>(num_negatives) / static_cast<double>(num_items - 1));
  return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha);
}

}  // namespace prunerec::ag
