#include "prune/schedule_parts.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>

#include "base/atomic_file.h"
#include "base/comm.h"
#include "base/format.h"
#include "base/json.h"
#include "nn/checkpoint.h"
#include "nn/checkpoint_file.h"
#include "nn/text_proto.h"
#include "prune/report.h"
#include "prune/schedule.h"
#include "prune/surgery.h"
#include "recsys/eval/paired.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"

namespace prunerec::prune {
namespace {

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

namespace parts {

namespace fs = std::filesystem;

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

// The run's informational lines (stage headers, estimator stabilities, control names) go
// to `log` when one is given; otherwise to stderr, unless the run is silent (--quiet),
// when they are dropped so that only the results reach the terminal. The null stream's
// buffer has no state, so it may be shared.
std::ostream& log_stream(std::ostream* log, Progress::Mode mode) {
  if (log) return *log;
  if (mode == Progress::Mode::kSilent) {
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

StageFiles stage_files(const std::string& out_dir, const std::string& name) {
  const fs::path dir(out_dir);
  return {.pruned = (dir / (name + ".pruned.prc")).string(),
          .model = (dir / (name + ".prc")).string(),
          .plan = (dir / (name + ".plan.pbtxt")).string(),
          .scores = (dir / (name + ".scores.json")).string()};
}

// Note [schedule time estimate]: before each stage, the run's elapsed time and, once a
// stage has run in this process, the remaining stages' time as this process's mean time
// per stage so far times the stages left (this one included). Stages differ in cost (a
// depth stage scores by removing layers, recoveries differ in epochs), so it is a rough
// estimate, said as such; finished stages skipped on a resume do not count.
void log_stage_start(std::ostream& log, const std::string& name, int index, int stages, double elapsed,
                     double seconds_so_far, int stages_timed) {
  log << name << " (stage " << index + 1 << "/" << stages << "), elapsed " << format_duration(elapsed);
  if (stages_timed > 0) {
    const double per_stage = seconds_so_far / stages_timed;
    const int left = stages - index;
    log << ", roughly " << format_duration(per_stage * left) << " left (rough estimate: " << plural(left, "stage")
        << " at the " << format_duration(per_stage) << " per stage so far)";
  }
  log << ":\n";
}

PrunedStage prune_or_reuse(const StageFiles& files, const std::string& previous_path, const pb::Schedule& schedule,
                           int index, const Calibration& calib, WorkMeter& meter, bool redo,
                           const pb::PrunePlan* match, const std::string& name,
                           const std::function<void(const std::string&, const nn::Transformer&)>& save,
                           std::int64_t teacher_non_embedding, std::ostream& log) {
  const pb::StageConfig& st = schedule.stages(index);
  PrunedStage out;
  if (exists_agreed(files.pruned) && exists_agreed(files.plan) && !redo) {
    out.model = load_net(files.pruned);
    nn::read_text_proto(files.plan, &out.plan);
    log << "  reusing " << files.pruned << "\n";
  } else {
    out.model = load_net(previous_path);
    const auto t_score = Clock::now();
    meter.set_prefix(name);
    StagePlan sp = plan_stage(*out.model, st, calib, schedule.seed() + static_cast<std::uint64_t>(index), log, match);
    meter.clear();
    out.scoring_seconds = seconds_since(t_score);
    out.plan = apply_plan(*out.model, sp.plan);
    out.plan.set_estimator(estimator_name(st));
    out.stability = sp.stability;
    if (world().is_root()) {  // Note [rank 0 speaks] in apps/main.cc
      write_file_atomic(files.scores, sp.scores_json);
      write_file_atomic(files.plan, nn::to_text_proto(out.plan));
      save(files.pruned, *out.model);
    }
    world().barrier();
  }
  const auto kept = out.model->non_embedding_parameters();
  log << "  pruned: " << format_grouped(kept) << " non-embedding parameters ("
      << format_percent(static_cast<double>(kept) / static_cast<double>(teacher_non_embedding)) << " of the teacher)\n";
  return out;
}

bool stage_done(const pb::Report& report, int index, const std::string& name, const StageFiles& files) {
  return report.stages_size() > index + 1 && report.stages(index + 1).name() == name && exists_agreed(files.model);
}

std::string per_user_path_of(const std::string& checkpoint) {
  fs::path p(checkpoint);
  p.replace_extension();
  return p.string() + ".per-user.tsv";
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

pb::Report open_report(const std::string& out_dir, const pb::Schedule& schedule, bool redo, const std::string& data,
                       const std::string& teacher, const std::string& command) {
  fs::create_directories(out_dir);
  const std::string schedule_text = nn::to_text_proto(schedule);
  pb::Report report;
  if (exists_agreed(fs::path(out_dir) / "report.json") && !redo) {
    report = read_report(out_dir);
    PR_CHECK_T(ConfigError, report.schedule() == schedule_text, out_dir,
               " holds a run of a different schedule; use another --out or --redo");
  }
  report.set_data(data);
  report.set_teacher(teacher);
  report.set_schedule(schedule_text);
  report.set_seed(schedule.seed());
  report.set_threads(num_threads());
  report.set_command(command);
  report.set_calibration_sequences(schedule.calibration().sequences());
  return report;
}

void add_stage_row(pb::Report& report, const pb::StageRow& row, const std::string& out_dir, std::ostream& log) {
  *report.add_stages() = row;
  report.set_total_seconds(report.total_seconds() + row.wall_seconds());
  write_report(out_dir, report);
  log << "  " << row.name() << ": test NDCG@10 " << format_fixed(row.metrics().at("NDCG@10"), 4)
      << " (before recovery " << format_fixed(row.metrics_before_recovery().at("NDCG@10"), 4) << "), took "
      << format_duration(row.wall_seconds()) << "\n";
}

void fill_stage_row(pb::StageRow& row, const PrunedStage& pruned, const pb::StageConfig& st,
                    const std::map<std::string, double>& metrics_before_recovery) {
  *row.mutable_plan() = pruned.plan;
  row.set_estimator(pruned.plan.has_estimator() ? pruned.plan.estimator() : estimator_name(st));
  *row.mutable_stability() = pruned.stability;
  for (const auto& [k, v] : metrics_before_recovery) (*row.mutable_metrics_before_recovery())[k] = v;
  row.set_scoring_seconds(pruned.scoring_seconds);
}

}  // namespace parts
}  // namespace prunerec::prune
