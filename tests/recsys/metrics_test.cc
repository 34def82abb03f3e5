// Tests of recsys/eval/metrics: metric formulas against hand values, ranks against a plain
// brute-force twin, sampled negatives' determinism and distribution, the protocol record,
// and top-k against a full sort.
#include "recsys/eval/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

#include "base/error.h"
#include "tensor/rng.h"

namespace prunerec::recsys {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Brute-force twin of target_rank: a plain loop and a std::set, written from the
// definition in metrics.h (Note [pessimistic ties], Note [history exclusion]).
std::int64_t target_rank_twin(const std::vector<float>& scores, std::int32_t target,
                              const std::vector<std::int32_t>& excluded) {
  const std::set<std::int32_t> excluded_set(excluded.begin(), excluded.end());
  const float t = scores[target];
  std::int64_t rank = 0;
  for (std::int32_t j = 0; j < static_cast<std::int32_t>(scores.size()); ++j) {
    if (j == target || excluded_set.count(j)) continue;
    const bool outranks = std::isnan(t) || std::isnan(scores[j]) || scores[j] >= t;
    if (outranks) ++rank;
  }
  return rank;
}

// ---- metric formulas ------------------------------------------------------------------------
// Exact comparisons (EXPECT_EQ / EXPECT_DOUBLE_EQ) are used where the formula is a single
// IEEE operation on exactly representable inputs; DOUBLE_EQ (4 ulp) covers log2 rounding.

TEST(MetricsFormula, RankZeroIsPerfectForEveryK) {
  for (int k : {1, 5, 10, 20, 1000}) {
    EXPECT_EQ(hit_rate_at(0, k), 1.0) << "K=" << k;
    EXPECT_EQ(ndcg_at(0, k), 1.0) << "K=" << k;
    EXPECT_EQ(mrr_at(0, k), 1.0) << "K=" << k;
  }
}

TEST(MetricsFormula, RankThreeHandValues) {
  EXPECT_DOUBLE_EQ(ndcg_at(3, 5), 0.43067655807339306);  // 1/log2(5)
  EXPECT_EQ(ndcg_at(3, 1), 0.0);
  EXPECT_EQ(ndcg_at(3, 3), 0.0);                          // rank 3 is the 4th place
  EXPECT_DOUBLE_EQ(ndcg_at(3, 4), 0.43067655807339306);
  EXPECT_EQ(hit_rate_at(3, 5), 1.0);
  EXPECT_EQ(hit_rate_at(3, 3), 0.0);
  EXPECT_EQ(mrr_at(3, 5), 0.25);
  EXPECT_EQ(mrr_at(3, 3), 0.0);
}

TEST(MetricsFormula, CutoffBoundary) {
  // rank K-1 is inside the top K, rank K is not.
  EXPECT_EQ(hit_rate_at(9, 10), 1.0);
  EXPECT_EQ(hit_rate_at(10, 10), 0.0);
  EXPECT_DOUBLE_EQ(ndcg_at(9, 10), 1.0 / std::log2(11.0));
  EXPECT_EQ(ndcg_at(10, 10), 0.0);
  EXPECT_EQ(mrr_at(9, 10), 0.1);
  EXPECT_EQ(mrr_at(10, 10), 0.0);
  EXPECT_DOUBLE_EQ(ndcg_at(1, 2), 1.0 / std::log2(3.0));  // 0.6309297535714575
}

// ---- accumulator ------------------------------------------------------------------------

TEST(MetricsAccumulator, HandExampleMeans) {
  MetricAccumulator acc({1, 5, 20});
  for (std::int64_t rank : {0, 3, 20}) acc.add(rank);
  EXPECT_EQ(acc.count(), 3);
  const auto m = acc.result();
  ASSERT_EQ(m.size(), 9u);
  // Hand values: rank 0 hits everything, rank 3 hits K=5 and K=20, rank 20 hits nothing
  // (20 is not < 20). DOUBLE_EQ: a sum of three terms and one division.
  EXPECT_DOUBLE_EQ(m.at("HR@1"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("HR@5"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("HR@20"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("NDCG@1"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("NDCG@5"), (1.0 + 0.43067655807339306) / 3);
  EXPECT_DOUBLE_EQ(m.at("NDCG@20"), (1.0 + 0.43067655807339306) / 3);
  EXPECT_DOUBLE_EQ(m.at("MRR@1"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("MRR@5"), 1.25 / 3);
  EXPECT_DOUBLE_EQ(m.at("MRR@20"), 1.25 / 3);
}

TEST(MetricsAccumulator, DefaultKeysAreSpelledExactly) {
  MetricAccumulator acc;
  acc.add(7);
  const auto m = acc.result();
  for (const char* key : {"HR@1", "HR@5", "HR@10", "HR@20", "NDCG@1", "NDCG@5", "NDCG@10",
                          "NDCG@20", "MRR@1", "MRR@5", "MRR@10", "MRR@20"}) {
    EXPECT_TRUE(m.count(key)) << key;
  }
  EXPECT_EQ(m.size(), 12u);
  EXPECT_EQ(m.at("HR@5"), 0.0);
  EXPECT_EQ(m.at("HR@10"), 1.0);
  EXPECT_EQ(m.at("MRR@10"), 0.125);
}

TEST(MetricsAccumulator, KsSortedAndDeduplicated) {
  MetricAccumulator acc({10, 1, 10});
  EXPECT_EQ(acc.ks(), (std::vector<int>{1, 10}));
  acc.add(0);
  EXPECT_EQ(acc.result().size(), 6u);
}

TEST(MetricsAccumulator, MergeEqualsAddingEverything) {
  Rng gen(7);
  std::vector<std::int64_t> ranks(1001);
  for (auto& r : ranks) r = static_cast<std::int64_t>(gen.below(41));

  MetricAccumulator all, first_half, second_half;
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    all.add(ranks[i]);
    (i < 500 ? first_half : second_half).add(ranks[i]);
  }
  first_half.merge(second_half);
  EXPECT_EQ(first_half.count(), all.count());
  const auto merged = first_half.result(), direct = all.result();
  for (const auto& [key, value] : direct) {
    // Different summation orders of compensated sums: agree to far better than 1e-12.
    EXPECT_NEAR(merged.at(key), value, 1e-12) << key;
  }
}

TEST(MetricsAccumulator, DeterministicBitsForSameOrder) {
  MetricAccumulator a, b;
  for (int i = 0; i < 10000; ++i) {
    a.add(i % 37);
    b.add(i % 37);
  }
  const auto ra = a.result(), rb = b.result();
  for (const auto& [key, value] : ra) {
    EXPECT_EQ(std::memcmp(&value, &rb.at(key), sizeof(double)), 0) << key;
  }
}

TEST(MetricsAccumulator, CompensatedSumIsAccurate) {
  // 10^6 times rank 2: MRR@5 = 1/3 each. A plain float sum would drift by ~1e-3; a plain
  // double sum by ~1e-11 relative; the compensated sum stays within a few ulp of 1/3.
  MetricAccumulator acc({5});
  for (int i = 0; i < 1000000; ++i) acc.add(2);
  EXPECT_NEAR(acc.result().at("MRR@5"), 1.0 / 3, 4e-16);
}

TEST(MetricsAccumulator, EmptyGivesNaN) {
  MetricAccumulator acc({10});
  const auto m = acc.result();
  ASSERT_EQ(m.size(), 3u);
  for (const auto& [key, value] : m) EXPECT_TRUE(std::isnan(value)) << key;
}

TEST(MetricsAccumulator, RejectsBadArguments) {
  EXPECT_THROW(MetricAccumulator(std::vector<int>{}), ConfigError);
  EXPECT_THROW(MetricAccumulator({5, 0}), ConfigError);
  EXPECT_THROW(MetricAccumulator({-1}), ConfigError);
  MetricAccumulator acc({5, 10});
  EXPECT_THROW(acc.add(-1), ShapeError);
  MetricAccumulator other({5});
  EXPECT_THROW(acc.merge(other), ConfigError);
}

// ---- target_rank ------------------------------------------------------------------------

TEST(MetricsTargetRank, StrictOrder) {
  const std::vector<float> scores = {0.1f, 0.9f, 0.5f, 0.7f, 0.3f};
  EXPECT_EQ(target_rank(scores.data(), 5, 1, {}), 0);
  EXPECT_EQ(target_rank(scores.data(), 5, 3, {}), 1);
  EXPECT_EQ(target_rank(scores.data(), 5, 2, {}), 2);
  EXPECT_EQ(target_rank(scores.data(), 5, 0, {}), 4);
}

TEST(MetricsTargetRank, TiesCountAgainstTarget) {
  // Target 2 tied with items 0 and 4, nothing higher: rank 2, not 0.
  const std::vector<float> scores = {0.5f, 0.1f, 0.5f, 0.2f, 0.5f};
  EXPECT_EQ(target_rank(scores.data(), 5, 2, {}), 2);
  // A constant model gets the worst rank.
  const std::vector<float> constant(100, 1.0f);
  EXPECT_EQ(target_rank(constant.data(), 100, 37, {}), 99);
}

TEST(MetricsTargetRank, ExcludedNeverOutrank) {
  const std::vector<float> scores = {0.9f, 0.1f, 0.8f, 0.5f, 0.7f};
  EXPECT_EQ(target_rank(scores.data(), 5, 3, {}), 3);
  const std::vector<std::int32_t> history = {0, 1};  // 0 outranks, 1 does not
  EXPECT_EQ(target_rank(scores.data(), 5, 3, history), 2);
  const std::vector<std::int32_t> all_higher = {0, 2, 4};
  EXPECT_EQ(target_rank(scores.data(), 5, 3, all_higher), 0);
}

TEST(MetricsTargetRank, TargetInsideExcludedIsStillRanked) {
  const std::vector<float> scores = {0.9f, 0.1f, 0.8f, 0.5f, 0.7f};
  const std::vector<std::int32_t> history = {3, 0};  // repeat purchase of the target
  EXPECT_EQ(target_rank(scores.data(), 5, 3, history), 2);  // 2 and 4 remain above
}

TEST(MetricsTargetRank, DuplicatesInExcludedCountOnce) {
  const std::vector<float> scores = {0.9f, 0.1f, 0.8f, 0.5f, 0.7f};
  const std::vector<std::int32_t> history = {0, 0, 0, 2, 2, 3, 3};
  EXPECT_EQ(target_rank(scores.data(), 5, 3, history), 1);  // only item 4 above
}

TEST(MetricsTargetRank, NaNScores) {
  // NaN target: worst rank among the non-excluded competitors.
  const std::vector<float> nan_target = {0.1f, kNaN, -kInf, 0.3f, 0.2f};
  EXPECT_EQ(target_rank(nan_target.data(), 5, 1, {}), 4);
  const std::vector<std::int32_t> history = {0, 0, 3, 1};
  EXPECT_EQ(target_rank(nan_target.data(), 5, 1, history), 2);  // 5 - 1 - |{0,3}|
  // NaN competitors outrank the target; excluded NaN competitors do not.
  const std::vector<float> nan_others = {kNaN, 0.5f, kNaN, 0.1f, 0.9f};
  EXPECT_EQ(target_rank(nan_others.data(), 5, 1, {}), 3);
  const std::vector<std::int32_t> exclude_nan = {2};
  EXPECT_EQ(target_rank(nan_others.data(), 5, 1, exclude_nan), 2);
}

TEST(MetricsTargetRank, Infinities) {
  const std::vector<float> scores = {kInf, kInf, 0.0f, -kInf};
  EXPECT_EQ(target_rank(scores.data(), 4, 0, {}), 1);  // tied with item 1
  EXPECT_EQ(target_rank(scores.data(), 4, 3, {}), 3);
  EXPECT_EQ(target_rank(scores.data(), 1, 0, {}), 0);  // a single item
}

TEST(MetricsTargetRank, RejectsBadArguments) {
  const std::vector<float> scores = {0.1f, 0.2f, 0.3f};
  EXPECT_THROW(target_rank(scores.data(), 3, 3, {}), ShapeError);
  EXPECT_THROW(target_rank(scores.data(), 3, -1, {}), ShapeError);
  EXPECT_THROW(target_rank(scores.data(), 0, 0, {}), ShapeError);
  EXPECT_THROW(target_rank(nullptr, 3, 0, {}), ShapeError);
  const std::vector<std::int32_t> bad = {1, 3};
  EXPECT_THROW(target_rank(scores.data(), 3, 0, bad), ShapeError);
  try {
    target_rank(scores.data(), 3, 0, bad);
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("excluded[1] = 3"), std::string::npos) << e.what();
  }
}

TEST(MetricsTargetRank, MatchesBruteForceTwinWithManyTies) {
  Rng gen(12345);
  // Odd sizes around the vector widths (8 and 16 floats) and a larger one.
  for (std::int32_t num_items : {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1001}) {
    for (int trial = 0; trial < 40; ++trial) {
      // Scores from 4 levels: about a quarter of the items tie with any target. Some NaN.
      const auto level = [&] { return static_cast<float>(gen.below(4)); };
      const auto item = [&] { return static_cast<std::int32_t>(gen.below(static_cast<std::uint64_t>(num_items))); };
      std::vector<float> scores(num_items);
      for (auto& s : scores) s = gen.below(20) == 0 ? kNaN : 0.25f * level();
      std::vector<std::int32_t> excluded(gen.below(13));
      for (auto& e : excluded) e = item();  // duplicates and the target happen
      const std::int32_t target = item();
      EXPECT_EQ(target_rank(scores.data(), num_items, target, excluded),
                target_rank_twin(scores, target, excluded))
          << "num_items " << num_items << " trial " << trial;
    }
  }
}

// ---- sampled protocol ---------------------------------------------------------------------

TEST(MetricsSampledRank, HandExample) {
  const std::vector<float> scores = {0.9f, 0.5f, 0.5f, 0.1f, 0.7f, 0.2f};
  const std::vector<std::int32_t> negatives = {3, 5, 0};
  EXPECT_EQ(sampled_rank(scores.data(), 6, 1, negatives), 1);  // only 0 above
  const std::vector<std::int32_t> with_tie = {2, 3, 5};
  EXPECT_EQ(sampled_rank(scores.data(), 6, 1, with_tie), 1);  // tie with 2 counts
  const std::vector<std::int32_t> duplicated = {0, 0, 4, 4, 1};  // target listed: ignored
  EXPECT_EQ(sampled_rank(scores.data(), 6, 1, duplicated), 2);
  EXPECT_EQ(sampled_rank(scores.data(), 6, 1, {}), 0);
}

TEST(MetricsSampledRank, NaN) {
  const std::vector<float> scores = {kNaN, 0.5f, 0.9f, 0.1f};
  const std::vector<std::int32_t> negatives = {0, 3};
  EXPECT_EQ(sampled_rank(scores.data(), 4, 1, negatives), 1);  // NaN negative outranks
  const std::vector<std::int32_t> others = {1, 2, 3};
  EXPECT_EQ(sampled_rank(scores.data(), 4, 0, others), 3);  // NaN target: worst
}

TEST(MetricsSampleNegatives, DeterministicInSeedAndExampleId) {
  const std::vector<std::int32_t> history = {3, 17, 17, 256, 999};
  const auto a = sample_negatives(1000, 42, history, 100, 7, 12);
  const auto b = sample_negatives(1000, 42, history, 100, 7, 12);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, sample_negatives(1000, 42, history, 100, 7, 13));  // another example
  EXPECT_NE(a, sample_negatives(1000, 42, history, 100, 8, 12));  // another seed
}

TEST(MetricsSampleNegatives, DistinctSortedInRangeAndNeverHistoryOrTarget) {
  const std::int32_t num_items = 500;
  Rng gen(3);
  const auto item = [&] { return static_cast<std::int32_t>(gen.below(num_items)); };
  for (std::uint64_t example = 0; example < 200; ++example) {
    std::vector<std::int32_t> history(50);
    for (auto& h : history) h = item();
    const std::int32_t target = item();
    const auto negatives = sample_negatives(num_items, target, history, 100, 99, example);
    ASSERT_EQ(negatives.size(), 100u);
    EXPECT_TRUE(std::is_sorted(negatives.begin(), negatives.end()));
    EXPECT_EQ(std::adjacent_find(negatives.begin(), negatives.end()), negatives.end());
    const std::set<std::int32_t> blocked(history.begin(), history.end());
    for (std::int32_t n : negatives) {
      EXPECT_GE(n, 0);
      EXPECT_LT(n, num_items);
      EXPECT_NE(n, target);
      EXPECT_FALSE(blocked.count(n)) << "negative " << n << " is in the history";
    }
  }
}

TEST(MetricsSampleNegatives, FewCandidatesReturnsAllOfThem) {
  const std::vector<std::int32_t> history = {0, 2, 4, 4, 6};
  const auto negatives = sample_negatives(8, 1, history, 100, 0, 0);
  EXPECT_EQ(negatives, (std::vector<std::int32_t>{3, 5, 7}));
  // Exactly as many candidates as asked for: all of them.
  EXPECT_EQ(sample_negatives(8, 1, history, 3, 0, 0), (std::vector<std::int32_t>{3, 5, 7}));
  // One fewer: two of the three.
  const auto two = sample_negatives(8, 1, history, 2, 0, 0);
  ASSERT_EQ(two.size(), 2u);
  for (std::int32_t n : two) EXPECT_TRUE(n == 3 || n == 5 || n == 7) << n;
  EXPECT_TRUE(sample_negatives(8, 1, history, 0, 0, 0).empty());
  const std::vector<std::int32_t> everything = {0, 2, 3, 4, 5, 6, 7};
  EXPECT_TRUE(sample_negatives(8, 1, everything, 5, 0, 0).empty());
}

TEST(MetricsSampleNegatives, RoughlyUniform) {
  // 8 candidates (10 items minus history {2} minus target 5), 3 drawn per example over
  // 24000 examples: each candidate is expected 24000 * 3/8 = 9000 times with binomial
  // sd sqrt(24000 * 3/8 * 5/8) = 75. Tolerance 5 sd = 375. The draw is deterministic, so
  // this cannot flake; it would catch a biased mapping (e.g. an item never drawn, or the
  // item after a blocked one drawn twice as often).
  const std::vector<std::int32_t> history = {2};
  std::vector<int> drawn(10, 0);
  for (std::uint64_t example = 0; example < 24000; ++example) {
    for (std::int32_t n : sample_negatives(10, 5, history, 3, 2024, example)) ++drawn[n];
  }
  EXPECT_EQ(drawn[2], 0);
  EXPECT_EQ(drawn[5], 0);
  for (int item : {0, 1, 3, 4, 6, 7, 8, 9}) EXPECT_NEAR(drawn[item], 9000, 375) << item;
}

TEST(MetricsSampleNegatives, RejectsBadArguments) {
  EXPECT_THROW(sample_negatives(10, 10, {}, 3, 0, 0), ShapeError);
  EXPECT_THROW(sample_negatives(0, 0, {}, 3, 0, 0), ShapeError);
  EXPECT_THROW(sample_negatives(10, 1, {}, -1, 0, 0), ConfigError);
  const std::vector<std::int32_t> bad = {11};
  EXPECT_THROW(sample_negatives(10, 1, bad, 3, 0, 0), ShapeError);
}

// ---- protocol and JSON ----------------------------------------------------------------------

// Braces and brackets balance outside strings, every string closes, and no bare nan/inf.
bool looks_like_json_object(const std::string& text) {
  if (text.empty() || text.front() != '{' || text.back() != '}') return false;
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // skip the escaped character
      else if (c == '"') in_string = false;
      else if (static_cast<unsigned char>(c) < 0x20) return false;  // raw control char
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') ++depth;
    else if (c == '}' || c == ']') {
      if (--depth < 0) return false;
      if (depth == 0 && i + 1 != text.size()) return false;  // one object only
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      // Outside strings only true/false/null and exponents may appear.
      const std::string rest = text.substr(i, 5);
      if (rest.rfind("true", 0) == 0) i += 3;
      else if (rest.rfind("false", 0) == 0) i += 4;
      else if (rest.rfind("null", 0) == 0) i += 3;
      else if (c != 'e' && c != 'E') return false;
    }
  }
  return depth == 0 && !in_string;
}

TEST(ProtocolJson, HasDocumentedKeysAndIsWellFormed) {
  MetricAccumulator acc({1, 10});
  acc.add(0);
  acc.add(3);
  EvalResult result;
  result.metrics = acc.result();
  result.num_examples = acc.count();
  result.seconds = 0.5;
  const std::string json = to_json(result);
  EXPECT_TRUE(looks_like_json_object(json)) << json;
  for (const char* key :
       {"\"protocol\": {", "\"split\": \"test\"", "\"split_kind\": \"leave-one-out\"",
        "\"ranking\": \"full\"", "\"exclude_history\": true",
        "\"ties\": \"pessimistic\"", "\"seed\": 0", "\"metrics\": {", "\"HR@1\": 0.5",
        "\"HR@10\": 1", "\"MRR@10\": 0.625", "\"NDCG@1\": 0.5", "\"num_examples\": 2",
        "\"seconds\": 0.5"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " missing in " << json;
  }
  EXPECT_EQ(json.find('\n'), std::string::npos);  // one line
  EXPECT_EQ(json.find("num_negatives"), std::string::npos) << "full ranking has no negatives: " << json;
  result.protocol.ranking = "sampled";
  EXPECT_NE(to_json(result).find("\"num_negatives\": 100"), std::string::npos) << to_json(result);
}

TEST(ProtocolJson, NumbersRoundTrip) {
  EvalResult result;
  result.metrics["NDCG@10"] = 1.0 / 3;
  result.metrics["HR@10"] = 0.43067655807339306;
  result.seconds = 1e-300;
  const std::string json = to_json(result);
  for (const auto& [key, value] : result.metrics) {
    const std::string needle = "\"" + key + "\": ";
    const std::size_t at = json.find(needle);
    ASSERT_NE(at, std::string::npos) << key;
    EXPECT_EQ(std::strtod(json.c_str() + at + needle.size(), nullptr), value) << key;
  }
  const std::size_t at = json.find("\"seconds\": ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(std::strtod(json.c_str() + at + 11, nullptr), 1e-300);
}

TEST(ProtocolJson, NonFiniteIsNullAndStringsAreEscaped) {
  EvalResult result;
  result.protocol.split = "va\"l\\id\n\x01";
  result.protocol.ranking = "sampled";
  result.protocol.exclude_history = false;
  result.protocol.seed = 18446744073709551615ULL;
  result.metrics = MetricAccumulator({5}).result();  // empty: NaN means
  result.seconds = std::numeric_limits<double>::infinity();
  const std::string json = to_json(result);
  EXPECT_TRUE(looks_like_json_object(json)) << json;
  EXPECT_NE(json.find(R"("split": "va\"l\\id\n\u0001")"), std::string::npos) << json;
  EXPECT_NE(json.find("\"HR@5\": null"), std::string::npos) << json;
  EXPECT_NE(json.find("\"seconds\": null"), std::string::npos) << json;
  EXPECT_NE(json.find("\"exclude_history\": false"), std::string::npos) << json;
  EXPECT_NE(json.find("\"seed\": 18446744073709551615"), std::string::npos) << json;
  EXPECT_EQ(json.find("nan"), std::string::npos) << json;
  EXPECT_EQ(json.find("inf"), std::string::npos) << json;
}

TEST(ProtocolDescribe, FullAndSampled) {
  Protocol protocol;
  EXPECT_EQ(describe(protocol),
            "test split (leave-one-out), full ranking over all items, history excluded, "
            "ties pessimistic");
  protocol.exclude_history = false;
  EXPECT_NE(describe(protocol).find("history not excluded"), std::string::npos);
  protocol.split = "valid";
  protocol.ranking = "sampled";
  protocol.num_negatives = 100;
  protocol.seed = 42;
  EXPECT_EQ(describe(protocol),
            "valid split (leave-one-out), sampled ranking against 100 negatives not in "
            "history (seed 42), ties pessimistic");
}

TEST(ProtocolValidate, AcceptsDefaultsRejectsUnknown) {
  EXPECT_NO_THROW(validate(Protocol{}));
  Protocol sampled;
  sampled.ranking = "sampled";
  EXPECT_NO_THROW(validate(sampled));
  sampled.num_negatives = 0;
  EXPECT_THROW(validate(sampled), ConfigError);
  Protocol bad_ranking;
  bad_ranking.ranking = "partial";
  EXPECT_THROW(validate(bad_ranking), ConfigError);
  Protocol bad_ties;
  bad_ties.ties = "optimistic";
  EXPECT_THROW(validate(bad_ties), ConfigError);
  Protocol no_split;
  no_split.split = "";
  EXPECT_THROW(validate(no_split), ConfigError);
}

// ---- top-k ------------------------------------------------------------------------------

using Ranked = std::vector<std::pair<std::int32_t, float>>;

TEST(TopK, OrderAndTieBreakByLowerIndex) {
  const std::vector<float> scores = {0.5f, 0.9f, 0.5f, 0.1f, 0.9f, 0.5f};
  EXPECT_EQ(top_k(scores.data(), 6, 4, {}),
            (Ranked{{1, 0.9f}, {4, 0.9f}, {0, 0.5f}, {2, 0.5f}}));
  EXPECT_EQ(top_k(scores.data(), 6, 1, {}), (Ranked{{1, 0.9f}}));
}

TEST(TopK, SkipsExcludedAndNaN) {
  const std::vector<float> scores = {kNaN, 0.9f, 0.5f, kNaN, 0.8f, -kInf};
  const std::vector<std::int32_t> excluded = {1, 1, 2};
  EXPECT_EQ(top_k(scores.data(), 6, 3, excluded), (Ranked{{4, 0.8f}, {5, -kInf}}));
}

TEST(TopK, KLargerThanCandidatesAndZero) {
  const std::vector<float> scores = {0.2f, 0.3f, 0.1f};
  EXPECT_EQ(top_k(scores.data(), 3, 10, {}), (Ranked{{1, 0.3f}, {0, 0.2f}, {2, 0.1f}}));
  EXPECT_TRUE(top_k(scores.data(), 3, 0, {}).empty());
  EXPECT_TRUE(top_k(nullptr, 0, 5, {}).empty());
  EXPECT_THROW(top_k(scores.data(), 3, -1, {}), ShapeError);
  const std::vector<std::int32_t> bad = {3};
  EXPECT_THROW(top_k(scores.data(), 3, 1, bad), ShapeError);
}

TEST(TopK, MatchesFullSortTwin) {
  Rng gen(99);
  for (std::int32_t num_items : {1, 5, 17, 64, 333}) {
    for (int k : {1, 3, 10, 50, 400}) {
      const auto level = [&] { return static_cast<int>(gen.below(10)); };  // many ties
      const auto item = [&] { return static_cast<std::int32_t>(gen.below(static_cast<std::uint64_t>(num_items))); };
      std::vector<float> scores(num_items);
      for (auto& s : scores) s = level() == 0 ? kNaN : static_cast<float>(level());
      std::vector<std::int32_t> excluded(num_items / 4);
      for (auto& e : excluded) e = item();
      const std::set<std::int32_t> excluded_set(excluded.begin(), excluded.end());

      Ranked expected;
      for (std::int32_t i = 0; i < num_items; ++i) {
        if (!excluded_set.count(i) && !std::isnan(scores[i])) expected.emplace_back(i, scores[i]);
      }
      std::stable_sort(expected.begin(), expected.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
      if (expected.size() > static_cast<std::size_t>(k)) expected.resize(k);
      EXPECT_EQ(top_k(scores.data(), num_items, k, excluded), expected)
          << "num_items " << num_items << " k " << k;
    }
  }
}

}  // namespace
}  // namespace prunerec::recsys
