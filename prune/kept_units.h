// Which teacher units survive each stage of a schedule: the stage plans composed back to
// the teacher's indices.
//
//   const auto trace = trace_units_to_teacher(report);   // [stage] -> units in teacher indices
//   const auto kept = kept_units_from_trace(trace);      // [teacher layer] -> last stage per unit
//
// Note [stage indices]: stage 0 is the teacher (report.stages(0)), stage k >= 1 the k-th
// pruning stage (report.stages(k)). Each stage's normalised plan indexes the units of the
// previous stage's model, and its kept_layers renumber the layers, so naming a unit of the
// final model in teacher terms composes every plan from stage 1 on
// (trace_units_to_teacher).
#pragma once

#include <vector>

#include "proto/model.pb.h"
#include "proto/report.pb.h"

namespace prunerec::prune {

// The layers of a config, expanding the num_layers x layer_defaults shorthand.
std::vector<pb::LayerConfig> expand_layers(const pb::ModelConfig& c);

// The units of one stage's model, each named by its index in the teacher.
struct TeacherIndexedUnits {
  std::vector<int> layers;              // [layer] -> teacher layer
  std::vector<std::vector<int>> heads;  // [layer][query head] -> teacher query head (of teacher layer layers[layer])
  std::vector<std::vector<int>> mlp;    // [layer][MLP channel] -> teacher MLP channel
};

// Composes the plans of stages 1, 2, ... (Note [stage indices]): element k lists the units
// of stage k's model in teacher indices; element 0 is the teacher itself. Stops before the
// first stage that has no plan (a stage still running). The teacher's sizes come from
// stages(0).config. ConfigError (naming the stage and layer) when there is no teacher
// config, a plan has the wrong number of layer entries, an index is out of range or not
// ascending, or a stage's config disagrees with what its plan leaves.
std::vector<TeacherIndexedUnits> trace_units_to_teacher(const pb::Report& r);

// One teacher layer's fate: for each unit, the last stage whose model still contains it
// (0 = teacher only, i.e. removed by stage 1; stages_composed = kept to the end).
struct KeptUnitsLayer {
  int layer_last_stage = 0;          // the layer itself
  std::vector<int> head_last_stage;  // [teacher query head]
  std::vector<int> mlp_last_stage;   // [teacher MLP channel]
};

// [teacher layer], from a trace of trace_units_to_teacher. A unit inside a layer that is
// later removed ends with the layer. The number of composed stages is trace.size() - 1.
std::vector<KeptUnitsLayer> kept_units_from_trace(const std::vector<TeacherIndexedUnits>& trace);

// kept_units_from_trace(trace_units_to_teacher(r)) (same errors).
std::vector<KeptUnitsLayer> compose_kept_units(const pb::Report& r);

}  // namespace prunerec::prune
