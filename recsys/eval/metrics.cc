// Evaluation metrics: ranks, sampled negatives, HR/NDCG/MRR, protocol record, top-k.
// See metrics.h for the notes cited here.
#include "recsys/eval/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <unordered_set>

#include "base/error.h"
#include "base/json.h"
#include "tensor/rng.h"

// Note [pessimistic ties] relies on IEEE comparisons with NaN.
#if defined(__FAST_MATH__)
#error "recsys/eval/metrics.cc must not be compiled with -ffast-math (NaN ranks)"
#endif

namespace prunerec::recsys {

namespace {

// ---- argument checks ----------------------------------------------------------------------

void check_scores(const char* op, const float* scores, std::int32_t num_items,
                  std::int32_t target) {
  PR_CHECK(num_items > 0, op, ": num_items must be positive, got ", num_items);
  PR_CHECK(scores != nullptr, op, ": scores is null (num_items ", num_items, ")");
  PR_CHECK(target >= 0 && target < num_items, op, ": target ", target,
           " out of range [0, ", num_items, ")");
}

void check_ids(const char* op, const char* what, std::span<const std::int32_t> ids,
               std::int32_t num_items) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    PR_CHECK(ids[i] >= 0 && ids[i] < num_items, op, ": ", what, "[", i, "] = ", ids[i],
             " out of range [0, ", num_items, ")");
  }
}

std::vector<std::int32_t> sorted_unique(std::span<const std::int32_t> ids) {
  std::vector<std::int32_t> out(ids.begin(), ids.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ---- rank kernel ------------------------------------------------------------------------

// Number of j in [0, n) with !(scores[j] < threshold): ties and NaN (either side) count.
// A plain loop the compiler vectorises (compare, mask, subtract); checks nothing.
std::int64_t count_not_below(const float* scores, std::int32_t n, float threshold) {
  std::int64_t count = 0;
  for (std::int32_t j = 0; j < n; ++j) count += !(scores[j] < threshold) ? 1 : 0;
  return count;
}

// Number of distinct ids (other than target) that would outrank the target; these are the
// competitors removed by exclusion (or, for sampled ranking, the ones that count).
std::int64_t count_outranking_ids(const float* scores, std::int32_t target,
                                  std::span<const std::int32_t> ids) {
  const float target_score = scores[target];
  std::vector<std::int32_t> outranking;
  for (std::int32_t id : ids) {
    if (id != target && !(scores[id] < target_score)) outranking.push_back(id);
  }
  std::sort(outranking.begin(), outranking.end());
  return std::unique(outranking.begin(), outranking.end()) - outranking.begin();
}

std::string ks_str(const std::vector<int>& ks) {  // "[1,5,10]"
  std::string out = "[";
  for (std::size_t i = 0; i < ks.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ks[i]);
  }
  out += ']';
  return out;
}

// The Philox stream family of sampled negatives: stream hash_stream(this, example_id).
constexpr std::uint64_t kNegativesStream = 0x6e65676174697665ULL;  // "negative"

}  // namespace

// ---- ranks ------------------------------------------------------------------------------

std::int64_t target_rank(const float* scores, std::int32_t num_items, std::int32_t target,
                         std::span<const std::int32_t> excluded) {
  check_scores("target_rank", scores, num_items, target);
  check_ids("target_rank", "excluded", excluded, num_items);
  // The pass counts the target itself (!(t < t) holds, and holds for NaN too), then the
  // exclusion correction removes the excluded competitors that the pass counted. A NaN
  // target is "not below" of everything, so it lands on the worst rank with no special case.
  const std::int64_t not_below = count_not_below(scores, num_items, scores[target]);
  return not_below - 1 - count_outranking_ids(scores, target, excluded);
}

std::int64_t sampled_rank(const float* scores, std::int32_t num_items, std::int32_t target,
                          std::span<const std::int32_t> negatives) {
  check_scores("sampled_rank", scores, num_items, target);
  check_ids("sampled_rank", "negatives", negatives, num_items);
  return count_outranking_ids(scores, target, negatives);
}

std::vector<std::int32_t> sample_negatives(std::int32_t num_items, std::int32_t target,
                                           std::span<const std::int32_t> history, int count,
                                           std::uint64_t seed, std::uint64_t example_id) {
  PR_CHECK(num_items > 0, "sample_negatives: num_items must be positive, got ", num_items);
  PR_CHECK(target >= 0 && target < num_items, "sample_negatives: target ", target,
           " out of range [0, ", num_items, ")");
  PR_CHECK_T(ConfigError, count >= 0, "sample_negatives: count must be >= 0, got ", count);
  check_ids("sample_negatives", "history", history, num_items);

  std::vector<std::int32_t> blocked(history.begin(), history.end());
  blocked.push_back(target);
  std::sort(blocked.begin(), blocked.end());
  blocked.erase(std::unique(blocked.begin(), blocked.end()), blocked.end());
  const std::int64_t num_candidates = num_items - static_cast<std::int64_t>(blocked.size());

  // Positions 0..num_candidates-1 index the unblocked items in ascending order.
  std::vector<std::int64_t> positions;
  if (num_candidates <= count) {
    positions.resize(static_cast<std::size_t>(num_candidates));
    for (std::int64_t p = 0; p < num_candidates; ++p) positions[p] = p;
  } else {
    // Floyd's algorithm: exactly `count` draws, a uniformly random `count`-subset of
    // positions. The set only answers membership, so its hash order never leaks out.
    Rng rng(seed, hash_stream(kNegativesStream, example_id));  // Note [counter-based RNG]
    std::unordered_set<std::int64_t> chosen;
    chosen.reserve(static_cast<std::size_t>(count) * 2);
    for (std::int64_t j = num_candidates - count; j < num_candidates; ++j) {
      const auto drawn = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(j) + 1));
      const std::int64_t pick = chosen.count(drawn) ? j : drawn;
      chosen.insert(pick);
      positions.push_back(pick);
    }
    std::sort(positions.begin(), positions.end());
  }

  // Map ascending positions to items, stepping over the blocked ids in one merge walk.
  std::vector<std::int32_t> items;
  items.reserve(positions.size());
  std::size_t skipped = 0;  // blocked ids below the current item
  for (std::int64_t position : positions) {
    std::int64_t item = position + static_cast<std::int64_t>(skipped);
    while (skipped < blocked.size() && blocked[skipped] <= item) {
      ++skipped;
      item = position + static_cast<std::int64_t>(skipped);
    }
    items.push_back(static_cast<std::int32_t>(item));
  }
  return items;
}

// ---- metrics ------------------------------------------------------------------------------

double hit_rate_at(std::int64_t rank, int k) { return rank < k ? 1.0 : 0.0; }

double ndcg_at(std::int64_t rank, int k) {
  return rank < k ? 1.0 / std::log2(static_cast<double>(rank) + 2.0) : 0.0;
}

double mrr_at(std::int64_t rank, int k) {
  return rank < k ? 1.0 / (static_cast<double>(rank) + 1.0) : 0.0;
}

void MetricAccumulator::CompensatedSum::add(double value) {
  const double total = sum + value;
  if (std::fabs(sum) >= std::fabs(value)) {
    compensation += (sum - total) + value;
  } else {
    compensation += (value - total) + sum;
  }
  sum = total;
}

MetricAccumulator::MetricAccumulator(std::vector<int> ks) : ks_(std::move(ks)) {
  PR_CHECK_T(ConfigError, !ks_.empty(), "MetricAccumulator: no cut-offs K given");
  for (int k : ks_) {
    PR_CHECK_T(ConfigError, k > 0, "MetricAccumulator: cut-off K must be positive, got ", k);
  }
  std::sort(ks_.begin(), ks_.end());
  ks_.erase(std::unique(ks_.begin(), ks_.end()), ks_.end());
  sums_.resize(ks_.size());
}

void MetricAccumulator::add(std::int64_t rank) {
  PR_CHECK(rank >= 0, "MetricAccumulator::add: rank must be >= 0, got ", rank);
  for (std::size_t i = 0; i < ks_.size(); ++i) {
    sums_[i].hit_rate.add(hit_rate_at(rank, ks_[i]));
    sums_[i].ndcg.add(ndcg_at(rank, ks_[i]));
    sums_[i].mrr.add(mrr_at(rank, ks_[i]));
  }
  ++count_;
}

void MetricAccumulator::merge(const MetricAccumulator& other) {
  PR_CHECK_T(ConfigError, other.ks_ == ks_, "MetricAccumulator::merge: cut-offs differ: ",
             ks_str(ks_), " vs ", ks_str(other.ks_));
  for (std::size_t i = 0; i < ks_.size(); ++i) {
    for (auto [into, from] : {std::pair{&sums_[i].hit_rate, &other.sums_[i].hit_rate},
                              std::pair{&sums_[i].ndcg, &other.sums_[i].ndcg},
                              std::pair{&sums_[i].mrr, &other.sums_[i].mrr}}) {
      into->add(from->sum);
      into->add(from->compensation);
    }
  }
  count_ += other.count_;
}

std::map<std::string, double> MetricAccumulator::result() const {
  std::map<std::string, double> metrics;
  const double n = static_cast<double>(count_);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t i = 0; i < ks_.size(); ++i) {
    const int k = ks_[i];
    metrics[detail::str_cat("HR@", k)] = count_ > 0 ? sums_[i].hit_rate.value() / n : nan;
    metrics[detail::str_cat("NDCG@", k)] = count_ > 0 ? sums_[i].ndcg.value() / n : nan;
    metrics[detail::str_cat("MRR@", k)] = count_ > 0 ? sums_[i].mrr.value() / n : nan;
  }
  return metrics;
}

// ---- protocol and result record ----------------------------------------------------------

void validate(const Protocol& protocol) {
  PR_CHECK_T(ConfigError, !protocol.split.empty(), "eval protocol: split is empty");
  PR_CHECK_T(ConfigError, !protocol.split_kind.empty(), "eval protocol: split_kind is empty");
  PR_CHECK_T(ConfigError,
             protocol.ranking == "full" || protocol.ranking == "sampled" || protocol.ranking == "title-generation",
             "eval protocol: ranking must be \"full\", \"sampled\" or \"title-generation\", got \"",
             protocol.ranking, "\"");
  if (protocol.ranking == "title-generation")
    PR_CHECK_T(ConfigError, protocol.beams > 0, "eval protocol: title generation needs beams > 0, got ",
               protocol.beams);
  PR_CHECK_T(ConfigError, protocol.ties == "pessimistic",
             "eval protocol: ties must be \"pessimistic\" (the only kind implemented), got \"",
             protocol.ties, "\"");
  PR_CHECK_T(ConfigError, protocol.item_table == "f32" || (protocol.item_table == "bf16" && protocol.ranking == "full"),
             "eval protocol: item_table must be \"f32\", or \"bf16\" under full ranking; got \"", protocol.item_table,
             "\" with ranking \"", protocol.ranking, "\"");
  if (protocol.ranking == "sampled") {
    PR_CHECK_T(ConfigError, protocol.num_negatives > 0,
               "eval protocol: sampled ranking needs num_negatives > 0, got ",
               protocol.num_negatives);
  }
}

std::string to_json(const EvalResult& result) {
  const Protocol& p = result.protocol;
  Json j;
  j.begin_object().key("protocol").begin_object();
  j.key("split").value(p.split).key("split_kind").value(p.split_kind).key("ranking").value(p.ranking);
  if (p.ranking == "sampled") j.key("num_negatives").value(p.num_negatives);  // meaningless under full ranking
  if (p.ranking == "title-generation") j.key("beams").value(p.beams);
  if (p.item_table != "f32") j.key("item_table").value(p.item_table);  // written only when not the default
  j.key("exclude_history").value(p.exclude_history).key("ties").value(p.ties);
  j.key("seed").value(static_cast<std::uint64_t>(p.seed));  // full uint64; readers using doubles lose bits above 2^53
  j.end_object();
  j.key("metrics").begin_object();
  for (const auto& [name, value] : result.metrics) j.key(name).value(value);
  j.end_object();
  j.key("num_examples").value(static_cast<std::int64_t>(result.num_examples));
  if (p.ranking == "sampled") j.key("examples_short_of_negatives").value(result.short_of_negatives);
  j.key("seconds").value(result.seconds);
  j.end_object();
  return j.str();
}

std::string describe(const Protocol& protocol) {
  std::string out = protocol.split + " split (" + protocol.split_kind + "), ";
  if (protocol.ranking == "full") {
    out += "full ranking over all items, ";
    out += protocol.exclude_history ? "history excluded" : "history not excluded";
    if (protocol.item_table != "f32") out += ", " + protocol.item_table + " item table";
  } else if (protocol.ranking == "sampled") {
    out += "sampled ranking against " + std::to_string(protocol.num_negatives) +
           " negatives not in history (seed " + std::to_string(protocol.seed) + ")";
  } else if (protocol.ranking == "title-generation") {
    out += "title generation, " + std::to_string(protocol.beams) + " beams (trie-constrained; rank of the first " +
           "beam whose title is the target's)";
  } else {
    out += "unknown ranking \"" + protocol.ranking + "\"";
  }
  out += ", ties " + protocol.ties;
  return out;
}

// ---- top-k retrieval -----------------------------------------------------------------------

std::vector<std::pair<std::int32_t, float>> top_k(const float* scores, std::int32_t num_items,
                                                  int k,
                                                  std::span<const std::int32_t> excluded) {
  PR_CHECK(num_items >= 0, "top_k: num_items must be >= 0, got ", num_items);
  PR_CHECK(num_items == 0 || scores != nullptr, "top_k: scores is null (num_items ",
           num_items, ")");
  PR_CHECK(k >= 0, "top_k: k must be >= 0, got ", k);
  check_ids("top_k", "excluded", excluded, num_items);

  using Entry = std::pair<std::int32_t, float>;  // (item, score)
  // better(a, b): a ranks before b. As the heap comparator it keeps the worst kept entry
  // at the front, ready to be replaced.
  const auto better = [](const Entry& a, const Entry& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  };
  std::vector<Entry> heap;
  if (k == 0) return heap;
  heap.reserve(static_cast<std::size_t>(std::min<std::int64_t>(k, num_items)));

  const std::vector<std::int32_t> skip = sorted_unique(excluded);
  std::size_t next_skip = 0;
  for (std::int32_t item = 0; item < num_items; ++item) {
    if (next_skip < skip.size() && skip[next_skip] == item) {
      ++next_skip;
      continue;
    }
    const float score = scores[item];
    if (std::isnan(score)) continue;
    if (heap.size() < static_cast<std::size_t>(k)) {
      heap.emplace_back(item, score);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(Entry{item, score}, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = Entry{item, score};
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), better);  // best first
  return heap;
}

}  // namespace prunerec::recsys
