// Per-user rank files and the paired bootstrap over users (recsys/eval/paired.h).
#include "recsys/eval/paired.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "base/error.h"
#include "tensor/rng.h"

namespace prunerec::recsys {
namespace {

std::string temp_path(const std::string& stem) { return ::testing::TempDir() + "paired_test_" + stem + ".tsv"; }

SequenceDataset dataset(int users) {
  SequenceDataset d;
  for (int u = 0; u < users; ++u) {
    d.users.push_back("user" + std::to_string(u));
    d.sequences.push_back({0, 1, 2});
  }
  return d;
}

EvalResult result_with_ranks(const std::vector<std::int64_t>& ranks) {
  EvalResult r;
  r.ranks = ranks;
  for (std::size_t i = 0; i < ranks.size(); ++i) r.users.push_back(static_cast<std::int32_t>(i));
  r.num_examples = static_cast<std::int64_t>(ranks.size());
  return r;
}

TEST(PerUser, WritesAndReadsBackEveryRank) {
  const SequenceDataset d = dataset(4);
  const std::string path = temp_path("roundtrip");
  write_per_user(path, result_with_ranks({0, 5, 12, 3}), d);
  const PerUser p = read_per_user(path);
  EXPECT_EQ(p.users, (std::vector<std::string>{"user0", "user1", "user2", "user3"}));
  EXPECT_EQ(p.ranks, (std::vector<std::int64_t>{0, 5, 12, 3}));
  EXPECT_NE(p.protocol.find("test"), std::string::npos) << p.protocol;
  EXPECT_DOUBLE_EQ(metric_from_rank("NDCG@10", 0), 1.0);
  EXPECT_DOUBLE_EQ(metric_from_rank("HR@10", 12), 0.0);
  EXPECT_DOUBLE_EQ(metric_from_rank("NDCG@10", 3), 1.0 / std::log2(5.0));
  EXPECT_THROW(metric_from_rank("AUC", 1), ConfigError);
  EXPECT_THROW(metric_from_rank("HR@0", 1), ConfigError);
}

TEST(PerUser, MalformedFilesNameTheLine) {
  const std::string path = temp_path("bad");
  std::ofstream(path) << "# prunerec per-user v1; x\nuser\trank\nu1\t3\nu2\tseven\n";
  try {
    read_per_user(path);
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":4: rank must be a non-negative integer, got 'seven'"),
              std::string::npos)
        << e.what();
  }
  std::ofstream(path) << "user\trank\n";
  EXPECT_THROW(read_per_user(path), IoError);
}

// A file compared with itself: every paired difference is 0, so diff 0, interval [0, 0], p 1.
TEST(PairedBootstrap, AFileAgainstItselfIsExactlyZero) {
  const SequenceDataset d = dataset(50);
  std::vector<std::int64_t> ranks;
  Rng rng(3);
  for (int i = 0; i < 50; ++i) ranks.push_back(static_cast<std::int64_t>(rng.below(40)));
  const std::string path = temp_path("self");
  write_per_user(path, result_with_ranks(ranks), d);
  const PerUser p = read_per_user(path);
  const PairedResult r = compare_per_user(p, p, "NDCG@10", 2000, 7);
  EXPECT_EQ(r.n, 50);
  EXPECT_EQ(r.mean_a, r.mean_b);
  EXPECT_EQ(r.diff, 0.0);
  EXPECT_EQ(r.lo, 0.0);
  EXPECT_EQ(r.hi, 0.0);
  EXPECT_EQ(r.p_value, 1.0);
  EXPECT_EQ(describe_difference(r).rfind("no difference", 0), 0u) << describe_difference(r);
  EXPECT_EQ(to_json(r).rfind("{\"metric\": \"NDCG@10\", \"n\": 50, ", 0), 0u) << to_json(r);
  EXPECT_NE(to_json(r).find("\"diff\": 0, \"ci95\": [0, 0], \"p_value\": 1"), std::string::npos) << to_json(r);
}

// b = a + 0.05 + noise over 400 users: the interval covers the true shift 0.05 and
// excludes 0; the same seed gives the same bits, another seed a different interval.
TEST(PairedBootstrap, KnownShiftIsCovered) {
  std::vector<double> a, b;
  Rng rng(11);
  for (int i = 0; i < 400; ++i) {
    const double x = rng.uniform();
    a.push_back(x);
    b.push_back(x + 0.05 + 0.2 * (rng.uniform() - 0.5));  // noise mean 0, sd 0.058
  }
  const PairedResult r = paired_bootstrap(a, b, 4000, 1);
  EXPECT_LT(r.lo, 0.05);
  EXPECT_GT(r.hi, 0.05);
  EXPECT_GT(r.lo, 0.0);
  // Standard error of the mean difference: 0.058 / sqrt(400) = 0.0029, so the 95% interval
  // is about 0.011 wide; 0.03 leaves room for the sample and the resampling.
  EXPECT_LT(r.hi - r.lo, 0.03);
  EXPECT_LT(r.p_value, 0.01);
  EXPECT_GE(r.p_value, 2.0 / 4001);  // the floor of a p-value from 4000 resamples
  EXPECT_EQ(describe_difference(r).rfind("b higher by", 0), 0u) << describe_difference(r);
  const PairedResult again = paired_bootstrap(a, b, 4000, 1), other = paired_bootstrap(a, b, 4000, 2);
  EXPECT_EQ(again.lo, r.lo);
  EXPECT_EQ(again.hi, r.hi);
  EXPECT_NE(other.lo, r.lo);
}

TEST(PairedBootstrap, UsersMustMatchAndTheFirstMismatchIsNamed) {
  PerUser a{"a.tsv", "p", {"u1", "u2", "u3"}, {1, 2, 3}};
  PerUser b{"b.tsv", "p", {"u1", "x2", "u3"}, {1, 2, 3}};
  try {
    compare_per_user(a, b, "HR@10", 100, 1);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("line 4 is user 'u2' in a.tsv but 'x2' in b.tsv"), std::string::npos)
        << e.what();
  }
  PerUser shorter{"c.tsv", "p", {"u1", "u2"}, {1, 2}};
  try {
    compare_per_user(a, shorter, "HR@10", 100, 1);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("the first unmatched is line 5 (user 'u3' in a.tsv)"), std::string::npos)
        << e.what();
  }
}

// A user with several examples counts once, with the mean of its examples.
TEST(PairedBootstrap, UsersWithSeveralExamplesAreAveraged) {
  PerUser a{"a", "p", {"u1", "u1", "u2"}, {0, 100, 0}};
  PerUser b{"b", "p", {"u1", "u1", "u2"}, {0, 0, 0}};
  const PairedResult r = compare_per_user(a, b, "HR@10", 100, 1);
  EXPECT_EQ(r.n, 2);
  EXPECT_DOUBLE_EQ(r.mean_a, 0.75);  // u1: (1 + 0) / 2, u2: 1
  EXPECT_DOUBLE_EQ(r.mean_b, 1.0);
}

}  // namespace
}  // namespace prunerec::recsys
