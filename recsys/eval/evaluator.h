// Evaluation: ranks every held-out next item against the catalogue (or sampled
// negatives) and averages NDCG/HR/MRR at 1, 5, 10, 20. The evaluator is separate from the
// model: it takes a scorer, so the transformer and the popularity baseline are measured by
// the same code under the same protocol.
//
//   EvalResult r = evaluate_model(net, data, split, {.protocol = {.split = "test"}, .max_len = 50});
//   std::cout << describe(r.protocol) << "\n" << to_json(r);
#pragma once

#include <functional>

#include "nn/transformer.h"
#include "recsys/batching.h"
#include "recsys/data/split.h"
#include "recsys/eval/metrics.h"
#include "recsys/progress.h"

namespace prunerec::recsys {

struct EvalOptions {
  Protocol protocol;       // protocol.split selects valid or test; split_kind is filled in
  int batch_size = 256;    // histories scored at once
  int max_len = 50;        // histories are truncated to their last max_len items
  std::int64_t limit = 0;  // evaluate only the first `limit` examples (0 = all)
  // Checks the stop request between batches (Note [stopping long work]). The trainer turns
  // it off for its validations: it checks at its next step, where it can save its state.
  bool stoppable = true;
};

// Scores of every item for each row of a batch: f32 [B, V].
using BatchScorer = std::function<Tensor(const Batch&)>;

// Examples are batched by history length; each example's rank is computed independently
// and the metrics are accumulated in example order, so the result does not depend on the
// batch size or the thread count.
EvalResult evaluate(const BatchScorer& scorer, const SequenceDataset& data, const DataSplit& split,
                    const EvalOptions& options, Progress* progress = nullptr);

EvalResult evaluate_model(const nn::Transformer& net, const SequenceDataset& data, const DataSplit& split,
                          EvalOptions options, Progress* progress = nullptr);

// Most popular items in the training sequences (a baseline for scale).
BatchScorer popularity_scorer(const DataSplit& split);

}  // namespace prunerec::recsys
