#include "prune/importance.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "autograd/ops.h"
#include "base/comm.h"
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

// Sums a Raw over the ranks (every rank holds the total).
void allreduce(Raw& raw, Communicator& comm) {
  std::vector<double> flat;
  for (const auto& l : raw.sum) flat.insert(flat.end(), l.begin(), l.end());
  flat.push_back(raw.count);
  comm.allreduce_sum(flat.data(), static_cast<std::int64_t>(flat.size()));
  std::size_t at = 0;
  for (auto& l : raw.sum)
    for (double& v : l) v = flat[at++];
  raw.count = flat[at];
}

// Runs `fn(batch, raw)` over the batches of each half (alternate batches), one unit of
// work `what` per batch (Note [progress of nested work]).
//
// Note [data-parallel calibration]: under mpirun, batch i is scored by rank i mod N and
// the halves' sums are added over ranks. With 2 ranks each half is scored whole, in
// batch order, by one rank (batch i's half is i mod 2), so the scores are those of one
// process bit for bit; with more ranks a half's sum adds its batches in another grouping
// (equal up to float rounding). The calibration loss, greedy_kl's masked passes and the
// greedy depth trials deal their batches the same way.
template <class Fn>
std::pair<Raw, Raw> run_halves(const Calibration& calib, std::string_view what, const Raw& zero, Fn&& fn) {
  Communicator& comm = world();
  std::pair<Raw, Raw> halves{zero, zero};
  WorkPhase phase(calib.meter, what, static_cast<std::int64_t>(calib.batches.size()));
  for (std::size_t i = 0; i < calib.batches.size(); ++i) {
    phase.next_unit();  // Note [stopping long work]
    if (static_cast<int>(i % static_cast<std::size_t>(comm.size())) != comm.rank()) continue;
    fn(calib.batches[i], i % 2 == 0 ? halves.first : halves.second);
  }
  if (comm.size() > 1) {
    allreduce(halves.first, comm);
    allreduce(halves.second, comm);
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

// Per-layer normalisation, then smoothing over layers (both in normalise_layer and
// smooth_layer below).
LayerScores normalise_layers(LayerScores s, const HeadOptions& o) {
  for (std::size_t l = 0; l < s.size(); ++l) {
    s[l] = normalise_layer(std::move(s[l]), o.normalise);
    s[l] = smooth_layer(s[l], l > 0 ? &s[l - 1] : nullptr, o.smoothing, o.alpha);
  }
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
  std::string mode;  // "head_norm", "mlp_topk", "mlp_topk_signed", "mlp_magnitude", "norm_magnitude"
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
    } else if (mode == "mlp_topk" || mode == "mlp_topk_signed") {
      const bool by_value = mode == "mlp_topk_signed";
      const F32 u(up);
      const std::int64_t F = up.size(-1);
      const int k = std::clamp((*topk)[layer], 0, static_cast<int>(F));
      if (k == 0) return;
      std::vector<std::int32_t> idx(static_cast<std::size_t>(F));
      for (std::size_t r = 0; r < valid_.size(); ++r) {
        if (!valid_[r]) continue;
        const float* row = u.data() + r * F;
        std::iota(idx.begin(), idx.end(), 0);
        // K largest |up| (or up, signed), ties to the lower channel (a total order, so
        // deterministic).
        std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), [&](std::int32_t a, std::int32_t b) {
          const float x = by_value ? row[a] : std::fabs(row[a]), y = by_value ? row[b] : std::fabs(row[b]);
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
std::pair<Raw, Raw> stat_pass(const nn::Transformer& model, const Calibration& calib, std::string_view what,
                              const std::vector<std::int64_t>& sizes, const std::string& mode,
                              const std::vector<int>* topk = nullptr) {
  return run_halves(calib, what, make_raw(sizes), [&](const recsys::Batch& b, Raw& raw) {
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
  // Per-batch sums, batch i on rank i mod N, added over ranks and then in batch order: the
  // same value as one process, bit for bit (Note [data-parallel calibration]).
  Communicator& comm = world();
  const std::size_t B = calib.batches.size();
  std::vector<double> per_batch(2 * B, 0.0);
  WorkPhase phase(calib.meter, "calibration loss", static_cast<std::int64_t>(B));
  for (std::size_t i = 0; i < B; ++i) {
    phase.next_unit();  // Note [stopping long work]
    if (static_cast<int>(i % static_cast<std::size_t>(comm.size())) != comm.rank()) continue;
    const auto [s, n] = batch_loss(model, calib.batches[i], fo);
    per_batch[2 * i] = s;
    per_batch[2 * i + 1] = n;
  }
  if (comm.size() > 1) comm.allreduce_sum(per_batch.data(), static_cast<std::int64_t>(per_batch.size()));
  double sum = 0, count = 0;
  for (std::size_t i = 0; i < B; ++i) {
    sum += per_batch[2 * i];
    count += per_batch[2 * i + 1];
  }
  return count > 0 ? sum / count : 0.0;
}

// ---- heads ----------------------------------------------------------------------------------

namespace {

// Masks a set of heads for the duration of one scoring pass and restores the model after:
// "gate" sets their head gates to 0, "query_scale" scales their queries by 1e-4 (Note
// [query-scale mask] in nn/layers.h).
class HeadMask {
 public:
  HeadMask(nn::Transformer& model, const std::string& how) : model_(model), how_(how) {
    PR_CHECK_T(ConfigError, how == "gate" || how == "query_scale", "head_mask must be gate or query_scale, got '", how,
               "'");
  }
  HeadMask(const HeadMask&) = delete;
  HeadMask& operator=(const HeadMask&) = delete;
  ~HeadMask() { clear(); }

  // masked[l][h]: whether head h of layer l is masked now.
  void apply(const std::vector<std::vector<bool>>& masked) {
    clear();
    for (int l = 0; l < model_.num_layers(); ++l) {
      nn::Attention& a = model_.block(l).attn();
      const auto& m = masked[static_cast<std::size_t>(l)];
      if (std::find(m.begin(), m.end(), true) == m.end()) continue;
      if (how_ == "gate") {
        for (std::size_t h = 0; h < m.size(); ++h)
          if (m[h]) {
            saved_.push_back({l, static_cast<std::int64_t>(h), a.head_gate().at({static_cast<std::int64_t>(h)})});
            a.head_gate().set({static_cast<std::int64_t>(h)}, 0.0);
          }
      } else {
        std::vector<double> scale(m.size(), 1.0);
        for (std::size_t h = 0; h < m.size(); ++h)
          if (m[h]) scale[h] = kQueryMaskScale;
        a.set_query_scale(scale);
        scaled_.push_back(l);
      }
    }
  }
  void clear() {
    for (const auto& g : saved_) model_.block(g.layer).attn().head_gate().set({g.head}, g.value);
    for (int l : scaled_) model_.block(l).attn().set_query_scale({});
    saved_.clear();
    scaled_.clear();
  }

  static constexpr double kQueryMaskScale = 1e-4;  // the released code's scale_factor

 private:
  struct Gate {
    int layer;
    std::int64_t head;
    double value;
  };
  nn::Transformer& model_;
  std::string how_;
  std::vector<Gate> saved_;
  std::vector<int> scaled_;
};

// Next-item logits at the last position of every row, [B, V] as f64, no graph.
Tensor last_logits(const nn::Transformer& model, const recsys::Batch& b) {
  ag::NoGradGuard ng;
  const Tensor h = model.last_hidden(b.ids, b.pads);
  return model.logits(ag::Var(h)).value().to(DType::f64).contiguous();
}

// Algorithm 1 of the paper as its released code runs it (paper-spec section 3.1).
HeadScores greedy_kl_scores(nn::Transformer& model, const Calibration& calib, const HeadOptions& o) {
  const int L = model.num_layers();
  PR_CHECK_T(ConfigError, static_cast<int>(o.prune_per_layer.size()) == L, "greedy_kl: ", o.prune_per_layer.size(),
             " prune counts for ", L, " layers");
  // The unmasked model's distribution at the last position of every calibration row.
  std::vector<Tensor> base;
  double rows[2] = {0, 0};
  // Work: the unmasked pass, then one pass per head of every layer (Note [progress of nested work]).
  std::int64_t passes = 1;
  for (int l = 0; l < L; ++l) passes += model.block(l).attn().num_heads();
  WorkPhase phase(calib.meter, "head scoring (greedy_kl)", passes * static_cast<std::int64_t>(calib.batches.size()));
  // Batch i is this rank's when i mod N is its rank; the KL sums are added over ranks after
  // each layer (Note [data-parallel calibration]: bit for bit one process's at 2 ranks).
  Communicator& comm = world();
  auto mine = [&](std::size_t i) { return static_cast<int>(i % static_cast<std::size_t>(comm.size())) == comm.rank(); };
  for (std::size_t i = 0; i < calib.batches.size(); ++i) {
    phase.next_unit();  // Note [stopping long work]
    base.push_back(mine(i) ? last_logits(model, calib.batches[i]) : Tensor());
    rows[i % 2] += static_cast<double>(calib.batches[i].ids.size(0));
  }
  std::vector<std::vector<bool>> masked;
  for (int l = 0; l < L; ++l) masked.emplace_back(static_cast<std::size_t>(model.block(l).attn().num_heads()), false);
  HeadMask mask(model, o.mask);
  LayerScores smoothed(L), half_smoothed[2] = {LayerScores(L), LayerScores(L)};
  HeadScores out;
  out.scores.resize(L);
  for (int l = 0; l < L; ++l) {
    const std::size_t H = masked[l].size();
    std::vector<double> kl_sum[2] = {std::vector<double>(H, 0.0), std::vector<double>(H, 0.0)};
    for (std::size_t h = 0; h < H; ++h) {
      masked[l][h] = true;
      mask.apply(masked);
      for (std::size_t i = 0; i < calib.batches.size(); ++i) {
        phase.next_unit();
        if (!mine(i)) continue;
        const Tensor q = last_logits(model, calib.batches[i]);
        const std::int64_t B = q.size(0), V = q.size(1);
        for (std::int64_t r = 0; r < B; ++r)
          kl_sum[i % 2][h] += kl_eps(base[i].data<double>() + r * V, q.data<double>() + r * V, V);
      }
      masked[l][h] = false;
    }
    mask.clear();
    if (comm.size() > 1)
      for (auto& half : kl_sum) comm.allreduce_sum(half.data(), static_cast<std::int64_t>(H));
    // raw_i = 1 - mean KL over the whole set (and over each half, for the stability).
    auto layer_scores = [&](const std::vector<double>& sum, double n, const LayerScores& prev_smoothed) {
      std::vector<double> raw(H);
      for (std::size_t h = 0; h < H; ++h) raw[h] = 1.0 - sum[h] / std::max(1.0, n);
      return smooth_layer(normalise_layer(std::move(raw), o.normalise), l > 0 ? &prev_smoothed[l - 1] : nullptr,
                          o.smoothing, o.alpha);
    };
    std::vector<double> total(H);
    for (std::size_t h = 0; h < H; ++h) total[h] = kl_sum[0][h] + kl_sum[1][h];
    smoothed[l] = layer_scores(total, rows[0] + rows[1], smoothed);
    for (int half = 0; half < 2; ++half) half_smoothed[half][l] = layer_scores(kl_sum[half], rows[half], half_smoothed[half]);
    const int k = std::clamp(o.prune_per_layer[l], 0, static_cast<int>(H));
    for (int h : greedy_choice(smoothed[l], k)) masked[l][h] = true;
    out.scores[l].resize(H);
    for (std::size_t h = 0; h < H; ++h) out.scores[l][h] = -smoothed[l][h];  // higher = kept
  }
  out.stability = stability_of(half_smoothed[0], half_smoothed[1]);
  return out;
}

}  // namespace

std::vector<double> normalise_layer(std::vector<double> v, const std::string& how) {
  if (v.empty()) return v;
  if (how == "sum") {
    const double total = std::accumulate(v.begin(), v.end(), 0.0);
    if (total > 0)
      for (double& x : v) x /= total;
  } else if (how == "minmax") {
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    const double min = *lo, range = *hi - *lo;
    for (double& x : v) x = range > 0 ? (x - min) / range : 0.0;
  } else {
    throw ConfigError("head_normalise must be sum or minmax, got '" + how + "'");
  }
  return v;
}

std::vector<double> smooth_layer(const std::vector<double>& n, const std::vector<double>* prev, const std::string& placement,
                                 double alpha) {
  PR_CHECK_T(ConfigError, placement == "current" || placement == "previous",
             "head_smoothing must be current or previous, got '", placement, "'");
  PR_CHECK_T(ConfigError, alpha >= 0 && alpha <= 1, "head_smoothing_alpha must be in [0, 1], got ", alpha);
  const bool none = placement == "current" ? alpha == 1.0 : alpha == 0.0;
  if (!prev || prev->size() != n.size() || none) return n;
  std::vector<double> s(n.size());
  for (std::size_t h = 0; h < n.size(); ++h)
    s[h] = placement == "current" ? alpha * n[h] + (1.0 - alpha) * (*prev)[h] : alpha * (*prev)[h] + (1.0 - alpha) * n[h];
  return s;
}

double kl_eps(const double* p_logits, const double* q_logits, std::int64_t V) {
  constexpr double eps = 1e-12;
  const double pm = *std::max_element(p_logits, p_logits + V), qm = *std::max_element(q_logits, q_logits + V);
  double pz = 0, qz = 0;
  for (std::int64_t v = 0; v < V; ++v) {
    pz += std::exp(p_logits[v] - pm);
    qz += std::exp(q_logits[v] - qm);
  }
  double kl = 0;
  for (std::int64_t v = 0; v < V; ++v) {
    const double p = std::exp(p_logits[v] - pm) / pz + eps, q = std::exp(q_logits[v] - qm) / qz + eps;
    kl += p * std::log(p / q);
  }
  return kl;
}

std::vector<int> greedy_choice(const std::vector<double>& s, int k) {
  std::vector<int> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return s[a] < s[b]; });  // np.argsort, stable
  const int n = static_cast<int>(idx.size());
  std::vector<int> out(idx.begin() + (n - std::clamp(k, 0, n)), idx.end());
  std::sort(out.begin(), out.end());
  return out;
}

HeadScores head_scores(nn::Transformer& model, const Calibration& calib, const std::string& method,
                       double smoothing_alpha, std::uint64_t seed) {
  HeadOptions o;
  o.method = method;
  o.alpha = smoothing_alpha;
  return head_scores(model, calib, o, seed);
}

HeadScores head_scores(nn::Transformer& model, const Calibration& calib, const HeadOptions& o, std::uint64_t seed) {
  const std::vector<std::int64_t> sizes = head_counts(model);
  if (o.method == "random") return {random_scores(sizes, seed, hash_stream(0x4ead)), kNaN};
  if (o.method == "greedy_kl") return greedy_kl_scores(model, calib, o);
  std::pair<Raw, Raw> halves;
  if (o.method == "kl") {
    // Mask one head at a time and measure KL(p || p_masked) per position.
    HeadMask mask(model, o.mask);
    std::vector<std::vector<bool>> masked;
    for (std::int64_t n : sizes) masked.emplace_back(static_cast<std::size_t>(n), false);
    halves = run_halves(calib, "head scoring (kl)", make_raw(sizes), [&](const recsys::Batch& b, Raw& raw) {
      const Tensor base = batch_logits(model, b);
      const std::int64_t N = base.size(0), V = base.size(1);
      const Tensor targets = b.targets.reshape({N}).contiguous();
      std::vector<float> loss(N), kl(N);
      for (int l = 0; l < model.num_layers(); ++l) {
        for (std::int64_t h = 0; h < sizes[l]; ++h) {
          masked[l][h] = true;
          mask.apply(masked);
          const Tensor silenced = batch_logits(model, b);
          mask.clear();
          masked[l][h] = false;
          kernels::distill_rows<float>(N, V, silenced.data<float>(), base.data<float>(), targets.data<std::int32_t>(),
                                       0.0f, 1.0f, loss.data(), nullptr, kl.data(), nullptr, 0.0f);
          double total = 0;
          for (float v : kl) total += v;
          raw.sum[l][h] += total;
        }
      }
      raw.count += static_cast<double>(b.positions);
    });
  } else if (o.method == "activation") {
    halves = stat_pass(model, calib, "head scoring (activation)", sizes, "head_norm");
  } else {
    throw ConfigError("head_score must be kl, greedy_kl, activation or random, got '" + o.method + "'");
  }
  Raw all = halves.first;
  all += halves.second;
  return {normalise_layers(mean_of(all), o),
          stability_of(normalise_layers(mean_of(halves.first), o), normalise_layers(mean_of(halves.second), o))};
}

// ---- hidden channels -----------------------------------------------------------------------

HiddenScores hidden_scores(const nn::Transformer& model, const Calibration& calib, const std::string& method,
                           std::uint64_t seed) {
  const std::vector<std::int64_t> sizes{model.hidden_size()};
  if (method == "random") return {random_scores(sizes, seed, hash_stream(0x41dd))[0], kNaN};
  std::pair<Raw, Raw> halves;
  if (method == "act_grad") {
    halves = run_halves(calib, "hidden-channel scoring (act_grad)", make_raw(sizes), [&](const recsys::Batch& b, Raw& raw) {
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
  } else if (method == "top_logit") {
    // The released code's |g * h| on the final post-norm hidden state, g the gradient of
    // the top logit at the last position: g is E[y] there and zero elsewhere, so the
    // score of channel c is |h_T,c * E[y,c]| (paper-spec section 3.2). Squares are summed
    // over the calibration rows (the code's L2 norm over its batch).
    const Tensor E = model.output_weight().value().to(DType::f64).contiguous();
    halves = run_halves(calib, "hidden-channel scoring (top_logit)", make_raw(sizes), [&](const recsys::Batch& b, Raw& raw) {
      ag::NoGradGuard ng;
      const Tensor hm = model.last_hidden(b.ids, b.pads);
      const Tensor h = hm.to(DType::f64).contiguous();
      const Tensor logits = model.logits(ag::Var(hm)).value().to(DType::f64).contiguous();
      const std::int64_t B = h.size(0), d = h.size(1), V = logits.size(1);
      for (std::int64_t r = 0; r < B; ++r) {
        const double* row = logits.data<double>() + r * V;
        const std::int64_t y = std::max_element(row, row + V) - row;  // first maximum, as torch.argmax
        for (std::int64_t c = 0; c < d; ++c) {
          const double v = h.data<double>()[r * d + c] * E.data<double>()[y * d + c];
          raw.sum[0][c] += v * v;
        }
      }
      raw.count += static_cast<double>(B);
    });
    Raw all = halves.first;
    all += halves.second;
    auto rms = [](std::vector<double> v) {
      for (double& x : v) x = std::sqrt(x);
      return v;
    };
    return {rms(mean_of(all)[0]), spearman(mean_of(halves.first)[0], mean_of(halves.second)[0])};
  } else if (method == "magnitude") {
    halves = stat_pass(model, calib, "hidden-channel scoring (" + method + ")", sizes, "norm_magnitude");
  } else {
    throw ConfigError("hidden_score must be act_grad, top_logit, magnitude or random, got '" + method + "'");
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
  else if (method == "topk_signed")
    mode = "mlp_topk_signed";
  else if (method == "magnitude")
    mode = "mlp_magnitude";
  else
    throw ConfigError("mlp_score must be topk, topk_signed, magnitude or random, got '" + method + "'");
  PR_CHECK_T(ConfigError, static_cast<int>(keep_per_layer.size()) == model.num_layers(), "mlp_scores: ",
             keep_per_layer.size(), " keep counts for ", model.num_layers(), " layers");
  const auto halves = stat_pass(model, calib, "MLP-channel scoring (" + method + ")", sizes, mode, &keep_per_layer);
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
    const auto halves = run_halves(calib, "depth scoring (block_influence)", make_raw({units}), [&](const recsys::Batch& b, Raw& raw) {
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
  // Work: round r tries each of the units - r units left (Note [progress of nested work]).
  std::int64_t trials = 0;
  for (int round = 0; round < remove_count; ++round) trials += units - round;
  WorkPhase phase(calib.meter, "depth scoring (greedy)", trials * static_cast<std::int64_t>(calib.batches.size()));
  Communicator& comm = world();
  for (int round = 0; round < remove_count; ++round) {
    int best = -1;
    double best_loss = std::numeric_limits<double>::infinity();
    std::vector<double> half_a(units, kNaN), half_b(units, kNaN);
    for (int u = 0; u < units; ++u) {
      if (removed[u]) continue;
      std::vector<bool> trial = removed;
      trial[u] = true;
      const nn::ForwardOptions fo = skips_for(model, trial, sub_blocks);
      // [sum half 0, sum half 1, count half 0, count half 1], batch i on rank i mod N, added
      // over ranks (Note [data-parallel calibration]).
      double sums[4] = {0, 0, 0, 0};
      double* sum = sums;
      double* count = sums + 2;
      for (std::size_t i = 0; i < calib.batches.size(); ++i) {
        phase.next_unit();  // Note [stopping long work]
        if (static_cast<int>(i % static_cast<std::size_t>(comm.size())) != comm.rank()) continue;
        const auto [s, n] = batch_loss(model, calib.batches[i], fo);
        sum[i % 2] += s;
        count[i % 2] += n;
      }
      if (comm.size() > 1) comm.allreduce_sum(sums, 4);
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
