#include "nn/optim.h"

#include <algorithm>
#include <cmath>

#include "tensor/kernels/elementwise.h"
#include "tensor/parallel.h"

namespace prunerec::nn {
namespace {

// One fused pass per parameter: decay, moments, bias-corrected update (torch.optim.AdamW
// arithmetic: p -= lr*wd*p; p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)).
template <class T>
void adamw_update(std::int64_t n, T* p, const T* g, T* m, T* v, double lr, double b1, double b2, double eps, double wd,
                  double bc1, double bc2, double grad_scale) {
  const T decay = static_cast<T>(1.0 - lr * wd), step = static_cast<T>(lr / bc1);
  const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
  const T tb1 = static_cast<T>(b1), tb2 = static_cast<T>(b2), te = static_cast<T>(eps), gs = static_cast<T>(grad_scale);
  parallel_for(0, n, 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      const T gi = g[i] * gs;
      m[i] = tb1 * m[i] + (T(1) - tb1) * gi;
      v[i] = tb2 * v[i] + (T(1) - tb2) * gi * gi;
      p[i] = p[i] * decay - step * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + te);
    }
  });
}

// The rows of a row-sparse gradient (Note [lazy AdamW rows]): catch up the skipped steps
// of each row, then the usual update on that row. Rows are unique, so each has one writer.
template <class T>
void lazy_adamw_rows(std::int64_t R, std::int64_t d, const std::int32_t* rows, const T* g, T* p, T* m, T* v,
                     std::int64_t* row_step, std::int64_t step, double lr, double b1, double b2, double eps, double wd,
                     double bc1, double bc2, double grad_scale) {
  const double inv_sqrt_bc2_d = 1.0 / std::sqrt(bc2);
  parallel_for(0, R, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(d, 1)), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      const std::int64_t r = rows[i];
      const std::int64_t skipped = step - 1 - row_step[r];
      T* pr = p + r * d;
      T* mr = m + r * d;
      T* vr = v + r * d;
      if (skipped > 0) {
        // k skipped steps with zero gradient (Note [lazy AdamW rows]). At skipped step i
        // (global step s_i = row_step + i, i = 1..k) the moments are m b1^i and v b2^i, the
        // parameter decays by q = 1 - lr wd and moves by
        //   (lr / bc1_i) m b1^i / (sqrt(v b2^i / bc2_i) + eps).
        // Taking eps as eps b2^(i/2) sqrt(bc2_i / bc2) (exact when eps << sqrt(v / bc2)),
        // that is  (lr / bc1) m / (sqrt(v / bc2) + eps) f_i  with bc1, bc2 of this step and
        // f_i = (b1 / sqrt(b2))^i (bc1 / bc1_i) sqrt(bc2_i / bc2), one number per row. The
        // k steps: p q^k - (lr / bc1) m / (sqrt(v / bc2) + eps) F,  F = sum_i f_i q^(k-i).
        // When b1 < sqrt(b2) (the defaults 0.9, 0.98 give 0.909) f_i falls geometrically,
        // and the sum stops once a term is below double rounding of it (~400 terms). Once
        // the bias corrections are 1 to double rounding (b1^s, b2^s < 1e-17: after ~1,950
        // steps for b2 = 0.98) the sum has the closed form r (q^k - r^k) / (q - r) times
        // bc1 / sqrt(bc2), r = b1 / sqrt(b2).
        const double k = static_cast<double>(skipped);
        const double q = 1.0 - lr * wd, ratio = b1 / std::sqrt(b2);
        double b1s = std::pow(b1, static_cast<double>(row_step[r])), b2s = std::pow(b2, static_cast<double>(row_step[r]));
        double F = 0;
        if (b1s < 1e-17 && b2s < 1e-17 && std::fabs(q - ratio) > 1e-6) {
          F = bc1 / std::sqrt(bc2) * ratio * (std::pow(q, k) - std::pow(ratio, k)) / (q - ratio);
        } else {
          double ri = 1, qi = std::pow(q, k - 1);
          const double inv_q = q > 0 ? 1.0 / q : 0.0;
          for (std::int64_t t = 1; t <= skipped; ++t) {
            ri *= ratio;
            b1s *= b1;
            b2s *= b2;
            const double term = ri * bc1 / (1.0 - b1s) * std::sqrt((1.0 - b2s) / bc2) * qi;
            F += term;
            if (ratio < 1 && term < 1e-17 * F) break;
            qi = q > 0 ? qi * inv_q : std::pow(q, k - static_cast<double>(t + 1));
          }
        }
        const T motion = static_cast<T>(lr / bc1 * F), p_decay = static_cast<T>(std::pow(q, k));
        const T ise = static_cast<T>(inv_sqrt_bc2_d), te = static_cast<T>(eps);
        const T m_decay = static_cast<T>(std::pow(b1, k)), v_decay = static_cast<T>(std::pow(b2, k));
        for (std::int64_t c = 0; c < d; ++c) {
          pr[c] = pr[c] * p_decay - motion * mr[c] / (std::sqrt(vr[c]) * ise + te);
          mr[c] *= m_decay;
          vr[c] *= v_decay;
        }
      }
      row_step[r] = step;
      // The same arithmetic as adamw_update, element by element.
      const T decay = static_cast<T>(1.0 - lr * wd), st = static_cast<T>(lr / bc1);
      const T inv_sqrt_bc2 = static_cast<T>(inv_sqrt_bc2_d);
      const T tb1 = static_cast<T>(b1), tb2 = static_cast<T>(b2), te = static_cast<T>(eps), gs = static_cast<T>(grad_scale);
      const T* gr = g + i * d;
      for (std::int64_t c = 0; c < d; ++c) {
        const T gi = gr[c] * gs;
        mr[c] = tb1 * mr[c] + (T(1) - tb1) * gi;
        vr[c] = tb2 * vr[c] + (T(1) - tb2) * gi * gi;
        pr[c] = pr[c] * decay - st * mr[c] / (std::sqrt(vr[c]) * inv_sqrt_bc2 + te);
      }
    }
  });
}

}  // namespace

AdamW::AdamW(const Module& model, AdamWOptions options) : model_(model), options_(options) {}

AdamWOptions adamw_options(const pb::OptimizerConfig& c) {
  AdamWOptions o;
  o.beta1 = c.beta1();
  o.beta2 = c.beta2();
  o.eps = c.eps();
  o.weight_decay = c.weight_decay();
  o.lazy_rows = false;  // turned on by the caller when the loss samples (recsys/catalogue_loss.h)
  PR_CHECK_T(ConfigError, o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "optimizer: betas ", o.beta1, ", ",
             o.beta2, " must be in [0, 1)");
  PR_CHECK_T(ConfigError, o.eps > 0 && o.weight_decay >= 0 && std::isfinite(o.eps) && std::isfinite(o.weight_decay),
             "optimizer: eps must be positive and weight_decay >= 0 (both finite)");
  PR_CHECK_T(ConfigError, std::isfinite(c.lr()) && c.lr() > 0, "optimizer: lr must be positive and finite, got ", c.lr());
  PR_CHECK_T(ConfigError, c.warmup_fraction() >= 0 && c.warmup_fraction() <= 1, "optimizer: warmup_fraction must be in [0, 1], got ",
             c.warmup_fraction());
  PR_CHECK_T(ConfigError, c.min_lr_ratio() >= 0 && c.min_lr_ratio() <= 1, "optimizer: min_lr_ratio must be in [0, 1], got ",
             c.min_lr_ratio());
  PR_CHECK_T(ConfigError, !std::isnan(c.clip_norm()), "optimizer: clip_norm must be a number");
  return o;
}

double AdamW::grad_norm() const {
  double ss = 0;
  for (const auto& [name, var] : model_.named_parameters()) {
    if (options_.lazy_rows && var.has_row_grad()) {
      const ag::RowGrad rg = var.row_grad();
      dispatch_floating(rg.values.dtype(), "grad_norm", [&](auto tag) {
        using T = decltype(tag);
        ss += kernels::sum_squares<T>(rg.values.numel(), rg.values.data<T>());
      });
      continue;
    }
    const Tensor& g = var.grad();
    if (!g.defined()) continue;
    dispatch_floating(g.dtype(), "grad_norm", [&](auto tag) {
      using T = decltype(tag);
      ss += kernels::sum_squares<T>(g.numel(), g.contiguous().data<T>());
    });
  }
  return std::sqrt(ss);
}

double AdamW::clip_and_step(double lr, double max_norm) {
  const double norm = grad_norm();
  step_with_norm(lr, max_norm, norm);
  return norm;
}

void AdamW::step_with_norm(double lr, double max_norm, double norm) {
  const double scale = max_norm > 0 ? std::min(1.0, max_norm / (norm + 1e-6)) : 1.0;
  ++steps_;
  const double bc1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  for (const auto& [name, var] : model_.named_parameters()) {
    const bool lazy = options_.lazy_rows && var.has_row_grad();
    const Tensor& p = var.value();
    if (!lazy && !var.grad().defined()) continue;
    State& s = state_[name];
    if (!s.exp_avg.defined() || s.exp_avg.shape() != p.shape()) {
      s.exp_avg = Tensor::zeros(p.shape(), p.dtype());
      s.exp_avg_sq = Tensor::zeros(p.shape(), p.dtype());
      s.row_step = Tensor();
    }
    const double wd = p.dim() >= 2 ? options_.weight_decay : 0.0;
    if (lazy) {
      PR_ASSERT(p.dim() == 2 && p.is_contiguous());
      if (!s.row_step.defined() || s.row_step.numel() != p.size(0)) {
        // Rows so far were updated at every step that had a gradient (dense steps).
        s.row_step = Tensor::full({p.size(0)}, static_cast<double>(steps_ - 1), DType::i64);
      }
      const ag::RowGrad rg = var.row_grad();
      dispatch_floating(p.dtype(), "AdamW", [&](auto tag) {
        using T = decltype(tag);
        lazy_adamw_rows<T>(rg.rows.numel(), p.size(1), rg.rows.data<std::int32_t>(), rg.values.data<T>(), p.data<T>(),
                           s.exp_avg.data<T>(), s.exp_avg_sq.data<T>(), s.row_step.data<std::int64_t>(), steps_, lr,
                           options_.beta1, options_.beta2, options_.eps, wd, bc1, bc2, scale);
      });
      continue;
    }
    const Tensor& g = var.grad();
    PR_ASSERT(p.is_contiguous() && g.is_contiguous() && g.shape() == p.shape());
    if (s.row_step.defined()) {
      // A dense step after lazy ones: first bring every row up to date (an all-rows
      // "update" with the dense gradient through the lazy path keeps one arithmetic).
      const std::int64_t R = p.size(0);
      Tensor all_rows = Tensor::empty({R}, DType::i32);
      for (std::int64_t r = 0; r < R; ++r) all_rows.data<std::int32_t>()[r] = static_cast<std::int32_t>(r);
      dispatch_floating(p.dtype(), "AdamW", [&](auto tag) {
        using T = decltype(tag);
        lazy_adamw_rows<T>(R, p.size(1), all_rows.data<std::int32_t>(), g.data<T>(), p.data<T>(), s.exp_avg.data<T>(),
                           s.exp_avg_sq.data<T>(), s.row_step.data<std::int64_t>(), steps_, lr, options_.beta1,
                           options_.beta2, options_.eps, wd, bc1, bc2, scale);
      });
      continue;
    }
    dispatch_floating(p.dtype(), "AdamW", [&](auto tag) {
      using T = decltype(tag);
      adamw_update<T>(p.numel(), p.data<T>(), g.data<T>(), s.exp_avg.data<T>(), s.exp_avg_sq.data<T>(), lr,
                      options_.beta1, options_.beta2, options_.eps, wd, bc1, bc2, scale);
    });
  }
}

double lr_at(const pb::OptimizerConfig& c, std::int64_t step, std::int64_t total_steps) {
  const double lr = c.lr();
  total_steps = std::max<std::int64_t>(total_steps, 1);
  const double fraction = std::clamp(c.warmup_fraction(), 0.0, 1.0);  // adamw_options() refuses others
  const std::int64_t warmup = static_cast<std::int64_t>(std::ceil(fraction * static_cast<double>(total_steps)));
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (c.decay() == pb::OptimizerConfig::CONSTANT) return lr;
  const double span = static_cast<double>(std::max<std::int64_t>(total_steps - warmup, 1));
  const double t = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
  const double floor = lr * c.min_lr_ratio();
  if (c.decay() == pb::OptimizerConfig::LINEAR) return floor + (lr - floor) * (1.0 - t);
  return floor + (lr - floor) * 0.5 * (1.0 + std::cos(M_PI * t));
}

}  // namespace prunerec::nn
