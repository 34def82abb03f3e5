#include "prune/schedule.h"

#include "proto/train.pb.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "nn/checkpoint.h"
#include "nn/checkpoint_file.h"
#include "nn/text_proto.h"
#include "prune/distill.h"
#include "prune/importance.h"
#include "prune/ledger.h"
#include "prune/report.h"
#include "prune/surgery.h"
#include "recsys/eval/evaluator.h"
#include "recsys/eval/paired.h"
#include "recsys/recommender.h"
#include "recsys/trainer.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"
#include "base/atomic_file.h"
#include "base/comm.h"
#include "base/format.h"
#include "base/json.h"

namespace prunerec::prune {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const char* kind_name(pb::StageConfig::Kind k) {
  switch (k) {
    case pb::StageConfig::WIDTH_ATTENTION: return "width-attention";
    case pb::StageConfig::WIDTH_MLP: return "width-mlp";
    case pb::StageConfig::DEPTH: return "depth";
  }
  return "?";
}

std::string stage_name(const pb::StageConfig& s, int index) {
  return s.has_name() && !s.name().empty() ? s.name() : detail::str_cat("stage", index + 1, "-", kind_name(s.kind()));
}

// How many of `current` units a target keeps: the count when set, else the fraction
// (rounded, at least `floor` when the fraction is positive), else all.
int resolve_keep(bool has_count, int count, bool has_fraction, double fraction, int current, int floor_when_fraction) {
  if (has_count) return std::clamp(count, 0, current);
  if (has_fraction) {
    const int k = static_cast<int>(std::lround(fraction * current));
    return std::clamp(fraction > 0 ? std::max(k, floor_when_fraction) : 0, 0, current);
  }
  return current;
}

void add_range(google::protobuf::RepeatedField<std::int32_t>* f, const std::vector<int>& v) {
  f->Clear();
  for (int x : v) f->Add(x);
}

// Scores as JSON for study: {"kind": [[...per layer...]], "stability": {...}, ...}.
class ScoreFile {
 public:
  ScoreFile() { j_.begin_object(); }
  void layers(const std::string& key, const LayerScores& s) {
    j_.key(key).begin_array();
    for (const auto& l : s) {
      j_.begin_array();
      for (double v : l) j_.value(v);
      j_.end_array();
    }
    j_.end_array();
  }
  void vector(const std::string& key, const std::vector<double>& v) {
    j_.key(key).begin_array();
    for (double x : v) j_.value(x);
    j_.end_array();
  }
  void ints(const std::string& key, const std::vector<int>& v) {
    j_.key(key).begin_array();
    for (int x : v) j_.value(x);
    j_.end_array();
  }
  void text(const std::string& key, const std::string& v) { j_.key(key).value(v); }
  void number(const std::string& key, double v) { j_.key(key).value(v); }
  std::string finish() {
    j_.end_object();
    return j_.str() + "\n";
  }

 private:
  Json j_;
};

HeadOptions head_options(const pb::StageConfig& st) {
  HeadOptions o;
  o.method = st.head_score();
  o.mask = st.head_mask();
  o.normalise = st.head_normalise();
  o.smoothing = st.head_smoothing();
  o.alpha = st.head_smoothing_alpha();
  return o;
}

// The head estimator with the options it depends on, e.g. "greedy_kl (mask query_scale,
// minmax, smoothing previous 0.7)"; random and activation take no options.
std::string head_estimator_name(const pb::StageConfig& st) {
  if (st.head_score() == "random") return "random";
  std::string s = st.head_score() + " (";
  if (st.head_score() != "activation") s += "mask " + st.head_mask() + ", ";
  const bool none = st.head_smoothing() == "current" ? st.head_smoothing_alpha() == 1.0 : st.head_smoothing_alpha() == 0.0;
  s += st.head_normalise() + ", smoothing " +
       (none ? std::string("none") : detail::str_cat(st.head_smoothing(), " ", st.head_smoothing_alpha())) + ")";
  return s;
}

}  // namespace

std::string estimator_name(const pb::StageConfig& st) {
  switch (st.kind()) {
    case pb::StageConfig::WIDTH_ATTENTION: {
      std::string s;
      if (st.has_keep_heads() || st.has_keep_heads_fraction()) s = "heads " + head_estimator_name(st);
      if (st.has_keep_hidden() || st.has_keep_hidden_fraction())
        s += (s.empty() ? "" : "; ") + std::string("hidden ") + st.hidden_score();
      return s;
    }
    case pb::StageConfig::WIDTH_MLP: return "mlp " + st.mlp_score();
    case pb::StageConfig::DEPTH:
      return "layers " + st.layer_score() + (st.sub_blocks() ? " (sub-blocks)" : "");
  }
  return "?";
}

namespace {

// The plan of one stage, from importance scores on the current model.
struct StagePlan {
  pb::PrunePlan plan;
  pb::ScoreStability stability;
  std::string scores_json;
};

// Random query heads of one layer that read exactly `kv_count` KV heads: a random set of
// KV groups, one random head from each, then random further heads from those groups.
std::vector<int> random_heads_matching(const std::vector<std::int32_t>& kv_map, int keep, int kv_count, Rng& rng) {
  std::vector<std::int32_t> groups;
  for (std::int32_t g : kv_map)
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
  std::sort(groups.begin(), groups.end());
  PR_CHECK_T(ConfigError, kv_count >= 0 && kv_count <= static_cast<int>(groups.size()) && keep >= kv_count,
             "size-matched random heads: cannot keep ", keep, " heads reading ", kv_count, " of ", groups.size(),
             " KV heads");
  rng.shuffle(groups);
  groups.resize(static_cast<std::size_t>(kv_count));
  std::vector<int> chosen, rest;
  for (std::int32_t g : groups) {
    std::vector<int> members;
    for (std::size_t h = 0; h < kv_map.size(); ++h)
      if (kv_map[h] == g) members.push_back(static_cast<int>(h));
    rng.shuffle(members);
    chosen.push_back(members[0]);
    rest.insert(rest.end(), members.begin() + 1, members.end());
  }
  PR_CHECK_T(ConfigError, keep <= static_cast<int>(chosen.size() + rest.size()), "size-matched random heads: ", keep,
             " heads do not fit in ", kv_count, " KV groups");
  std::sort(rest.begin(), rest.end());
  rng.shuffle(rest);
  chosen.insert(chosen.end(), rest.begin(), rest.begin() + (keep - static_cast<int>(chosen.size())));
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

StagePlan plan_stage(nn::Transformer& model, const pb::StageConfig& st, const Calibration& calib, std::uint64_t seed,
                     std::ostream& log, const pb::PrunePlan* match) {
  StagePlan out;
  ScoreFile scores;
  scores.text("stage_kind", kind_name(st.kind()));
  scores.number("calibration_sequences", static_cast<double>(calib.sequences));
  scores.number("calibration_positions", static_cast<double>(calib.positions));
  const int L = model.num_layers();
  for (int l = 0; l < L; ++l) out.plan.add_layers();
  auto& stab = *out.stability.mutable_spearman();

  if (st.kind() == pb::StageConfig::WIDTH_ATTENTION) {
    const bool heads = st.has_keep_heads() || st.has_keep_heads_fraction();
    const bool hidden = st.has_keep_hidden() || st.has_keep_hidden_fraction();
    PR_CHECK_T(ConfigError, heads || hidden, "schedule: width-attention stage sets neither head nor hidden targets");
    if (heads) {
      HeadOptions ho = head_options(st);
      std::vector<int> keep;
      for (int l = 0; l < L; ++l) {
        const int n = static_cast<int>(model.block(l).attn().num_heads());
        keep.push_back(resolve_keep(st.has_keep_heads(), st.keep_heads(), st.has_keep_heads_fraction(),
                                    st.keep_heads_fraction(), n, 1));
        ho.prune_per_layer.push_back(n - keep.back());
      }
      const HeadScores hs = head_scores(model, calib, ho, seed);
      scores.text("head_score", st.head_score());
      scores.text("head_estimator", head_estimator_name(st));
      scores.layers("heads", hs.scores);
      stab["heads"] = hs.stability;
      const bool matched = st.head_score() == "random" && match && match->layers_size() == L;
      Rng rng(seed, hash_stream(0x5173, 0x4ead));
      for (int l = 0; l < L; ++l) {
        pb::LayerPlan& lp = *out.plan.mutable_layers(l);
        lp.set_keep_all_heads(false);
        if (matched && !match->layers(l).keep_all_heads()) {
          PR_CHECK_T(ConfigError, match->layers(l).kept_heads_size() == keep[l], "size matching: layer ", l,
                     " keeps ", match->layers(l).kept_heads_size(), " heads in the real plan, ", keep[l], " here");
          add_range(lp.mutable_kept_heads(), random_heads_matching(model.block(l).attn().kv_map(), keep[l],
                                                                   match->layers(l).kept_kv_heads_size(), rng));
        } else {
          add_range(lp.mutable_kept_heads(), top_indices(hs.scores[l], keep[l]));
        }
      }
      if (matched) scores.text("size_match", "heads chosen at random within the real plan's KV-head counts");
      log << "  heads (" << st.head_score() << "): split-half Spearman " << format_fixed(hs.stability, 3) << "\n";
    }
    if (hidden) {
      const HiddenScores hs = hidden_scores(model, calib, st.hidden_score(), seed);
      scores.text("hidden_score", st.hidden_score());
      scores.vector("hidden", hs.scores);
      stab["hidden"] = hs.stability;
      const int d = static_cast<int>(model.hidden_size());
      const int k = resolve_keep(st.has_keep_hidden(), st.keep_hidden(), st.has_keep_hidden_fraction(),
                                 st.keep_hidden_fraction(), d, 1);
      PR_CHECK_T(ConfigError, k >= 1, "schedule: the hidden target keeps no channel");
      out.plan.set_keep_all_hidden(false);
      add_range(out.plan.mutable_kept_hidden(), top_indices(hs.scores, k));
      log << "  hidden channels (" << st.hidden_score() << "): split-half Spearman " << format_fixed(hs.stability, 3)
          << "\n";
    }
  } else if (st.kind() == pb::StageConfig::WIDTH_MLP) {
    PR_CHECK_T(ConfigError, st.has_keep_mlp() || st.has_keep_mlp_fraction(), "schedule: width-mlp stage has no MLP target");
    std::vector<int> keep;
    for (int l = 0; l < L; ++l)
      keep.push_back(resolve_keep(st.has_keep_mlp(), st.keep_mlp(), st.has_keep_mlp_fraction(), st.keep_mlp_fraction(),
                                  static_cast<int>(model.block(l).mlp().width()), 1));
    const MlpScores ms = mlp_scores(model, calib, st.mlp_score(), keep, seed);
    scores.text("mlp_score", st.mlp_score());
    scores.layers("mlp", ms.scores);
    stab["mlp"] = ms.stability;
    for (int l = 0; l < L; ++l) {
      pb::LayerPlan& lp = *out.plan.mutable_layers(l);
      lp.set_keep_all_mlp(false);
      add_range(lp.mutable_kept_mlp(), top_indices(ms.scores[l], keep[l]));
    }
    log << "  MLP channels (" << st.mlp_score() << "): split-half Spearman " << format_fixed(ms.stability, 3) << "\n";
  } else {
    PR_CHECK_T(ConfigError, st.has_keep_layers() || st.has_keep_layers_fraction(), "schedule: depth stage has no layer target");
    const int keep_layers = resolve_keep(st.has_keep_layers(), st.keep_layers(), st.has_keep_layers_fraction(),
                                         st.keep_layers_fraction(), L, 1);
    PR_CHECK_T(ConfigError, keep_layers >= 1, "schedule: the depth target keeps no layer");
    const int units = st.sub_blocks() ? 2 * L : L;
    const int keep_units = st.sub_blocks() ? 2 * keep_layers : keep_layers;
    DepthScores ds = depth_scores(model, calib, st.layer_score(), st.sub_blocks(), units - keep_units, seed);
    if (st.layer_score() == "random" && match && !st.sub_blocks() && match->kept_layers_size() == keep_layers &&
        match->layers_size() == L) {
      // Size matching: in the order of the random scores, keep layers whose KV-head count
      // the real plan's kept layers still need.
      std::map<int, int> needed;  // KV heads -> kept layers with that many
      for (int l : match->kept_layers()) ++needed[match->layers(l).kept_kv_heads_size()];
      std::vector<int> order(L);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return ds.unit_scores[a] > ds.unit_scores[b]; });
      std::vector<bool> kept(L, false);
      for (int l : order) {
        auto it = needed.find(static_cast<int>(model.block(l).attn().num_kv_heads()));
        if (it != needed.end() && it->second > 0) {
          --it->second;
          kept[l] = true;
        }
      }
      for (const auto& [kv, n] : needed)
        PR_CHECK_T(ConfigError, n == 0, "size matching: no layer left with ", kv, " KV heads");
      ds.removal_order.clear();
      for (int l : order)  // lowest scores first, as depth_scores orders removals
        if (!kept[l]) ds.removal_order.insert(ds.removal_order.begin(), l);
      scores.text("size_match", "layers chosen at random among those with the real plan's KV-head counts");
    }
    scores.text("layer_score", st.layer_score());
    scores.text("units", st.sub_blocks() ? "sub-blocks (2l = attention, 2l+1 = MLP)" : "layers");
    scores.vector("unit_scores", ds.unit_scores);
    scores.ints("removal_order", ds.removal_order);
    scores.vector("greedy_losses", ds.greedy_losses);
    scores.number("base_loss", ds.base_loss);
    stab["layers"] = ds.stability;
    std::vector<bool> removed(static_cast<std::size_t>(units), false);
    for (int u : ds.removal_order) removed[u] = true;
    std::vector<int> kept_layers;
    for (int l = 0; l < L; ++l) {
      const bool attn_gone = st.sub_blocks() ? removed[2 * l] : removed[l];
      const bool mlp_gone = st.sub_blocks() ? removed[2 * l + 1] : removed[l];
      if (attn_gone && mlp_gone) continue;
      kept_layers.push_back(l);
      pb::LayerPlan& lp = *out.plan.mutable_layers(l);
      if (attn_gone) {
        lp.set_keep_all_heads(false);
        lp.clear_kept_heads();
      }
      if (mlp_gone) {
        lp.set_keep_all_mlp(false);
        lp.clear_kept_mlp();
      }
    }
    PR_CHECK_T(ConfigError, !kept_layers.empty(), "schedule: the depth stage would remove every layer");
    out.plan.set_keep_all_layers(false);
    add_range(out.plan.mutable_kept_layers(), kept_layers);
    log << "  " << (st.sub_blocks() ? "sub-blocks" : "layers") << " (" << st.layer_score() << "): removed "
        << (st.sub_blocks() ? "sub-block" : "layer") << (ds.removal_order.size() == 1 ? " " : "s ");
    for (std::size_t i = 0; i < ds.removal_order.size(); ++i) log << (i ? ", " : "") << ds.removal_order[i];
    log << " (in removal order); split-half Spearman " << format_fixed(ds.stability, 3) << "\n";
  }
  out.scores_json = scores.finish();
  return out;
}

// Note [training FLOPs]
// ~~~~~~~~~~~~~~~~~~~~~
// Multiply-adds count 2 FLOPs, as flops_per_recommendation does. A training position costs
// 3x its forward FLOPs (the backward is about twice the forward): every layer's
// projections and MLP, causal attention over the prefix (counted at the full max_len
// window, an upper bound: a query reads (max_len + 1) / 2 keys on average), and the
// output layer over the whole catalogue. Distillation adds, per position and step, the
// teacher's output layer (forward only), and once per window position the teacher's
// layers (Note [teacher cache]). Positions are the trainer's own count (the training
// state in the checkpoint); validation passes are not counted. The teacher's training is
// read from its checkpoint the same way (0 when the file does not record it).
double forward_flops_per_position(const pb::ModelConfig& c, bool output_layer) {
  const double d = c.hidden(), dh = c.head_dim(), keys = (c.max_len() + 1) / 2.0;
  double f = 0;
  for (const auto& L : c.layers()) {
    const double q = L.num_heads() * dh, kv = L.num_kv_heads() * dh;
    f += 2 * (2 * d * kv + d * q + q * d + 3 * d * L.mlp_width());
    f += L.num_heads() * 2.0 * 2.0 * dh * keys;
  }
  if (output_layer) f += 2 * d * c.vocab_size();
  return f;
}

// Note [files decided on rank 0]: whether a file exists decides what a schedule does next
// (skip a finished stage, reuse a plan, evaluate again). Under mpirun only rank 0 writes
// (Note [rank 0 speaks] in apps/main.cc), so another rank could see a file appear while
// rank 0 runs ahead and take another path, with other collectives. Every such decision is
// rank 0's, broadcast to all; a file rank 0 writes that the others read next is followed by
// a barrier (write_report, the stage plans, the per-user ranks).
bool exists_agreed(const fs::path& path) {
  Communicator& comm = world();
  std::uint8_t exists = comm.is_root() && fs::exists(path);
  if (comm.size() > 1) comm.broadcast(&exists, 1, 0);
  return exists != 0;
}

// Positions a finished training recorded in its checkpoint, and its epochs.
std::pair<std::int64_t, int> trained_positions(const std::string& checkpoint) {
  if (!exists_agreed(checkpoint)) return {0, 0};
  const pb::Manifest m = nn::read_checkpoint_manifest(checkpoint);
  return {m.state().positions(), m.state().epoch()};
}

// Training FLOPs of `positions` positions of a model of `student`, distilled from
// `teacher` (or plain cross-entropy when null) over `epochs` epochs.
double training_flops(const pb::ModelConfig& student, std::int64_t positions, int epochs,
                      const pb::ModelConfig* teacher) {
  const double p = static_cast<double>(positions);
  double f = 3 * p * forward_flops_per_position(student, true);
  if (teacher) {
    f += p * 2 * teacher->hidden() * teacher->vocab_size();
    f += (epochs > 0 ? p / epochs : p) * forward_flops_per_position(*teacher, false);
  }
  return f;
}

pb::TrainConfig recovery_train_config(const pb::Schedule& s, const pb::StageConfig& st) {
  pb::RecoveryConfig r = s.recovery_defaults();
  r.MergeFrom(st.recovery());
  pb::TrainConfig t = r.train();
  if (!t.has_seed()) t.set_seed(s.seed());
  return t;
}

pb::RecoveryConfig recovery_of(const pb::Schedule& s, const pb::StageConfig& st) {
  pb::RecoveryConfig r = s.recovery_defaults();
  r.MergeFrom(st.recovery());
  return r;
}

// What the teacher cache keeps for a recovery: the top-k view at the recovery's
// temperature, or the states (whose values do not depend on the temperature, so stages
// with different temperatures share them).
CacheMode cache_mode(const pb::RecoveryConfig& r) {
  return r.distill_top_k() > 0 ? CacheMode{r.distill_top_k(), r.temperature()} : CacheMode{};
}

std::unique_ptr<nn::Transformer> load_net(const std::string& path) {
  return std::move(nn::load_model(path, {.with_optimizer = false}).model);
}

// Checks, before anything is computed or written, that every stage's targets fit the
// model the stage will see (widths follow the targets; KV heads can only shrink, so the
// teacher's count is an upper bound). ConfigError names the stage and what does not fit.
void check_schedule_fits(const pb::Schedule& s, const pb::ModelConfig& teacher) {
  pb::ModelConfig c = nn::normalize_config(teacher);
  for (int i = 0; i < s.stages_size(); ++i) {
    const pb::StageConfig& st = s.stages(i);
    const std::string where = detail::str_cat("schedule stage ", i + 1, " (", stage_name(st, i), ")");
    PR_CHECK_T(ConfigError, recovery_of(s, st).distill_top_k() <= c.vocab_size(), where, ": distill_top_k ",
               recovery_of(s, st).distill_top_k(), " is more than the catalogue's ", c.vocab_size(), " items");
    if (st.kind() == pb::StageConfig::WIDTH_ATTENTION) {
      const bool heads = st.has_keep_heads() || st.has_keep_heads_fraction();
      const bool hidden = st.has_keep_hidden() || st.has_keep_hidden_fraction();
      PR_CHECK_T(ConfigError, heads || hidden, where, ": sets neither keep_heads nor keep_hidden");
      PR_CHECK_T(ConfigError, !st.has_keep_heads() || st.keep_heads() >= 0, where, ": keep_heads must not be negative");
      PR_CHECK_T(ConfigError, !st.has_keep_hidden() || st.keep_hidden() >= 1, where, ": keep_hidden must be at least 1");
      for (auto& L : *c.mutable_layers()) {
        if (heads) {
          PR_CHECK_T(ConfigError, !st.has_keep_heads() || st.keep_heads() <= L.num_heads(), where, ": keep_heads ",
                     st.keep_heads(), " exceeds a layer's ", L.num_heads(), " heads");
          L.set_num_heads(resolve_keep(st.has_keep_heads(), st.keep_heads(), st.has_keep_heads_fraction(),
                                       st.keep_heads_fraction(), L.num_heads(), 1));
          L.set_num_kv_heads(std::min(L.num_kv_heads(), L.num_heads()));
        }
      }
      if (hidden) {
        PR_CHECK_T(ConfigError, !st.has_keep_hidden() || st.keep_hidden() <= c.hidden(), where, ": keep_hidden ",
                   st.keep_hidden(), " exceeds the hidden width ", c.hidden());
        c.set_hidden(resolve_keep(st.has_keep_hidden(), st.keep_hidden(), st.has_keep_hidden_fraction(),
                                  st.keep_hidden_fraction(), c.hidden(), 1));
      }
    } else if (st.kind() == pb::StageConfig::WIDTH_MLP) {
      PR_CHECK_T(ConfigError, st.has_keep_mlp() || st.has_keep_mlp_fraction(), where, ": has no keep_mlp target");
      PR_CHECK_T(ConfigError, !st.has_keep_mlp() || st.keep_mlp() >= 0, where, ": keep_mlp must not be negative");
      for (auto& L : *c.mutable_layers()) {
        PR_CHECK_T(ConfigError, !st.has_keep_mlp() || st.keep_mlp() <= L.mlp_width(), where, ": keep_mlp ", st.keep_mlp(),
                   " exceeds a layer's ", L.mlp_width(), " MLP channels");
        L.set_mlp_width(resolve_keep(st.has_keep_mlp(), st.keep_mlp(), st.has_keep_mlp_fraction(), st.keep_mlp_fraction(),
                                     L.mlp_width(), 1));
      }
    } else {
      PR_CHECK_T(ConfigError, st.has_keep_layers() || st.has_keep_layers_fraction(), where, ": has no keep_layers target");
      const int L = c.layers_size();
      PR_CHECK_T(ConfigError, !st.has_keep_layers() || (st.keep_layers() >= 1 && st.keep_layers() <= L), where,
                 ": keep_layers ", st.keep_layers(), " is not in [1, ", L, "]");
      const int keep = resolve_keep(st.has_keep_layers(), st.keep_layers(), st.has_keep_layers_fraction(),
                                    st.keep_layers_fraction(), L, 1);
      PR_CHECK_T(ConfigError, keep >= 1, where, ": keeps no layer");
      while (c.layers_size() > keep) c.mutable_layers()->RemoveLast();
    }
    auto check_method = [&](const char* field, const std::string& value, std::initializer_list<const char*> allowed) {
      std::string names;
      for (const char* a : allowed) {
        if (value == a) return;
        names += (names.empty() ? "" : ", ") + std::string(a);
      }
      throw ConfigError(detail::str_cat(where, ": ", field, " must be one of ", names, "; got '", value, "'"));
    };
    check_method("head_score", st.head_score(), {"kl", "greedy_kl", "activation", "random"});
    check_method("head_mask", st.head_mask(), {"gate", "query_scale"});
    check_method("head_normalise", st.head_normalise(), {"sum", "minmax"});
    check_method("head_smoothing", st.head_smoothing(), {"current", "previous"});
    PR_CHECK_T(ConfigError, st.head_smoothing_alpha() >= 0 && st.head_smoothing_alpha() <= 1, where,
               ": head_smoothing_alpha must be in [0, 1], got ", st.head_smoothing_alpha());
    check_method("hidden_score", st.hidden_score(), {"act_grad", "top_logit", "magnitude", "random"});
    check_method("mlp_score", st.mlp_score(), {"topk", "topk_signed", "magnitude", "random"});
    check_method("layer_score", st.layer_score(), {"greedy", "block_influence", "random"});
  }
}


// Note [paired differences]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// Every model the schedule evaluates on the test split (the teacher, each stage, each
// control) keeps its per-user ranks beside its checkpoint, in the format `prunerec eval
// --per-user` writes (recsys::write_per_user, published atomically): <checkpoint without
// .prc>.per-user.tsv, the teacher's as DIR/teacher.per-user.tsv (its checkpoint lives
// outside DIR). The teacher and every control then carry vs_final: the paired bootstrap
// over users (Note [paired bootstrap]) of their NDCG@10 minus the final stage's, with
// Schedule.bootstrap_resamples resamples seeded from the schedule's seed. A resumed run
// whose file is missing (a run from before the files existed, or a deleted file)
// evaluates that checkpoint again; ranks are deterministic for a given model and thread
// count, so the file is the one the first run would have written. The report renders a
// difference whose interval contains 0 as "no difference".
std::string per_user_path_of(const std::string& checkpoint) {
  fs::path p(checkpoint);
  p.replace_extension();
  return p.string() + ".per-user.tsv";
}

// The per-user file of `checkpoint`, evaluated again when it is missing.
recsys::PerUser ensure_per_user(const std::string& per_user_path, const std::string& checkpoint, const PruneRun& run,
                                std::ostream& log) {
  if (!exists_agreed(per_user_path)) {
    log << "  per-user ranks: " << per_user_path << " is missing; evaluating " << checkpoint << " again\n";
    const auto model = load_net(checkpoint);
    recsys::EvalOptions eo;
    eo.protocol.split = "test";
    eo.max_len = static_cast<int>(model->config().max_len());
    recsys::write_per_user(per_user_path, recsys::evaluate_model(*model, *run.data, *run.split, eo), *run.data);
    world().barrier();  // Note [files decided on rank 0]
  }
  return recsys::read_per_user(per_user_path);
}

pb::PairedDifference paired_difference(const recsys::PerUser& final_users, const recsys::PerUser& row_users,
                                       const pb::Schedule& schedule) {
  const recsys::PairedResult p =
      recsys::compare_per_user(final_users, row_users, "NDCG@10", schedule.bootstrap_resamples(), schedule.seed());
  pb::PairedDifference d;
  d.set_metric(p.metric);
  d.set_n(p.n);
  d.set_mean_final(p.mean_a);
  d.set_mean_row(p.mean_b);
  d.set_diff(p.diff);
  d.set_lo(p.lo);
  d.set_hi(p.hi);
  d.set_p_value(p.p_value);
  d.set_resamples(p.resamples);
  d.set_seed(p.seed);
  return d;
}

std::string teacher_per_user_path(const PruneRun& run) {
  return (fs::path(run.out_dir) / "teacher.per-user.tsv").string();
}

// The final stage's per-user file of a finished run_schedule report.
recsys::PerUser final_per_user(const PruneRun& run, const pb::Report& report, std::ostream& log) {
  PR_CHECK_T(ConfigError, report.stages_size() >= 2, "paired differences: the run has no final stage yet");
  const std::string& ckpt = report.stages(report.stages_size() - 1).checkpoint();
  return ensure_per_user(per_user_path_of(ckpt), ckpt, run, log);
}

}  // namespace

pb::Schedule parse_schedule(const std::string& text, const std::string& source) {
  pb::Schedule s;
  nn::parse_text_proto(text, source, &s);
  PR_CHECK_T(ConfigError, s.stages_size() > 0, source, ": the schedule has no stages");
  PR_CHECK_T(ConfigError, s.bootstrap_resamples() >= 1, source, ": bootstrap_resamples must be at least 1, got ",
             s.bootstrap_resamples());
  for (int i = 0; i < s.stages_size(); ++i) {
    const auto& st = s.stages(i);
    PR_CHECK_T(ConfigError, st.has_kind(), source, ": stage ", i + 1, " has no kind");
    for (double f : {st.keep_heads_fraction(), st.keep_hidden_fraction(), st.keep_mlp_fraction(), st.keep_layers_fraction()})
      PR_CHECK_T(ConfigError, f >= 0 && f <= 1, source, ": stage ", i + 1, ": fractions must be in [0, 1], got ", f);
    const pb::RecoveryConfig r = recovery_of(s, st);
    PR_CHECK_T(ConfigError, r.alpha() >= 0 && r.alpha() <= 1 && r.temperature() > 0, source, ": stage ", i + 1,
               ": recovery alpha must be in [0, 1] and temperature positive");
    PR_CHECK_T(ConfigError, r.distill_top_k() >= 0, source, ": stage ", i + 1, ": distill_top_k must be 0 (the whole "
               "catalogue) or positive, got ", r.distill_top_k());
  }
  return s;
}

namespace {

// The run's informational lines (stage headers, estimator stabilities, control names) go
// to run.log when one is given; otherwise to stderr, unless the run is silent (--quiet),
// when they are dropped so that only the results reach the terminal. The null stream's
// buffer has no state, so it may be shared.
std::ostream& log_stream(const PruneRun& run) {
  if (run.log) return *run.log;
  if (run.progress == Progress::Mode::kSilent) {
    struct NullBuf : std::streambuf {
      int overflow(int c) override { return traits_type::not_eof(c); }
      std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
    };
    static NullBuf buf;
    static std::ostream null_stream(&buf);
    return null_stream;
  }
  return std::cerr;
}

}  // namespace

pb::Report run_schedule(const PruneRun& run) {
  PR_CHECK_T(ConfigError, run.data && run.split, "prune: data and split are required");
  std::ostream& log = log_stream(run);
  const auto t_run = Clock::now();
  // Everything that can be checked is checked before the output folder is touched.
  const recsys::Recommender teacher_rec = recsys::load_recommender(run.teacher_path);
  const nn::Transformer& teacher = *teacher_rec.net;
  PR_CHECK_T(ConfigError, teacher.vocab_size() == run.split->num_items, "prune: the teacher scores ", teacher.vocab_size(),
             " items, the data has ", run.split->num_items);
  check_schedule_fits(run.schedule, teacher.config());
  fs::create_directories(run.out_dir);
  const std::string schedule_text = nn::to_text_proto(run.schedule);

  pb::Report report;
  const std::string report_path = (fs::path(run.out_dir) / "report.json").string();
  if (exists_agreed(report_path) && !run.redo) {
    report = read_report(run.out_dir);
    PR_CHECK_T(ConfigError, report.schedule() == schedule_text, run.out_dir,
               " holds a run of a different schedule; use another --out or --redo");
  }
  report.set_data(run.data_description);
  report.set_teacher(run.teacher_path);
  report.set_schedule(schedule_text);
  report.set_seed(run.schedule.seed());
  report.set_threads(num_threads());
  report.set_command(run.command);
  report.set_calibration_sequences(run.schedule.calibration().sequences());
  {
    recsys::Protocol p;
    p.split = "test";
    p.split_kind = run.split->kind;
    report.set_protocol(recsys::describe(p));
  }

  const std::int64_t teacher_non_emb = teacher.non_embedding_parameters();
  // The live line of the work between trainings: measuring, calibration, scoring (Note
  // [progress of nested work]); the recoveries draw their own.
  Progress progress(log, "", 0, run.progress);
  RowOptions row_options;
  row_options.latency = run.latency;
  row_options.progress = &progress;
  if (report.stages_size() == 0) {
    log << "teacher: measuring " << run.teacher_path << "\n";
    RowOptions teacher_options = row_options;
    teacher_options.per_user_path = teacher_per_user_path(run);
    pb::StageRow row = measure_model(teacher, "teacher", "teacher", teacher_non_emb, *run.data, *run.split, teacher_options);
    row.set_checkpoint(run.teacher_path);
    const auto [positions, epochs] = trained_positions(run.teacher_path);
    row.set_trained_positions(positions);
    row.set_training_flops(training_flops(row.config(), positions, epochs, nullptr));
    row.set_path_training_flops(row.training_flops());
    row.set_path_training_flops_without_teacher(0);
    *report.add_stages() = row;
    write_report(run.out_dir, report);
  }

  const int max_len = teacher.config().max_len();
  Calibration calib = make_calibration(run.split->train, max_len, run.schedule.calibration());
  WorkMeter meter(progress, "");
  calib.meter = &meter;
  report.set_calibration_sequences(static_cast<std::int32_t>(calib.sequences));
  log << "calibration: " << plural(calib.sequences, "training sequence") << ", "
      << plural(calib.positions, "position") << "\n";

  std::string previous_path = run.teacher_path;
  TeacherCache original_cache(teacher);  // Note [teacher cache], shared by the stages
  double stages_seconds = 0;  // Note [schedule time estimate]
  int stages_timed = 0;
  for (int i = 0; i < run.schedule.stages_size(); ++i) {
    const pb::StageConfig& st = run.schedule.stages(i);
    const std::string name = stage_name(st, i);
    const fs::path dir(run.out_dir);
    const std::string pruned_path = (dir / (name + ".pruned.prc")).string();
    const std::string stage_path = (dir / (name + ".prc")).string();
    const bool done = report.stages_size() > i + 1 && report.stages(i + 1).name() == name && exists_agreed(stage_path);
    if (done) {
      log << name << ": done (" << stage_path << ")\n";
      previous_path = stage_path;
      continue;
    }
    while (report.stages_size() > i + 1) report.mutable_stages()->RemoveLast();  // later rows are stale
    const auto t_stage = Clock::now();
    // Note [schedule time estimate]: before each stage, the run's elapsed time and, once a
    // stage has run in this process, the remaining stages' time as this process's mean time
    // per stage so far times the stages left (this one included). Stages differ in cost (a
    // depth stage scores by removing layers, recoveries differ in epochs), so it is a rough
    // estimate, said as such; finished stages skipped on a resume do not count.
    log << name << " (stage " << i + 1 << "/" << run.schedule.stages_size() << "), elapsed "
        << format_duration(seconds_since(t_run));
    if (stages_timed > 0) {
      const double per_stage = stages_seconds / stages_timed;
      const int left = run.schedule.stages_size() - i;
      log << ", roughly " << format_duration(per_stage * left) << " left (rough estimate: " << plural(left, "stage")
          << " at the " << format_duration(per_stage) << " per stage so far)";
    }
    log << ":\n";

    // Prune: reuse the pruned model if an interrupted run left it.
    std::unique_ptr<nn::Transformer> model;
    pb::PrunePlan plan;
    pb::ScoreStability stability;
    double scoring_seconds = 0;
    const std::string plan_path = (dir / (name + ".plan.pbtxt")).string();
    if (exists_agreed(pruned_path) && exists_agreed(plan_path) && !run.redo) {
      model = load_net(pruned_path);
      nn::read_text_proto(plan_path, &plan);
      log << "  reusing " << pruned_path << "\n";
    } else {
      model = load_net(previous_path);
      const auto t_score = Clock::now();
      meter.set_prefix(name);
      StagePlan sp = plan_stage(*model, st, calib, run.schedule.seed() + static_cast<std::uint64_t>(i), log,
                                i < static_cast<int>(run.size_match.size()) ? &run.size_match[i] : nullptr);
      meter.clear();
      scoring_seconds = seconds_since(t_score);
      plan = apply_plan(*model, sp.plan);
      plan.set_estimator(estimator_name(st));
      stability = sp.stability;
      if (world().is_root()) {  // Note [rank 0 speaks] in apps/main.cc
        write_file_atomic((dir / (name + ".scores.json")).string(), sp.scores_json);
        write_file_atomic(plan_path, nn::to_text_proto(plan));
        recsys::save_recommender(pruned_path, *model, teacher_rec.catalog, {.metadata = run.metadata});
      }
      world().barrier();
    }
    log << "  pruned: " << format_grouped(model->non_embedding_parameters()) << " non-embedding parameters ("
        << format_percent(static_cast<double>(model->non_embedding_parameters()) / static_cast<double>(teacher_non_emb))
        << " of the teacher)\n";
    recsys::EvalOptions eo;
    eo.protocol.split = "test";
    eo.max_len = max_len;
    progress.restart(name + ": test evaluation before recovery", static_cast<std::int64_t>(run.split->test.size()));
    const recsys::EvalResult before = recsys::evaluate_model(*model, *run.data, *run.split, eo, &progress);
    progress.clear();

    // Recover.
    const pb::RecoveryConfig rc = recovery_of(run.schedule, st);
    recsys::TrainResult tr;
    std::unique_ptr<nn::Transformer> previous_teacher;
    double resumed_seconds = 0;  // recovery time spent by earlier, interrupted runs
    pb::ModelConfig distill_teacher_config = teacher.config();
    if (rc.enabled()) {
      const nn::Transformer* distill_teacher = &teacher;
      if (rc.teacher() == pb::RecoveryConfig::PREVIOUS && previous_path != run.teacher_path) {
        previous_teacher = load_net(previous_path);
        distill_teacher = previous_teacher.get();
        distill_teacher_config = previous_teacher->config();
      }
      recsys::TrainSpec spec;
      spec.data = run.data;
      spec.split = run.split;
      spec.config = recovery_train_config(run.schedule, st);
      spec.out_path = stage_path;
      spec.resume = !run.redo;
      spec.catalog = &teacher_rec.catalog;
      spec.metadata = run.metadata;
      spec.stop = run.stop;
      spec.phase = name + " recovery";
      // Note [teacher cache]: the teacher's states for every window, computed once.
      TeacherCache previous_cache(*distill_teacher);
      TeacherCache* cache = distill_teacher == &teacher ? &original_cache : &previous_cache;
      spec.loss = distillation_loss(*distill_teacher, rc.alpha(), rc.temperature(), cache, rc.distill_top_k());
      spec.on_start = distillation_on_start(cache, cache_mode(rc));
      spec.log = &log;
      spec.progress = run.progress;
      if (run.redo) fs::remove(stage_path + ".state");
      const auto t_train = Clock::now();
      tr = recsys::train_model(*model, spec);
      // A resumed recovery reports its training time over every run (tr.seconds), so the
      // stage's wall time counts the earlier runs' part too, not this call's alone.
      resumed_seconds = std::max(0.0, tr.seconds - seconds_since(t_train));
      model = load_net(stage_path);  // the best epoch
    } else {
      recsys::save_recommender(stage_path, *model, teacher_rec.catalog, {.metadata = run.metadata});
    }

    RowOptions stage_options = row_options;
    stage_options.per_user_path = per_user_path_of(stage_path);
    pb::StageRow row = measure_model(*model, name, kind_name(st.kind()), teacher_non_emb, *run.data, *run.split, stage_options);
    row.set_checkpoint(stage_path);
    *row.mutable_plan() = plan;
    row.set_estimator(plan.has_estimator() ? plan.estimator() : estimator_name(st));
    *row.mutable_stability() = stability;
    for (const auto& [k, v] : before.metrics) (*row.mutable_metrics_before_recovery())[k] = v;
    row.set_scoring_seconds(scoring_seconds);
    row.set_recovery_seconds(tr.seconds);
    row.set_recovery_epochs(tr.epochs_run);
    row.set_recovery_best_epoch(tr.best_epoch);
    for (double v : tr.loss_curve) row.add_loss_curve(v);
    for (double v : tr.valid_curve) row.add_valid_curve(v);
    if (rc.enabled()) {
      const auto [positions, epochs] = trained_positions(stage_path);
      row.set_trained_positions(positions);
      row.set_training_flops(training_flops(row.config(), positions, epochs, &distill_teacher_config));
    }
    const pb::StageRow& prev_row = report.stages(report.stages_size() - 1);
    row.set_path_training_flops(prev_row.path_training_flops() + row.training_flops());
    row.set_path_training_flops_without_teacher(prev_row.path_training_flops_without_teacher() + row.training_flops());
    row.set_wall_seconds(resumed_seconds + seconds_since(t_stage));
    *report.add_stages() = row;
    report.set_total_seconds(report.total_seconds() + row.wall_seconds());
    write_report(run.out_dir, report);
    log << "  " << name << ": test NDCG@10 " << format_fixed(row.metrics().at("NDCG@10"), 4) << " (before recovery "
        << format_fixed(before.metrics.at("NDCG@10"), 4) << "), took " << format_duration(row.wall_seconds()) << "\n";
    stages_seconds += seconds_since(t_stage);
    ++stages_timed;
    previous_path = stage_path;
  }

  // DIR/final.prc: the last stage's model.
  const std::string final_path = (fs::path(run.out_dir) / "final.prc").string();
  {
    const recsys::Recommender last = recsys::load_recommender(previous_path);
    recsys::save_recommender(final_path, *last.net, last.catalog, {.metadata = run.metadata});
  }
  // Note [paired differences]: the teacher against the final stage.
  if (report.stages_size() >= 2) {
    const recsys::PerUser teacher_users = ensure_per_user(teacher_per_user_path(run), run.teacher_path, run, log);
    *report.mutable_stages(0)->mutable_vs_final() =
        paired_difference(final_per_user(run, report, log), teacher_users, run.schedule);
  }
  write_report(run.out_dir, report);
  return report;
}

pb::StageRow run_control(const PruneRun& main_run, const pb::Report& main_report, const std::string& control) {
  std::ostream& log = log_stream(main_run);
  const std::string dir = (fs::path(main_run.out_dir) / "controls" / control).string();
  fs::create_directories(dir);
  int total_epochs = 0;
  for (const auto& st : main_run.schedule.stages())
    if (recovery_of(main_run.schedule, st).enabled()) total_epochs += recovery_train_config(main_run.schedule, st).epochs();
  const auto t0 = Clock::now();
  const recsys::Recommender teacher_rec = recsys::load_recommender(main_run.teacher_path);
  const std::int64_t teacher_non_emb = teacher_rec.net->non_embedding_parameters();
  Progress progress(log, "", 0, main_run.progress);  // Note [progress of nested work]
  RowOptions row_options;
  row_options.latency = main_run.latency;
  row_options.progress = &progress;

  if (control == "scratch" || control == "scratch-distill" || control == "scratch-flops") {
    // Both start from random weights in the final stage's config and train for as many
    // epochs as all recoveries together. "scratch" uses plain cross-entropy and the
    // teacher's own recipe (the fairest recipe for a model without a teacher: the
    // recoveries' recipe assumes one to distil from); "scratch-distill" uses the last
    // recovery's recipe, distillation from the original teacher included, so against the
    // final stage it isolates what the pruned weights are worth as a start.
    const bool distill = control == "scratch-distill";
    PR_CHECK_T(ConfigError, main_report.stages_size() >= 2, "control ", control, ": the main run has no final stage yet");
    const pb::ModelConfig final_config = main_report.stages(main_report.stages_size() - 1).config();
    const pb::StageConfig& last_stage = main_run.schedule.stages(main_run.schedule.stages_size() - 1);
    pb::TrainConfig tc = recovery_train_config(main_run.schedule, last_stage);
    std::string recipe_source = distill ? "the last recovery's recipe" : "the recovery recipe";
    if (const auto it = teacher_rec.manifest.metadata().find("recipe"); it != teacher_rec.manifest.metadata().end()) {
      pb::Recipe recipe;
      nn::parse_text_proto(it->second, main_run.teacher_path + " metadata recipe", &recipe);
      if (distill) {
        // A fresh model learns from noise at first; the recoveries' patience is meant for
        // warm starts, so the patience is the teacher's when that is longer.
        tc.set_patience(std::max(tc.patience(), recipe.train().patience()));
      } else {
        tc = recipe.train();
        recipe_source = "the teacher's recipe";
      }
    }
    tc.set_epochs(std::max(1, total_epochs));
    tc.set_seed(main_run.schedule.seed());
    std::string budget_note;
    if (control == "scratch-flops") {
      // As many epochs as give the training FLOPs of the main path's recoveries (Note
      // [training FLOPs]), at least one.
      const double budget = main_report.stages(main_report.stages_size() - 1).path_training_flops_without_teacher();
      const recsys::TrainBatcher batcher(main_run.split->train, static_cast<int>(final_config.max_len()),
                                         std::max(1, tc.batch_size()), tc.all_windows());
      const double per_epoch = training_flops(final_config, batcher.num_positions(), 1, nullptr);
      const int epochs = std::max(1, static_cast<int>(std::lround(budget / std::max(1.0, per_epoch))));
      tc.set_epochs(epochs);
      budget_note = detail::str_cat(" (", epochs, " epochs: the FLOPs of the pruned path's recoveries, ",
                                    format_count(budget), ")");
    }
    // The recipe grid (Schedule.scratch_grid): every combination, each from the same
    // random weights; the best validation NDCG@10 is the control.
    const pb::ScratchGrid& grid = main_run.schedule.scratch_grid();
    auto values = [](const google::protobuf::RepeatedField<double>& v, double recipe_value) {
      return v.empty() ? std::vector<double>{recipe_value} : std::vector<double>(v.begin(), v.end());
    };
    const bool searching = grid.weight_decay_size() + grid.dropout_size() + grid.lr_size() > 0;
    std::vector<pb::TrainConfig> recipes;
    for (double wd : values(grid.weight_decay(), tc.optimizer().weight_decay()))
      for (double dropout : values(grid.dropout(), tc.dropout()))
        for (double lr : values(grid.lr(), tc.optimizer().lr())) {
          pb::TrainConfig t = tc;
          t.mutable_optimizer()->set_weight_decay(wd);
          t.set_dropout(dropout);
          t.mutable_optimizer()->set_lr(lr);
          recipes.push_back(t);
        }
    TeacherCache cache(*teacher_rec.net);  // Note [teacher cache]
    const pb::RecoveryConfig rc = recovery_of(main_run.schedule, last_stage);
    std::vector<pb::GridPoint> points;
    std::vector<recsys::TrainResult> results;
    double resumed_seconds = 0;  // earlier runs' part of the training time
    for (const pb::TrainConfig& t : recipes) {
      nn::Transformer model(final_config, DType::f32, main_run.schedule.seed());
      recsys::TrainSpec spec;
      spec.data = main_run.data;
      spec.split = main_run.split;
      spec.config = t;
      const std::string point_name = detail::str_cat("wd", t.optimizer().weight_decay(), "-do", t.dropout(), "-lr",
                                                     t.optimizer().lr());
      spec.out_path = searching ? (fs::path(dir) / "grid" / (control + "-" + point_name + ".prc")).string()
                                : (fs::path(dir) / (control + ".prc")).string();
      if (searching) fs::create_directories(fs::path(dir) / "grid");
      spec.catalog = &teacher_rec.catalog;
      spec.metadata = main_run.metadata;
      spec.stop = main_run.stop;
      spec.phase = "control " + control + (searching ? " " + point_name : "");
      spec.log = &log;
      spec.progress = main_run.progress;
      spec.resume = !main_run.redo;
      if (main_run.redo) fs::remove(spec.out_path + ".state");
      if (distill) {
        spec.loss = distillation_loss(*teacher_rec.net, rc.alpha(), rc.temperature(), &cache, rc.distill_top_k());
        spec.on_start = distillation_on_start(&cache, cache_mode(rc));
      }
      const auto t_train = Clock::now();
      results.push_back(recsys::train_model(model, spec));
      resumed_seconds += std::max(0.0, results.back().seconds - seconds_since(t_train));
      pb::GridPoint gp;
      gp.set_weight_decay(t.optimizer().weight_decay());
      gp.set_dropout(t.dropout());
      gp.set_lr(t.optimizer().lr());
      gp.set_valid_ndcg10(results.back().best_valid_ndcg10);
      gp.set_best_epoch(results.back().best_epoch);
      gp.set_checkpoint(spec.out_path);
      points.push_back(gp);
    }
    std::size_t chosen = 0;
    for (std::size_t k = 1; k < points.size(); ++k)
      if (points[k].valid_ndcg10() > points[chosen].valid_ndcg10()) chosen = k;  // ties: the first listed
    points[chosen].set_chosen(true);
    const recsys::TrainResult& tr = results[chosen];
    double all_seconds = 0;
    for (const auto& r : results) all_seconds += r.seconds;
    auto best = load_net(points[chosen].checkpoint());
    RowOptions control_options = row_options;
    control_options.per_user_path = per_user_path_of(points[chosen].checkpoint());
    pb::StageRow row = measure_model(*best,
                                     distill                         ? "from scratch, distilled"
                                     : control == "scratch-flops" ? "from scratch, same FLOPs"
                                                                  : "from scratch",
                                     "control", teacher_non_emb,
                                     *main_run.data, *main_run.split, control_options);
    row.set_checkpoint(points[chosen].checkpoint());
    row.set_recovery_seconds(all_seconds);
    row.set_recovery_epochs(tr.epochs_run);
    row.set_recovery_best_epoch(tr.best_epoch);
    for (double v : tr.loss_curve) row.add_loss_curve(v);
    for (double v : tr.valid_curve) row.add_valid_curve(v);
    if (searching)
      for (const auto& gp : points) *row.add_grid() = gp;
    // Note [training FLOPs]: every recipe of the grid counts.
    const pb::ModelConfig teacher_config = teacher_rec.net->config();
    double flops = 0;
    std::int64_t all_positions = 0;
    for (const auto& gp : points) {
      const auto [positions, epochs] = trained_positions(gp.checkpoint());
      all_positions += positions;
      flops += training_flops(final_config, positions, epochs, distill ? &teacher_config : nullptr);
    }
    row.set_trained_positions(all_positions);
    row.set_training_flops(flops);
    row.set_path_training_flops(flops + (distill ? main_report.stages(0).training_flops() : 0.0));
    row.set_path_training_flops_without_teacher(flops);
    const pb::TrainConfig& ct = recipes[chosen];
    const std::string grid_note =
        searching ? detail::str_cat("; recipe chosen on validation NDCG@10 among ", points.size(), " (weight decay ",
                                    ct.optimizer().weight_decay(), ", dropout ", ct.dropout(), ", lr ",
                                    ct.optimizer().lr(), ")")
                  : std::string();
    if (distill) {
      row.set_note(detail::str_cat("final-stage config trained from scratch by distillation from the teacher (alpha ",
                                   rc.alpha(), ", T ", rc.temperature(), ") with ", recipe_source, " for ", tc.epochs(),
                                   " epochs (all recoveries together), patience ", tc.patience(), grid_note));
    } else {
      row.set_note(detail::str_cat("final-stage config trained from scratch with cross-entropy and ", recipe_source,
                                   " for ", tc.epochs(),
                                   budget_note.empty() ? " epochs (all recoveries together)" : " epochs" + budget_note,
                                   grid_note));
    }
    row.set_wall_seconds(resumed_seconds + seconds_since(t0));
    *row.mutable_vs_final() = paired_difference(final_per_user(main_run, main_report, log),
                                                recsys::read_per_user(control_options.per_user_path), main_run.schedule);
    return row;
  }

  PruneRun sub = main_run;
  sub.out_dir = dir;
  sub.command = main_run.command + "  # control " + control;
  std::string note;
  if (control == "random") {
    for (auto& st : *sub.schedule.mutable_stages()) {
      st.set_head_score("random");
      st.set_hidden_score("random");
      st.set_mlp_score("random");
      st.set_layer_score("random");
    }
    for (int i = 1; i < main_report.stages_size(); ++i) sub.size_match.push_back(main_report.stages(i).plan());
    note = "the same schedule with random importance scores, matched in size to the real plans (KV heads per layer, "
           "widths, layers)";
  } else if (control == "no-recovery") {
    const int n = sub.schedule.stages_size();
    for (int i = 0; i + 1 < n; ++i) sub.schedule.mutable_stages(i)->mutable_recovery()->set_enabled(false);
    pb::StageConfig& last = *sub.schedule.mutable_stages(n - 1);
    last.mutable_recovery()->set_enabled(true);
    last.mutable_recovery()->mutable_train()->set_epochs(std::max(1, total_epochs));
    note = detail::str_cat("no recovery between stages; the last stage recovers for ", total_epochs, " epochs");
  } else {
    std::string known;
    for (const std::string& n : control_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown control '" + control + "' (" + known + ")");
  }
  // The teacher is the main run's: reuse its measured row instead of measuring again.
  if (!exists_agreed(fs::path(dir) / "report.json") && main_report.stages_size() > 0) {
    pb::Report seed_report;
    seed_report.set_schedule(nn::to_text_proto(sub.schedule));
    *seed_report.add_stages() = main_report.stages(0);
    write_report(dir, seed_report);
  }
  // The teacher's per-user ranks are the main run's (Note [paired differences]).
  if (const std::string t = teacher_per_user_path(main_run); exists_agreed(t) && !exists_agreed(teacher_per_user_path(sub))) {
    if (world().is_root()) fs::copy_file(t, teacher_per_user_path(sub));
    world().barrier();  // Note [files decided on rank 0]
  }
  const pb::Report r = run_schedule(sub);
  pb::StageRow row = r.stages(r.stages_size() - 1);
  // Note [paired differences]: the sub-run's last stage kept its per-user ranks.
  *row.mutable_vs_final() =
      paired_difference(final_per_user(main_run, main_report, log), final_per_user(sub, r, log), main_run.schedule);
  row.set_name(control == "random" ? "random scores" : "no recovery");
  row.set_kind("control");
  row.set_checkpoint((fs::path(dir) / "final.prc").string());
  row.set_note(note);
  // Its stages' wall times, each kept in the control's report across resumed runs.
  double wall = 0;
  for (int i = 1; i < r.stages_size(); ++i) wall += r.stages(i).wall_seconds();
  row.set_wall_seconds(wall);
  return row;
}

void add_seed_stats(pb::Report& first, const std::vector<pb::Report>& all) {
  first.clear_student_seeds();
  first.clear_seed_stats();
  for (const auto& r : all) first.add_student_seeds(r.seed());
  auto rows_of = [](const pb::Report& r) {
    std::vector<const pb::StageRow*> rows;
    for (const auto& row : r.stages()) rows.push_back(&row);
    for (const auto& row : r.controls()) rows.push_back(&row);
    return rows;
  };
  for (const pb::StageRow* row : rows_of(first)) {
    for (const char* metric : {"NDCG@10", "HR@10", "NDCG@20", "HR@20"}) {
      pb::SeedStat st;
      st.set_row(row->name());
      st.set_metric(metric);
      for (const auto& r : all)
        for (const pb::StageRow* other : rows_of(r))
          if (other->name() == row->name() && other->metrics().count(metric)) {
            st.add_values(other->metrics().at(metric));
            if (other->has_vs_final() && other->vs_final().metric() == metric) *st.add_vs_final() = other->vs_final();
            break;
          }
      if (st.values_size() == 0) continue;
      const double n = st.values_size();
      double mean = 0, ss = 0;
      for (double v : st.values()) mean += v / n;
      for (double v : st.values()) ss += (v - mean) * (v - mean);
      st.set_mean(mean);
      st.set_sd(n > 1 ? std::sqrt(ss / (n - 1)) : 0.0);
      *first.add_seed_stats() = st;
    }
  }
}

pb::Report run_with_seeds(const PruneRun& run, int seeds, const std::vector<std::string>& controls) {
  PR_CHECK_T(ConfigError, seeds >= 1, "prune: --seeds must be at least 1, got ", seeds);
  std::ostream& log = log_stream(run);
  std::vector<pb::Report> reports;
  for (int k = 0; k < seeds; ++k) {
    PruneRun r = run;
    r.schedule.set_seed(run.schedule.seed() + static_cast<std::uint64_t>(k));
    if (k > 0) r.out_dir = (fs::path(run.out_dir) / "seeds" / detail::str_cat("seed-", r.schedule.seed())).string();
    log << "student seed " << r.schedule.seed() << " (" << k + 1 << " of " << seeds << "): " << r.out_dir << "\n";
    pb::Report report = run_schedule(r);
    report.clear_controls();
    for (const auto& name : controls) {
      log << "control " << name << " (seed " << r.schedule.seed() << "):\n";
      *report.add_controls() = run_control(r, report, name);
      write_report(r.out_dir, report);
    }
    reports.push_back(report);
  }
  pb::Report first = reports.front();
  add_seed_stats(first, reports);
  write_report(run.out_dir, first);
  return first;
}

std::vector<pb::BudgetPoint> run_budget_curve(const PruneRun& run, const std::vector<int>& budgets) {
  PR_CHECK_T(ConfigError, !budgets.empty(), "budget curve: no budgets");
  std::ostream& log = log_stream(run);
  std::vector<pb::BudgetPoint> points;
  for (int b : budgets) {
    PR_CHECK_T(ConfigError, b >= 1, "budget curve: budgets must be at least 1 epoch, got ", b);
    PruneRun r = run;
    r.out_dir = (fs::path(run.out_dir) / "budget" / detail::str_cat("epochs-", b)).string();
    r.command = run.command + detail::str_cat("  # budget ", b, " epochs per recovery");
    for (auto& st : *r.schedule.mutable_stages()) st.mutable_recovery()->mutable_train()->set_epochs(b);
    log << "budget " << b << " epochs per recovery: " << r.out_dir << "\n";
    pb::Report report = run_schedule(r);
    auto add = [&](const pb::StageRow& row, const std::string& path, int total_epochs) {
      pb::BudgetPoint p;
      p.set_epochs(b);
      p.set_path(path);
      p.set_total_epochs(total_epochs);
      for (const auto& [k, v] : row.metrics()) (*p.mutable_metrics())[k] = v;
      for (const auto& [k, v] : row.valid_metrics()) (*p.mutable_valid_metrics())[k] = v;
      p.set_training_flops(row.path_training_flops_without_teacher());
      p.set_checkpoint(row.checkpoint());
      points.push_back(p);
    };
    int total = 0;
    for (const auto& st : r.schedule.stages())
      if (recovery_of(r.schedule, st).enabled()) total += recovery_train_config(r.schedule, st).epochs();
    add(report.stages(report.stages_size() - 1), "pruned", total);
    report.clear_controls();
    for (const char* control : {"scratch-distill", "scratch"}) {
      log << "budget " << b << ": control " << control << "\n";
      *report.add_controls() = run_control(r, report, control);
      write_report(r.out_dir, report);
      add(report.controls(report.controls_size() - 1), control, std::max(1, total));
    }
  }
  // The main run's report holds the curve (write_report draws budget_curve.svg).
  pb::Report main;
  if (exists_agreed(fs::path(run.out_dir) / "report.json"))
    main = read_report(run.out_dir);
  else
    main.set_schedule(nn::to_text_proto(run.schedule));  // so that the main run can start here later
  main.clear_budget_curve();
  for (const auto& p : points) *main.add_budget_curve() = p;
  write_report(run.out_dir, main);
  return points;
}

std::vector<OneShotStage> prune_one_shot(nn::Transformer& model, const pb::Schedule& schedule, const Calibration& calib,
                                         std::ostream& log) {
  check_schedule_fits(schedule, model.config());
  std::vector<OneShotStage> out;
  for (int i = 0; i < schedule.stages_size(); ++i) {
    const pb::StageConfig& st = schedule.stages(i);
    OneShotStage stage;
    stage.name = stage_name(st, i);
    log << stage.name << " (stage " << i + 1 << "/" << schedule.stages_size() << "):\n";
    stage.loss_before = calibration_loss(model, calib);
    if (calib.meter) calib.meter->set_prefix(stage.name);
    StagePlan sp = plan_stage(model, st, calib, schedule.seed() + static_cast<std::uint64_t>(i), log, nullptr);
    stage.plan = apply_plan(model, sp.plan);
    stage.plan.set_estimator(estimator_name(st));
    stage.stability = sp.stability;
    stage.scores_json = std::move(sp.scores_json);
    stage.loss_after = calibration_loss(model, calib);
    stage.non_embedding_parameters = model.non_embedding_parameters();
    log << "  cut: " << format_grouped(stage.non_embedding_parameters) << " non-embedding parameters; calibration loss "
        << format_fixed(stage.loss_before, 4) << " -> " << format_fixed(stage.loss_after, 4) << "\n";
    out.push_back(std::move(stage));
  }
  return out;
}

}  // namespace prunerec::prune
