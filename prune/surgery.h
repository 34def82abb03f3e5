// Structural surgery: applying a pruning plan to a model (DESIGN.md section 4).
//
//   unit removed            rows sliced                     columns sliced
//   query head h, layer l   q_proj rows (and bias) of h     o_proj columns of h
//   KV head g, layer l      k_proj, v_proj rows (and bias)  -
//   MLP channel j, layer l  gate, up row j                  down column j
//   hidden channel c        o_proj, down rows c             q/k/v/gate/up columns c, embedding
//                                                            column c, every RMSNorm gain c
//   layer l                 the layer is removed and later layers renumbered
//
// plus the head gates, channel gates and kv_map of the kept units. Note [surgery]: the
// plan is normalised and checked against the model first, so a bad plan throws
// ConfigError and leaves the model untouched; then every parameter and its AdamW moments
// are sliced with the same indices (tensors are swapped in their slots, so every holder
// sees them); then check_invariants() runs. A plan that keeps everything is the identity,
// bit for bit.
//
// A layer keeps exactly the KV heads its kept query heads read, renumbered in order, and
// kv_map is remapped, so grouped-query attention stays valid with any choice of heads.
#pragma once

#include <vector>

#include "nn/optim.h"
#include "nn/transformer.h"
#include "proto/prune.pb.h"

namespace prunerec::prune {

// The plan with every index explicit (keep_all_* expanded, KV heads derived), checked
// against the model. ConfigError names the layer and unit that does not fit.
pb::PrunePlan normalize_plan(const pb::PrunePlan& plan, const nn::Transformer& model);

// Applies the plan; optimizer moments (when given) are sliced and renamed with the
// parameters. Returns the normalised plan: the index map from the new model's units to
// the input model's.
pb::PrunePlan apply_plan(nn::Transformer& model, const pb::PrunePlan& plan, nn::AdamW* optimizer = nullptr);

// A plan that keeps everything of `model`.
pb::PrunePlan identity_plan(const nn::Transformer& model);

// Masked ("soft") pruning: zeroes the head gates and MLP-channel gates of the units the
// plan removes and returns the ForwardOptions skip flags for removed layers, so the
// unsliced model computes what the sliced one would. Hidden channels cannot be masked
// under RMSNorm (removing a channel changes the norm's mean over channels, a zero gate
// does not), so a plan that removes hidden channels is refused (ConfigError).
nn::ForwardOptions apply_mask(nn::Transformer& model, const pb::PrunePlan& plan);

}  // namespace prunerec::prune
