#include "prune/importance.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "autograd/ops.h"
#include "recsys/progress.h"
#include "tensor/kernels/softmax.h"
#include "tensor/rng.h"

namespace prunerec::prune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Rows (b * T + t) of a batch that have a next-item target.
std::vector<std::uint8_t> valid_rows(const recsys::Batch& b) {
  const Tensor t = b.targets.contiguous();
  const std::int32_t* p = t.data<std::int32_t>();
  std::vector<std::uint8_t> v(static_cast<std::size_t>(t.numel()));
  for (std::int64_t i = 0; i < t.numel(); ++i) v[i] = p[i] >= 0;
  return v;
}

// A tensor's values as f32 (a view when it already is f32 and contiguous).
struct F32 {
  Tensor t;
  explicit F32(const Tensor& x) : t(x.to(DType::f32).contiguous()) {}
  const float* data() const { return t.data<float>(); }
};

// Next-item logits [B*T, V] of a batch, no graph.
Tensor batch_logits(const nn::Transformer& model, const recsys::Batch& b, const nn::ForwardOptions& fo = {}) {
  ag::NoGradGuard ng;
  const ag::Var h = model.hidden(b.ids, b.pads, fo);
  return model.logits(ag::reshape(h, {b.ids.numel(), model.hidden_size()})).value().to(DType::f32).contiguous();
}

// Sums of per-position statistics over one half of the calibration set.
struct Raw {
  LayerScores sum;
  double count = 0;
  Raw& operator+=(const Raw& o) {
    for (std::size_t l = 0; l < sum.size(); ++l)
      for (std::size_t u = 0; u < sum[l].size(); ++u) sum[l][u] += o.sum[l][u];
    count += o.count;
    return *this;
  }
};

Raw make_raw(const std::vector<std::int64_t>& sizes) {
  Raw r;
  for (std::int64_t n : sizes) r.sum.emplace_back(static_cast<std::size_t>(n), 0.0);
  return r;
}

// Runs `fn(batch, raw)` over the batches of each half (alternate batches).
template <class Fn>
std::pair<Raw, Raw> run_halves(const Calibration& calib, const Raw& zero, Fn&& fn) {
  std::pair<Raw, Raw> halves{zero, zero};
  for (std::size_t i = 0; i < calib.batches.size(); ++i) {
    stop_point("importance scoring");  // Note [stopping long work]
    fn(calib.batches[i], i % 2 == 0 ? halves.first : halves.second);
  }
  return halves;
}

std::vector<double> flatten(const LayerScores& s) {
  std::vector<double> out;
  for (const auto& l : s) out.insert(out.end(), l.begin(), l.end());
  return out;
}

LayerScores mean_of(const Raw& r) {
  LayerScores s = r.sum;
  for (auto& l : s)
    for (double& v : l) v = r.count > 0 ? v / r.count : 0.0;
  return s;
}

// Per-layer normalisation to sum 1, then the paper's optional smoothing over layers.
LayerScores normalise_layers(LayerScores s, double alpha) {
  for (auto& l : s) {
    const double total = std::accumulate(l.begin(), l.end(), 0.0);
    if (total > 0)
      for (double& v : l) v /= total;
  }
  for (std::size_t l = 1; l < s.size(); ++l)
    if (alpha < 1.0 && s[l].size() == s[l - 1].size())
      for (std::size_t h = 0; h < s[l].size(); ++h) s[l][h] = alpha * s[l][h] + (1.0 - alpha) * s[l - 1][h];
  return s;
}

double stability_of(const LayerScores& a, const LayerScores& b) { return spearman(flatten(a), flatten(b)); }

LayerScores random_scores(const std::vector<std::int64_t>& sizes, std::uint64_t seed, std::uint64_t stream) {
  Rng rng(seed, stream);
  LayerScores s;
  for (std::int64_t n : sizes) {
    s.emplace_back();
    for (std::int64_t i = 0; i < n; ++i) s.back().push_back(rng.uniform());
  }
  return s;
}

std::vector<std::int64_t> head_counts(const nn::Transformer& m) {
  std::vector<std::int64_t> v;
  for (int l = 0; l < m.num_layers(); ++l) v.push_back(m.block(l).attn().num_heads());
  return v;
}

std::vector<std::int64_t> mlp_widths(const nn::Transformer& m) {
  std::vector<std::int64_t> v;
  for (int l = 0; l < m.num_layers(); ++l) v.push_back(m.block(l).mlp().width());
  return v;
}

// ---- hooks ------------------------------------------------------------------------------

// Collects per-head output norms or MLP statistics from the forward pass.
class StatHooks : public nn::ForwardHooks {
 public:
  StatHooks(const std::vector<std::uint8_t>& valid, Raw& raw, std::int64_t head_dim) : valid_(valid), raw_(raw), dh_(head_dim) {}
  std::string mode;                   // "head_norm", "mlp_topk", "mlp_magnitude", "norm_magnitude"
  const std::vector<int>* topk = nullptr;

  void on_attention_heads(int layer, const Tensor& heads) override {
    if (mode != "head_norm") return;
    const F32 h(heads);
    const std::int64_t width = heads.size(-1), H = width / dh_;
    for (std::size_t r = 0; r < valid_.size(); ++r) {
      if (!valid_[r]) continue;
      for (std::int64_t k = 0; k < H; ++k) {
        double ss = 0;
        for (std::int64_t j = 0; j < dh_; ++j) {
          const double v = h.data()[r * width + k * dh_ + j];
          ss += v * v;
        }
        raw_.sum[layer][k] += std::sqrt(ss);
      }
    }
  }

  void on_mlp(int layer, const Tensor& up, const Tensor& act) override {
    if (mode == "mlp_magnitude") {
      const F32 a(act);
      const std::int64_t F = act.size(-1);
      for (std::size_t r = 0; r < valid_.size(); ++r)
        if (valid_[r])
          for (std::int64_t j = 0; j < F; ++j) raw_.sum[layer][j] += std::fabs(a.data()[r * F + j]);
    } else if (mode == "mlp_topk") {
      const F32 u(up);
      const std::int64_t F = up.size(-1);
      const int k = std::clamp((*topk)[layer], 0, static_cast<int>(F));
      if (k == 0) return;
      std::vector<std::int32_t> idx(static_cast<std::size_t>(F));
      for (std::size_t r = 0; r < valid_.size(); ++r) {
        if (!valid_[r]) continue;
        const float* row = u.data() + r * F;
        std::iota(idx.begin(), idx.end(), 0);
        // K largest |up|, ties to the lower channel (a total order, so deterministic).
        std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), [&](std::int32_t a, std::int32_t b) {
          const float x = std::fabs(row[a]), y = std::fabs(row[b]);
          return x > y || (x == y && a < b);
        });
        for (int i = 0; i < k; ++i) raw_.sum[layer][idx[i]] += 1.0;
      }
    }
  }

  void on_normalized(int layer, int which, const Tensor& y) override {
    if (mode != "norm_magnitude") return;
    const F32 v(y);
    const std::int64_t d = y.size(-1);
    for (std::size_t r = 0; r < valid_.size(); ++r)
      if (valid_[r])
        for (std::int64_t c = 0; c < d; ++c) raw_.sum[0][c] += std::fabs(v.data()[r * d + c]);
  }

 private:
  const std::vector<std::uint8_t>& valid_;
  Raw& raw_;
  std::int64_t dh_;
};

// One no-grad forward pass over each half of the calibration set with StatHooks in
// `mode` collecting per-position statistics into raw sums of the given sizes.
std::pair<Raw, Raw> stat_pass(const nn::Transformer& model, const Calibration& calib, const std::vector<std::int64_t>& sizes,
                              const std::string& mode, const std::vector<int>* topk = nullptr) {
  return run_halves(calib, make_raw(sizes), [&](const recsys::Batch& b, Raw& raw) {
    const auto valid = valid_rows(b);
    StatHooks hooks(valid, raw, model.config().head_dim());
    hooks.mode = mode;
    hooks.topk = topk;
    nn::ForwardOptions fo;
    fo.hooks = &hooks;
    ag::NoGradGuard ng;
    model.hidden(b.ids, b.pads, fo);
    raw.count += static_cast<double>(b.positions);
  });
}

// Keeps the residual-stream Vars (with their gradients) of one forward pass.
class ResidualHooks : public nn::ForwardHooks {
 public:
  std::vector<ag::Var> residuals;  // entering each block, between sub-blocks, and final
  void on_residual(int, const ag::Var& x) override {
    ag::Var v = x;
    v.retain_grad();
    residuals.push_back(v);
  }
  void on_residual_mid(int, const ag::Var& x) override { on_residual(0, x); }
};

// Residual streams for block influence: entering block l, between its sub-blocks, and
// leaving it.
class StreamHooks : public nn::ForwardHooks {
 public:
  std::vector<Tensor> in, mid;
  Tensor final;
  void on_residual(int layer, const ag::Var& x) override {
    if (layer < static_cast<int>(in.size()) + 1 && layer == static_cast<int>(in.size()))
      in.push_back(x.value());
    final = x.value();
  }
  void on_residual_mid(int, const ag::Var& x) override { mid.push_back(x.value()); }
};

double one_minus_cos_sum(const Tensor& a, const Tensor& b, const std::vector<std::uint8_t>& valid) {
  const F32 x(a), y(b);
  const std::int64_t d = a.size(-1);
  double total = 0;
  for (std::size_t r = 0; r < valid.size(); ++r) {
    if (!valid[r]) continue;
    double xy = 0, xx = 0, yy = 0;
    for (std::int64_t c = 0; c < d; ++c) {
      const double p = x.data()[r * d + c], q = y.data()[r * d + c];
      xy += p * q;
      xx += p * p;
      yy += q * q;
    }
    total += xx > 0 && yy > 0 ? 1.0 - xy / std::sqrt(xx * yy) : 0.0;
  }
  return total;
}

// Sum of next-item cross-entropy over a batch's valid rows, and their count.
std::pair<double, double> batch_loss(const nn::Transformer& model, const recsys::Batch& b, const nn::ForwardOptions& fo) {
  ag::NoGradGuard ng;
  const double mean = model.loss(b.ids, b.pads, b.targets, fo).value().item();
  return {mean * static_cast<double>(b.positions), static_cast<double>(b.positions)};
}

nn::ForwardOptions skips_for(const nn::Transformer& model, const std::vector<bool>& removed, bool sub_blocks) {
  nn::ForwardOptions fo;
  const int L = model.num_layers();
  fo.skip_attention.assign(L, false);
  fo.skip_mlp.assign(L, false);
  for (std::size_t u = 0; u < removed.size(); ++u) {
    if (!removed[u]) continue;
    if (sub_blocks) {
      (u % 2 == 0 ? fo.skip_attention : fo.skip_mlp)[u / 2] = true;
    } else {
      fo.skip_attention[u] = fo.skip_mlp[u] = true;
    }
  }
  return fo;
}

}  // namespace

// ---- calibration -----------------------------------------------------------------------------

Calibration make_calibration(const std::vector<std::vector<std::int32_t>>& train, int max_len,
                             const pb::CalibrationConfig& config) {
  PR_CHECK_T(ConfigError, config.sequences() > 0 && config.batch_size() > 0,
             "calibration: sequences and batch_size must be positive");
  std::vector<std::int32_t> candidates;
  for (std::size_t i = 0; i < train.size(); ++i)
    if (train[i].size() >= 2) candidates.push_back(static_cast<std::int32_t>(i));
  PR_CHECK_T(ConfigError, !candidates.empty(), "calibration: no training sequence has 2 or more items");
  Rng rng(config.seed(), hash_stream(0xca11b));
  rng.shuffle(candidates);
  candidates.resize(std::min<std::size_t>(candidates.size(), static_cast<std::size_t>(config.sequences())));
  std::sort(candidates.begin(), candidates.end());
  std::vector<std::vector<std::int32_t>> chosen;
  for (std::int32_t i : candidates) chosen.push_back(train[i]);
  recsys::TrainBatcher batcher(chosen, max_len, config.batch_size(), /*all_windows=*/false);
  Calibration c;
  c.sequences = static_cast<std::int64_t>(chosen.size());
  for (const auto& ids : batcher.epoch_plan(config.seed(), 0)) {
    c.batches.push_back(batcher.make_batch(ids));
    c.positions += c.batches.back().positions;
  }
  return c;
}

std::pair<Calibration, Calibration> split_halves(const Calibration& c) {
  std::pair<Calibration, Calibration> h;
  for (std::size_t i = 0; i < c.batches.size(); ++i) {
    Calibration& dst = i % 2 == 0 ? h.first : h.second;
    dst.batches.push_back(c.batches[i]);
    dst.positions += c.batches[i].positions;
    dst.sequences += c.batches[i].ids.size(0);
  }
  return h;
}

double calibration_loss(const nn::Transformer& model, const Calibration& calib, const nn::ForwardOptions& fo) {
  double sum = 0, count = 0;
  for (const auto& b : calib.batches) {
    stop_point("calibration loss");  // Note [stopping long work]
    const auto [s, n] = batch_loss(model, b, fo);
    sum += s;
    count += n;
  }
  return count > 0 ? sum / count : 0.0;
}

// ---- heads ----------------------------------------------------------------------------------

HeadScores head_scores(nn::Transformer& model, const Calibration& calib, const std::string& method,
                       double smoothing_alpha, std::uint64_t seed) {
  const std::vector<std::int64_t> sizes = head_counts(model);
  if (method == "random") return {random_scores(sizes, seed, hash_stream(0x4ead)), kNaN};
  std::pair<Raw, Raw> halves;
  if (method == "kl") {
    // Silence one head at a time (gate 0) and measure KL(p || p_silenced) per position.
    halves = run_halves(calib, make_raw(sizes), [&](const recsys::Batch& b, Raw& raw) {
      const Tensor base = batch_logits(model, b);
      const std::int64_t N = base.size(0), V = base.size(1);
      const Tensor targets = b.targets.reshape({N}).contiguous();
      std::vector<float> loss(N), kl(N);
      for (int l = 0; l < model.num_layers(); ++l) {
        Tensor& gate = model.block(l).attn().head_gate();
        for (std::int64_t h = 0; h < gate.numel(); ++h) {
          const double kept = gate.at({h});
          gate.set({h}, 0.0);
          const Tensor silenced = batch_logits(model, b);
          gate.set({h}, kept);
          kernels::distill_rows<float>(N, V, silenced.data<float>(), base.data<float>(), targets.data<std::int32_t>(),
                                       0.0f, 1.0f, loss.data(), nullptr, kl.data(), nullptr, 0.0f);
          double total = 0;
          for (float v : kl) total += v;
          raw.sum[l][h] += total;
        }
      }
      raw.count += static_cast<double>(b.positions);
    });
  } else if (method == "activation") {
    halves = stat_pass(model, calib, sizes, "head_norm");
  } else {
    throw ConfigError("head_score must be kl, activation or random, got '" + method + "'");
  }
  Raw all = halves.first;
  all += halves.second;
  return {normalise_layers(mean_of(all), smoothing_alpha),
          stability_of(normalise_layers(mean_of(halves.first), smoothing_alpha),
                       normalise_layers(mean_of(halves.second), smoothing_alpha))};
}

// ---- hidden channels -----------------------------------------------------------------------

HiddenScores hidden_scores(const nn::Transformer& model, const Calibration& calib, const std::string& method,
                           std::uint64_t seed) {
  const std::vector<std::int64_t> sizes{model.hidden_size()};
  if (method == "random") return {random_scores(sizes, seed, hash_stream(0x41dd))[0], kNaN};
  std::pair<Raw, Raw> halves;
  if (method == "act_grad") {
    halves = run_halves(calib, make_raw(sizes), [&](const recsys::Batch& b, Raw& raw) {
      const std::int64_t N = b.ids.numel(), d = model.hidden_size();
      // The model's own top prediction at every position with a target.
      const Tensor logits = batch_logits(model, b);
      const std::int64_t V = logits.size(1);
      Tensor top = Tensor::full({N}, -1, DType::i32);
      const auto valid = valid_rows(b);
      for (std::int64_t r = 0; r < N; ++r) {
        if (!valid[r]) continue;
        const float* row = logits.data<float>() + r * V;
        top.data<std::int32_t>()[r] = static_cast<std::int32_t>(std::max_element(row, row + V) - row);
      }
      // Gradient of -log p(top) (summed over positions) with respect to every residual stream.
      ResidualHooks hooks;
      nn::ForwardOptions fo;
      fo.hooks = &hooks;
      const ag::Var h = model.hidden(b.ids, b.pads, fo);
      ag::Var loss = ag::linear_cross_entropy(ag::reshape(h, {N, d}), model.output_weight(), top);
      loss.backward(Tensor::scalar(static_cast<double>(b.positions), loss.dtype()));
      for (const ag::Var& x : hooks.residuals) {
        if (!x.grad().defined()) continue;
        const F32 a(x.value()), g(x.grad());
        for (std::int64_t r = 0; r < N; ++r)
          for (std::int64_t c = 0; c < d; ++c) raw.sum[0][c] += std::fabs(a.data()[r * d + c] * g.data()[r * d + c]);
      }
      raw.count += static_cast<double>(b.positions);
      const_cast<nn::Transformer&>(model).zero_grad();
    });
  } else if (method == "magnitude") {
    halves = stat_pass(model, calib, sizes, "norm_magnitude");
  } else {
    throw ConfigError("hidden_score must be act_grad, magnitude or random, got '" + method + "'");
  }
  Raw all = halves.first;
  all += halves.second;
  return {mean_of(all)[0], spearman(mean_of(halves.first)[0], mean_of(halves.second)[0])};
}

// ---- MLP channels ------------------------------------------------------------------------------

MlpScores mlp_scores(const nn::Transformer& model, const Calibration& calib, const std::string& method,
                     const std::vector<int>& keep_per_layer, std::uint64_t seed) {
  const std::vector<std::int64_t> sizes = mlp_widths(model);
  if (method == "random") return {random_scores(sizes, seed, hash_stream(0x3d1f)), kNaN};
  std::string mode;
  if (method == "topk")
    mode = "mlp_topk";
  else if (method == "magnitude")
    mode = "mlp_magnitude";
  else
    throw ConfigError("mlp_score must be topk, magnitude or random, got '" + method + "'");
  PR_CHECK_T(ConfigError, static_cast<int>(keep_per_layer.size()) == model.num_layers(), "mlp_scores: ",
             keep_per_layer.size(), " keep counts for ", model.num_layers(), " layers");
  const auto halves = stat_pass(model, calib, sizes, mode, &keep_per_layer);
  Raw all = halves.first;
  all += halves.second;
  return {mean_of(all), stability_of(mean_of(halves.first), mean_of(halves.second))};
}

// ---- depth ---------------------------------------------------------------------------------------

DepthScores depth_scores(const nn::Transformer& model, const Calibration& calib, const std::string& method,
                         bool sub_blocks, int remove_count, std::uint64_t seed) {
  const int L = model.num_layers();
  const int units = sub_blocks ? 2 * L : L;
  PR_CHECK_T(ConfigError, remove_count >= 0 && remove_count < units, "depth: cannot remove ", remove_count, " of ",
             units, " units");
  DepthScores out;
  out.base_loss = calibration_loss(model, calib);
  auto order_from_scores = [&] {
    std::vector<int> order(units);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return out.unit_scores[a] < out.unit_scores[b]; });
    out.removal_order.assign(order.begin(), order.begin() + remove_count);
  };
  if (method == "random") {
    out.unit_scores = random_scores({units}, seed, hash_stream(0xde97))[0];
    out.stability = kNaN;
    order_from_scores();
    return out;
  }
  if (method == "block_influence") {
    const auto halves = run_halves(calib, make_raw({units}), [&](const recsys::Batch& b, Raw& raw) {
      const auto valid = valid_rows(b);
      StreamHooks hooks;
      nn::ForwardOptions fo;
      fo.hooks = &hooks;
      ag::NoGradGuard ng;
      model.hidden(b.ids, b.pads, fo);
      for (int l = 0; l < L; ++l) {
        const Tensor& after = l + 1 < L ? hooks.in[l + 1] : hooks.final;
        if (sub_blocks) {
          raw.sum[0][2 * l] += one_minus_cos_sum(hooks.in[l], hooks.mid[l], valid);
          raw.sum[0][2 * l + 1] += one_minus_cos_sum(hooks.mid[l], after, valid);
        } else {
          raw.sum[0][l] += one_minus_cos_sum(hooks.in[l], after, valid);
        }
      }
      raw.count += static_cast<double>(b.positions);
    });
    Raw all = halves.first;
    all += halves.second;
    out.unit_scores = mean_of(all)[0];
    out.stability = spearman(mean_of(halves.first)[0], mean_of(halves.second)[0]);
    order_from_scores();
    return out;
  }
  PR_CHECK_T(ConfigError, method == "greedy", "layer_score must be greedy, block_influence or random, got '", method, "'");
  // Greedy: each round removes the unit whose removal (with those already removed) gives
  // the lowest calibration loss. Ties go to the lower unit index.
  std::vector<bool> removed(static_cast<std::size_t>(units), false);
  out.unit_scores.assign(static_cast<std::size_t>(units), 0.0);
  for (int round = 0; round < remove_count; ++round) {
    int best = -1;
    double best_loss = std::numeric_limits<double>::infinity();
    std::vector<double> half_a(units, kNaN), half_b(units, kNaN);
    for (int u = 0; u < units; ++u) {
      if (removed[u]) continue;
      std::vector<bool> trial = removed;
      trial[u] = true;
      const nn::ForwardOptions fo = skips_for(model, trial, sub_blocks);
      double sum[2] = {0, 0}, count[2] = {0, 0};
      for (std::size_t i = 0; i < calib.batches.size(); ++i) {
        stop_point("depth scoring");  // Note [stopping long work]
        const auto [s, n] = batch_loss(model, calib.batches[i], fo);
        sum[i % 2] += s;
        count[i % 2] += n;
      }
      const double loss = (sum[0] + sum[1]) / std::max(1.0, count[0] + count[1]);
      half_a[u] = sum[0] / std::max(1.0, count[0]);
      half_b[u] = sum[1] / std::max(1.0, count[1]);
      if (round == 0) out.unit_scores[u] = loss - out.base_loss;  // importance: loss increase
      if (loss < best_loss) {
        best_loss = loss;
        best = u;
      }
    }
    if (round == 0) {
      out.stability = units > 1 ? spearman(half_a, half_b) : kNaN;
    }
    removed[best] = true;
    out.removal_order.push_back(best);
    out.greedy_losses.push_back(best_loss);
  }
  if (remove_count == 0) out.stability = kNaN;
  return out;
}

// ---- helpers --------------------------------------------------------------------------------------

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  PR_CHECK(a.size() == b.size(), "spearman: sizes ", a.size(), " and ", b.size(), " differ");
  const std::size_t n = a.size();
  if (n < 2) return kNaN;
  auto ranks = [n](const std::vector<double>& v) {
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t i, std::size_t j) { return v[i] < v[j]; });
    std::vector<double> r(n);
    for (std::size_t i = 0; i < n;) {
      std::size_t j = i;
      while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) ++j;
      for (std::size_t k = i; k <= j; ++k) r[idx[k]] = (static_cast<double>(i) + static_cast<double>(j)) / 2.0;
      i = j + 1;
    }
    return r;
  };
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : kNaN;
}

std::vector<int> top_indices(const std::vector<double>& scores, int k) {
  std::vector<int> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  idx.resize(static_cast<std::size_t>(std::clamp<int>(k, 0, static_cast<int>(idx.size()))));
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace prunerec::prune
