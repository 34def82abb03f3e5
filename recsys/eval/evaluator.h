// Evaluation: ranks every held-out next item against the catalogue (or sampled
// negatives) and averages NDCG/HR/MRR at 1, 5, 10, 20. The evaluator is separate from the
// model: it takes a scorer, so the transformer and the popularity baseline are measured by
// the same code under the same protocol.
//
//   EvalResult r = evaluate_model(net, data, split, {.protocol = {.split = "test"}, .max_len = 50});
//   std::cout << describe(r.protocol) << "\n" << to_json(r);
//
// Note [data-parallel evaluation]: under mpirun the batches (cut as on one process) are
// dealt to the ranks in turn, batch b to rank b mod N; each rank ranks its examples, and
// the per-example ranks (zero where another rank answers) are summed over ranks as int64,
// so every rank then holds the whole rank vector and computes the metrics from it in
// example order, exactly as one process does: the metrics are those of 1 rank, bit for
// bit, not an average of per-rank averages. Every rank must call the evaluator.
#pragma once

#include <functional>

#include "base/comm.h"
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
  // The ranks to split the examples over (Note [data-parallel evaluation]); null = world().
  Communicator* comm = nullptr;
};

// Scores of every item for each row of a batch: f32 [B, V].
using BatchScorer = std::function<Tensor(const Batch&)>;

// Examples are batched by history length; each example's rank is computed independently
// and the metrics are accumulated in example order, so the result does not depend on the
// batch size or the thread count.
// The result of every evaluator from its per-example ranks (in example order, of the
// first ranks.size() of `examples`): metrics at `ks`, num_examples, and the ranks and users
// that per-user files and paired comparisons read. seconds and short_of_negatives are the
// caller's to fill.
EvalResult result_from_ranks(const Protocol& protocol, std::vector<std::int64_t> ranks,
                             const std::vector<EvalExample>& examples, std::vector<int> ks = {1, 5, 10, 20});

EvalResult evaluate(const BatchScorer& scorer, const SequenceDataset& data, const DataSplit& split,
                    const EvalOptions& options, Progress* progress = nullptr);

EvalResult evaluate_model(const nn::Transformer& net, const SequenceDataset& data, const DataSplit& split,
                          EvalOptions options, Progress* progress = nullptr);

// Most popular items in the training sequences (a baseline for scale).
BatchScorer popularity_scorer(const DataSplit& split);

}  // namespace prunerec::recsys
