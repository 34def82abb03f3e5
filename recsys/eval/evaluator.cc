#include "recsys/eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "recsys/eval/blocked_ranking.h"
#include "recsys/recommender.h"
#include "tensor/parallel.h"

namespace prunerec::recsys {

EvalResult evaluate(const BatchScorer& scorer, const SequenceDataset& data, const DataSplit& split,
                    const EvalOptions& options, Progress* progress) {
  const auto t0 = std::chrono::steady_clock::now();
  Protocol protocol = options.protocol;
  protocol.split_kind = split.kind;
  validate(protocol);
  PR_CHECK_T(ConfigError, protocol.split == "valid" || protocol.split == "test", "evaluate: split must be valid or test, got '",
             protocol.split, "'");
  const std::vector<EvalExample>& all = protocol.split == "valid" ? split.valid : split.test;
  const std::int64_t n = options.limit > 0 ? std::min<std::int64_t>(options.limit, all.size()) : all.size();
  PR_CHECK_T(ConfigError, n > 0, "evaluate: the ", protocol.split, " split has no examples");
  PR_CHECK_T(ConfigError, options.batch_size > 0 && options.max_len > 0, "evaluate: batch_size and max_len must be positive");

  // Batch by truncated history length (stable, so ties keep example order).
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  auto len = [&](std::int64_t i) { return std::min<std::int64_t>(options.max_len, all[i].prefix_len); };
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return len(a) < len(b); });

  std::vector<std::int64_t> ranks(static_cast<std::size_t>(n), 0);
  std::vector<std::uint8_t> short_of_negatives(static_cast<std::size_t>(n), 0);
  const std::int32_t V = split.num_items;
  // Note [sampled ranking needs a smaller catalogue]: with as many negatives as items
  // besides the target, "sampled" ranking is full ranking (history excluded) under another
  // name, and reporting num_negatives would misstate it; refuse rather than clamp.
  PR_CHECK_T(ConfigError, protocol.ranking != "sampled" || protocol.num_negatives < V - 1, "evaluate: ",
             protocol.num_negatives, " sampled negatives but the catalogue has only ", V,
             " items: sampled ranking would rank against every item; use full ranking, or fewer negatives (at most ",
             V - 2, ")");
  Communicator& comm = options.comm ? *options.comm : world();  // Note [data-parallel evaluation]
  for (std::int64_t b0 = 0; b0 < n; b0 += options.batch_size) {
    if ((b0 / options.batch_size) % comm.size() != comm.rank()) continue;
    if (options.stoppable) stop_point(prunerec::detail::str_cat("evaluation (", protocol.split, " split)"));
    const std::vector<std::int64_t> rows(order.begin() + b0, order.begin() + std::min<std::int64_t>(n, b0 + options.batch_size));
    const Batch batch = make_eval_batch(data, all, rows, options.max_len);
    const Tensor scores = scorer(batch).to(DType::f32).contiguous();
    PR_CHECK(scores.dim() == 2 && scores.size(0) == static_cast<std::int64_t>(rows.size()) && scores.size(1) == V,
             "evaluate: scorer returned ", scores.shape_str(), " for ", rows.size(), " rows and ", V, " items");
    const float* s = scores.data<float>();
    parallel_for(0, static_cast<std::int64_t>(rows.size()), 1, [&](std::int64_t lo, std::int64_t hi) {
      std::vector<std::int32_t> history;
      for (std::int64_t r = lo; r < hi; ++r) {
        const std::int64_t i = rows[r];
        const EvalExample& e = all[i];
        const auto& seq = data.sequences[e.user];
        history.assign(seq.begin(), seq.begin() + e.prefix_len);
        const float* row = s + r * V;
        if (protocol.ranking == "sampled") {
          const auto negatives = sample_negatives(V, e.target, history, protocol.num_negatives, protocol.seed,
                                                  static_cast<std::uint64_t>(i));
          ranks[i] = sampled_rank(row, V, e.target, negatives);
          short_of_negatives[i] = static_cast<int>(negatives.size()) < protocol.num_negatives;
        } else {
          if (!protocol.exclude_history) history.clear();
          ranks[i] = target_rank(row, V, e.target, history);
        }
      }
    });
    if (progress) progress->update(b0 + static_cast<std::int64_t>(rows.size()), "");
  }
  if (comm.size() > 1) comm.allreduce_sum(ranks.data(), n);
  EvalResult result = result_from_ranks(protocol, std::move(ranks), all);
  std::int64_t short_count = 0;
  for (std::uint8_t s : short_of_negatives) short_count += s;
  if (comm.size() > 1) comm.allreduce_sum(&short_count, 1);
  result.short_of_negatives = short_count;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

EvalResult result_from_ranks(const Protocol& protocol, std::vector<std::int64_t> ranks,
                             const std::vector<EvalExample>& examples, std::vector<int> ks) {
  PR_CHECK_T(ConfigError, ranks.size() <= examples.size(), "result_from_ranks: ", ranks.size(), " ranks for ",
             examples.size(), " examples");
  MetricAccumulator acc(std::move(ks));
  for (std::int64_t r : ranks) acc.add(r);
  EvalResult result;
  result.protocol = protocol;
  result.metrics = acc.result();
  result.num_examples = static_cast<std::int64_t>(ranks.size());
  for (std::size_t i = 0; i < ranks.size(); ++i) result.users.push_back(examples[i].user);
  result.ranks = std::move(ranks);
  return result;
}

EvalResult evaluate_model(const nn::Transformer& net, const SequenceDataset& data, const DataSplit& split,
                          EvalOptions options, Progress* progress) {
  PR_CHECK_T(ConfigError, net.vocab_size() == split.num_items, "evaluate: model scores ", net.vocab_size(),
             " items but the data has ", split.num_items);
  // Large catalogues, and bf16 tables at any size, are ranked in item blocks (recsys/eval/blocked_ranking.h).
  if ((split.num_items >= kBlockedEvalFrom || options.protocol.item_table == "bf16") && options.protocol.ranking != "sampled")
    return evaluate_blocked(net, data, split, options, progress);
  return evaluate([&](const Batch& b) { return next_item_scores(net, b.ids, b.pads); }, data, split, options,
                  progress);
}

BatchScorer popularity_scorer(const DataSplit& split) {
  std::vector<float> counts(static_cast<std::size_t>(split.num_items), 0.0f);
  for (const auto& seq : split.train)
    for (std::int32_t item : seq) counts[item] += 1.0f;
  return [counts](const Batch& b) {
    const std::int64_t B = b.ids.size(0), V = static_cast<std::int64_t>(counts.size());
    Tensor s = Tensor::empty({B, V}, DType::f32);
    for (std::int64_t r = 0; r < B; ++r) std::copy(counts.begin(), counts.end(), s.data<float>() + r * V);
    return s;
  };
}

}  // namespace prunerec::recsys
