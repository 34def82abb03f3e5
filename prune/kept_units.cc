// Stage plans composed back to the teacher (see kept_units.h).
#include "prune/kept_units.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "base/error.h"

namespace prunerec::prune {
namespace {

// Checks that `kept` is ascending and inside [0, count) and maps it through `names`
// (the teacher indices of the current units).
std::vector<int> map_kept(const google::protobuf::RepeatedField<std::int32_t>& kept, const std::vector<int>& names,
                          const std::string& where) {
  std::vector<int> out;
  int previous = -1;
  for (const int i : kept) {
    PR_CHECK_T(ConfigError, i >= 0 && i < static_cast<int>(names.size()), where, ": index ", i,
               " out of range (the model has ", names.size(), ")");
    PR_CHECK_T(ConfigError, i > previous, where, ": indices must be ascending and distinct, got ", i, " after ",
               previous);
    previous = i;
    out.push_back(names[static_cast<std::size_t>(i)]);
  }
  return out;
}

std::string stage_label(const pb::Report& r, int k) {
  return "report: stage " + std::to_string(k) + " '" + r.stages(k).name() + "'";
}

}  // namespace

std::vector<pb::LayerConfig> expand_layers(const pb::ModelConfig& c) {
  if (c.layers_size() > 0) return {c.layers().begin(), c.layers().end()};
  return std::vector<pb::LayerConfig>(static_cast<std::size_t>(std::max(0, c.num_layers())), c.layer_defaults());
}

std::vector<TeacherIndexedUnits> trace_units_to_teacher(const pb::Report& r) {
  PR_CHECK_T(ConfigError, r.stages_size() > 0, "report: no stages, so no teacher to trace units to");
  PR_CHECK_T(ConfigError, r.stages(0).has_config(), "report: the teacher row '", r.stages(0).name(),
             "' has no model config, so units cannot be traced to it");
  std::vector<TeacherIndexedUnits> trace;
  TeacherIndexedUnits teacher;
  const std::vector<pb::LayerConfig> teacher_layers = expand_layers(r.stages(0).config());
  for (std::size_t l = 0; l < teacher_layers.size(); ++l) {
    teacher.layers.push_back(static_cast<int>(l));
    teacher.heads.emplace_back(static_cast<std::size_t>(std::max(0, teacher_layers[l].num_heads())));
    std::iota(teacher.heads.back().begin(), teacher.heads.back().end(), 0);
    teacher.mlp.emplace_back(static_cast<std::size_t>(std::max(0, teacher_layers[l].mlp_width())));
    std::iota(teacher.mlp.back().begin(), teacher.mlp.back().end(), 0);
  }
  trace.push_back(std::move(teacher));

  for (int k = 1; k < r.stages_size(); ++k) {
    const pb::StageRow& row = r.stages(k);
    if (!row.has_plan()) break;  // a stage still running: trace what is known
    const pb::PrunePlan& plan = row.plan();
    const TeacherIndexedUnits& prev = trace.back();
    const int L = static_cast<int>(prev.layers.size());
    const std::string where = stage_label(r, k);
    PR_CHECK_T(ConfigError, plan.layers_size() == 0 || plan.layers_size() == L, where, ": the plan has ",
               plan.layers_size(), " layer entries but the previous stage's model has ", L, " layers");
    std::vector<int> layer_positions(static_cast<std::size_t>(L));
    std::iota(layer_positions.begin(), layer_positions.end(), 0);
    const std::vector<int> kept_layers = plan.keep_all_layers()
                                             ? layer_positions
                                             : map_kept(plan.kept_layers(), layer_positions, where + ": kept_layers");

    // Every layer entry is checked, also those of removed layers.
    std::vector<std::vector<int>> heads(static_cast<std::size_t>(L)), mlp(static_cast<std::size_t>(L));
    for (int l = 0; l < L; ++l) {
      const auto ul = static_cast<std::size_t>(l);
      const pb::LayerPlan lp = plan.layers_size() > 0 ? plan.layers(l) : pb::LayerPlan();
      const std::string at = where + ": layer " + std::to_string(l);
      heads[ul] = lp.keep_all_heads() ? prev.heads[ul] : map_kept(lp.kept_heads(), prev.heads[ul], at + " query heads");
      mlp[ul] = lp.keep_all_mlp() ? prev.mlp[ul] : map_kept(lp.kept_mlp(), prev.mlp[ul], at + " MLP channels");
    }
    TeacherIndexedUnits next;
    for (const int l : kept_layers) {
      const auto ul = static_cast<std::size_t>(l);
      next.layers.push_back(prev.layers[ul]);
      next.heads.push_back(std::move(heads[ul]));
      next.mlp.push_back(std::move(mlp[ul]));
    }
    // The stage's own config must describe what its plan left.
    if (row.has_config()) {
      const std::vector<pb::LayerConfig> layers = expand_layers(row.config());
      PR_CHECK_T(ConfigError, layers.size() == next.layers.size(), where, ": the plan leaves ", next.layers.size(),
                 " layers but the stage's config has ", layers.size());
      for (std::size_t l = 0; l < layers.size(); ++l) {
        PR_CHECK_T(ConfigError,
                   !layers[l].has_num_heads() || layers[l].num_heads() == static_cast<int>(next.heads[l].size()), where,
                   ": the plan leaves layer ", l, " with ", next.heads[l].size(),
                   " query heads but the stage's config has ", layers[l].num_heads());
        PR_CHECK_T(ConfigError,
                   !layers[l].has_mlp_width() || layers[l].mlp_width() == static_cast<int>(next.mlp[l].size()), where,
                   ": the plan leaves layer ", l, " with ", next.mlp[l].size(),
                   " MLP channels but the stage's config has ", layers[l].mlp_width());
      }
    }
    trace.push_back(std::move(next));
  }
  return trace;
}

std::vector<KeptUnitsLayer> compose_kept_units(const pb::Report& r) {
  return kept_units_from_trace(trace_units_to_teacher(r));
}

std::vector<KeptUnitsLayer> kept_units_from_trace(const std::vector<TeacherIndexedUnits>& trace) {
  std::vector<KeptUnitsLayer> kept;
  if (trace.empty()) return kept;
  const TeacherIndexedUnits& teacher = trace.front();
  kept.resize(teacher.layers.size());
  for (std::size_t l = 0; l < teacher.layers.size(); ++l) {
    kept[l].head_last_stage.assign(teacher.heads[l].size(), 0);
    kept[l].mlp_last_stage.assign(teacher.mlp[l].size(), 0);
  }
  for (std::size_t k = 0; k < trace.size(); ++k) {
    const TeacherIndexedUnits& s = trace[k];
    for (std::size_t l = 0; l < s.layers.size(); ++l) {
      KeptUnitsLayer& t = kept[static_cast<std::size_t>(s.layers[l])];
      t.layer_last_stage = static_cast<int>(k);
      for (const int h : s.heads[l]) t.head_last_stage[static_cast<std::size_t>(h)] = static_cast<int>(k);
      for (const int j : s.mlp[l]) t.mlp_last_stage[static_cast<std::size_t>(j)] = static_cast<int>(k);
    }
  }
  return kept;
}

}  // namespace prunerec::prune
