// Evaluation metrics for next-item recommendation: ranks, sampled negatives, HR/NDCG/MRR,
// the protocol record that goes with every reported number, and top-k retrieval.
//
// Everything here is a pure function of a score row; nothing knows about models. The
// evaluator (which runs the model) produces one score row per example and feeds it here:
//
//   MetricAccumulator acc;                                  // K = 1, 5, 10, 20
//   for (each example) {
//     const float* scores = ...;                            // [num_items] for this example
//     acc.add(target_rank(scores, num_items, target, history));
//   }
//   EvalResult result{protocol, acc.result(), acc.count(), seconds};
//   std::cout << describe(protocol) << "\n" << to_json(result) << "\n";
//
// Item ids are the column indices of the score row, 0 .. num_items-1. An id outside that
// range in `excluded`, `negatives` or `history` is a caller's mistake (ShapeError).
//
// Note [pessimistic ties]
// ~~~~~~~~~~~~~~~~~~~~~~~
// The rank of the target is the number of competing items whose score is >= the target's:
// every tie counts against the target. A model that outputs a constant therefore gets the
// worst rank, not a lucky one (optimistic ties reward collapsed scores; "random" ties make
// results depend on a tie-breaking stream). NaN follows the same rule: an item with a NaN
// score outranks the target, and a target with a NaN score is outranked by every
// competitor. In code this is the single predicate `!(score[j] < score[target])`, true for
// ties and for NaN on either side; the file is compiled without -ffast-math, which would
// break it (metrics.cc refuses to compile under __FAST_MATH__).
//
// Note [history exclusion]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// With exclude_history on, the items of the user's input sequence are removed from the
// competition (they can never outrank the target), as in RecBole's full-sort evaluation.
// The target itself is always ranked, even when it also appears in the history (a repeat
// purchase). Duplicate ids in the exclusion list count once.
//
// Note [sampled negatives]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// The sampled protocol (older papers: rank the target against 100 random negatives) draws
// `count` distinct items uniformly from the items that are neither in the history nor the
// target. The draw depends only on (seed, example_id) (Philox, Note [counter-based RNG] in
// tensor/rng.h): the same example gets the same negatives in every run, on every thread
// count, standard library and evaluation order. Sampled
// metrics are much higher than full-ranking ones and are not comparable with them; the
// protocol record travels with every result for this reason.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace prunerec::recsys {

// ---- ranks ------------------------------------------------------------------------------

// 0-based rank of `target` among all items under full ranking: the number of items
// j != target, j not in `excluded`, with !(scores[j] < scores[target]) (Note [pessimistic
// ties], Note [history exclusion]). Range 0 .. num_items-1 - |distinct excluded \ {target}|.
// One vectorisable pass over the scores plus O(|excluded| log |excluded|).
std::int64_t target_rank(const float* scores,  // [num_items]
                         std::int32_t num_items, std::int32_t target,
                         std::span<const std::int32_t> excluded);

// 0-based rank of `target` among the distinct `negatives` (the target, if listed, is not
// its own competitor). Pessimistic ties and NaN as in target_rank.
std::int64_t sampled_rank(const float* scores,  // [num_items]
                          std::int32_t num_items, std::int32_t target,
                          std::span<const std::int32_t> negatives);

// `count` distinct items drawn uniformly from {0..num_items-1} \ history \ {target},
// sorted ascending; deterministic in (seed, example_id) only (Note [sampled negatives]).
// When fewer than `count` candidates exist, returns all of them.
std::vector<std::int32_t> sample_negatives(std::int32_t num_items, std::int32_t target,
                                           std::span<const std::int32_t> history, int count,
                                           std::uint64_t seed, std::uint64_t example_id);

// ---- metrics from a rank (0-based, one relevant item) ------------------------------------

double hit_rate_at(std::int64_t rank, int k);  // [rank < k]
double ndcg_at(std::int64_t rank, int k);      // 1/log2(rank+2) if rank < k else 0
double mrr_at(std::int64_t rank, int k);       // 1/(rank+1) if rank < k else 0

// Mean HR@K, NDCG@K and MRR@K over examples, for every K in `ks`.
//
//   MetricAccumulator acc({5, 10});
//   acc.add(0); acc.add(3);
//   acc.result().at("NDCG@5");   // (1 + 1/log2(5)) / 2
//
// Sums are compensated (Neumaier) doubles added in call order, so a result depends only on
// the sequence of add()/merge() calls, never on timing: per-thread accumulators merged in
// a fixed order give the same bits every run.
class MetricAccumulator {
 public:
  // ks: positive cut-offs; sorted and de-duplicated. ConfigError on K <= 0 or empty ks.
  explicit MetricAccumulator(std::vector<int> ks = {1, 5, 10, 20});

  void add(std::int64_t rank);                   // ShapeError on rank < 0
  void merge(const MetricAccumulator& other);    // ConfigError when the ks differ
  std::int64_t count() const { return count_; }
  const std::vector<int>& ks() const { return ks_; }

  // Keys "HR@K", "NDCG@K", "MRR@K" for every K. With count() == 0 every value is NaN
  // (written as null by to_json): an empty evaluation has no mean, not a mean of 0.
  std::map<std::string, double> result() const;

 private:
  struct CompensatedSum {
    double sum = 0.0;
    double compensation = 0.0;  // Neumaier's running correction
    void add(double value);
    double value() const { return sum + compensation; }
  };
  struct PerK {
    CompensatedSum hit_rate, ndcg, mrr;
  };

  std::vector<int> ks_;
  std::vector<PerK> sums_;  // parallel to ks_
  std::int64_t count_ = 0;
};

// ---- protocol and result record ----------------------------------------------------------

// How a number was measured. Printed next to every result (describe) and stored in it
// (to_json), so a sampled HR@10 is never mistaken for a full-ranking one.
struct Protocol {
  std::string split = "test";                  // which split was evaluated
  std::string split_kind = "leave-one-out";    // how the splits were made
  // "full", "sampled", or "title-generation" (title mode: the rank of the target among
  // the titles a trie-constrained beam search writes; recsys/title/title_eval.h)
  std::string ranking = "full";
  int num_negatives = 100;                     // sampled ranking only
  int beams = 0;                               // title-generation only: B
  bool exclude_history = true;                 // Note [history exclusion]; full ranking
  std::string ties = "pessimistic";            // Note [pessimistic ties]; the only kind
  std::uint64_t seed = 0;                      // sampled negatives' seed
  // Full ranking: the item table's format, "f32" or "bf16" (scores from a bf16 copy of the
  // output table, as a bf16 serving table gives them; Note [blocked ranking]).
  std::string item_table = "f32";
};

// ConfigError unless ranking is "full", "sampled" or "title-generation", ties is
// "pessimistic", split and split_kind are non-empty, for sampled ranking num_negatives > 0
// and for title generation beams > 0; item_table is "f32", or "bf16" under full ranking.
void validate(const Protocol& protocol);

struct EvalResult {
  Protocol protocol;
  std::map<std::string, double> metrics;  // MetricAccumulator::result()
  std::int64_t num_examples = 0;
  double seconds = 0;
  // Per example, in example order: the 0-based rank of the target and the user's index
  // (evaluate() fills them; per-user files and paired comparisons read them).
  std::vector<std::int64_t> ranks;
  std::vector<std::int32_t> users;
  // Sampled ranking: examples whose user had fewer than num_negatives items left to sample
  // (the catalogue minus the history and the target); they were ranked against all of them.
  std::int64_t short_of_negatives = 0;
};

// One JSON object on one line:
//   {"protocol": {"split": "test", "split_kind": "leave-one-out", "ranking": "full",
//    "exclude_history": true, "ties": "pessimistic", "seed": 0},
//    (sampled ranking adds "num_negatives": 100 after "ranking", and
//    "examples_short_of_negatives" after "num_examples"; title generation adds
//    "beams": 20 after "ranking")
//    "metrics": {"HR@1": 0.25, ...}, "num_examples": 4, "seconds": 0.5}
// Doubles are written in the shortest form that round-trips; NaN and Inf as null.
std::string to_json(const EvalResult& result);

// One line for humans, e.g.
//   "test split (leave-one-out), full ranking over all items, history excluded, ties pessimistic"
std::string describe(const Protocol& protocol);

// ---- top-k retrieval -----------------------------------------------------------------------

// The k best items as (item, score), highest score first, equal scores by lower item id;
// `excluded` items are skipped (duplicates allowed) and NaN scores are never returned.
// Fewer than k candidates: all of them. O(num_items log k + |excluded| log |excluded|).
std::vector<std::pair<std::int32_t, float>> top_k(const float* scores,  // [num_items]
                                                  std::int32_t num_items, int k,
                                                  std::span<const std::int32_t> excluded);

}  // namespace prunerec::recsys
