// One ledger row per model: parameters, FLOPs per recommendation, measured latency of a
// top-10 recommendation (one user, and a batch), NDCG/HR on validation and test.
#pragma once

#include <functional>
#include <string>

#include "nn/transformer.h"
#include "proto/report.pb.h"
#include "recsys/data/split.h"
#include "recsys/progress.h"

namespace prunerec::prune {

// Multiply-adds count 2 FLOPs. For one user with a history of `history` items, the work
// recsys::next_item_scores does: every layer but the last at every position (projections,
// MLP, attention over the causal prefix); the last layer's keys and values at every
// position but its query, attention, o_proj and MLP at the last one (Note [last-position
// inference]); the output layer at the last position.
double flops_per_recommendation(const pb::ModelConfig& config, int history);

struct LatencyOptions {
  int batch_size = 256;
  int k = 10;
  double min_seconds = 0.5;  // per measurement: repeat until this much time has passed
  int min_repetitions = 5;
};
// Median (Note [median] in recsys/measure.h) wall time of next-item scoring + top-k for one history of max_len real items and
// for a batch of them (histories from the test examples, longest first).
pb::Latency measure_latency(const nn::Transformer& model, const recsys::SequenceDataset& data,
                            const recsys::DataSplit& split, const LatencyOptions& options = {});

// The median times (Note [median] in recsys/measure.h) of `one_user` and of `batch` (for
// batch_size users), each repeated as `options` says, as a Latency. Title mode times
// generation with it (prune/title_schedule.h).
pb::Latency time_latency(const std::function<void()>& one_user, const std::function<void()>& batch,
                         std::int32_t batch_size, const LatencyOptions& options);

// A row's name, kind, parameter counts (non-embedding also as a share of the teacher's)
// and config: what every ledger row holds whatever the mode.
pb::StageRow size_row(const nn::Transformer& model, const std::string& name, const std::string& kind,
                      std::int64_t teacher_non_embedding);

struct RowOptions {
  bool latency = true;
  int eval_batch_size = 256;
  // When set, the test split's per-user ranks are written there (recsys::write_per_user).
  std::string per_user_path;
  // The caller's live line, restarted for each evaluation and the latency timing (Note
  // [progress of nested work]); none by default.
  Progress* progress = nullptr;
};
// Parameters, FLOPs, latency and metrics (valid and test, full ranking, history excluded).
pb::StageRow measure_model(const nn::Transformer& model, const std::string& name, const std::string& kind,
                           std::int64_t teacher_non_embedding, const recsys::SequenceDataset& data,
                           const recsys::DataSplit& split, const RowOptions& options = {});

}  // namespace prunerec::prune
