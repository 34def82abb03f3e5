// Paired comparison of two evaluations of the same users: per-user rank files and a
// seeded paired bootstrap over users.
//
//   prunerec eval --model a.prc ... --per-user a.tsv      (write_per_user)
//   prunerec eval --model b.prc ... --per-user b.tsv
//   prunerec compare --a a.tsv --b b.tsv --metric NDCG@10 --json
//
// Per-user file (v1), tab-separated, one evaluated example per line in evaluation order:
//
//   # prunerec per-user v1; <protocol, as recsys::describe writes it>
//   user	rank	NDCG@10	HR@10	...
//   A1B2C3	17	0.2442	1	...
//
// `user` is the raw user id, `rank` the 0-based rank of the target (Note [pessimistic
// ties]), the other columns the example's metric values (for reading by eye; compare
// recomputes any HR@K / NDCG@K / MRR@K from the rank). A user with several examples (a
// temporal split) has several lines; compare averages them, so the unit resampled is the
// user.
//
// Note [paired bootstrap]
// ~~~~~~~~~~~~~~~~~~~~~~~
// For users i = 1..n with metric values a_i and b_i, d_i = b_i - a_i. diff = mean(d).
// Each of R resamples draws n users with replacement (Rng(seed), stream "paired") and
// takes the mean of their d; ci95 is the 2.5% and 97.5% percentiles of the R means (type-7
// interpolation, as numpy's default), p_value the two-sided percentile-bootstrap p:
// min(1, 2 * (min(#(mean <= 0), #(mean >= 0)) + 1) / (R + 1)), never below 2 / (R + 1). A file compared with itself has every
// d_i = 0, hence diff 0, ci95 [0, 0] and p 1. A difference whose interval contains 0 is
// written "no difference" (describe_difference), in reports and docs alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "recsys/data/dataset.h"
#include "recsys/data/split.h"
#include "recsys/eval/metrics.h"

namespace prunerec::recsys {

struct PerUser {
  std::string path;             // where it was read from (for messages)
  std::string protocol;         // the header's protocol description
  std::vector<std::string> users;
  std::vector<std::int64_t> ranks;
};

// The evaluation's per-example ranks as a per-user file, published atomically.
// result.ranks and result.users must be filled (evaluate() does).
void write_per_user(const std::string& path, const EvalResult& result, const SequenceDataset& data);
std::string per_user_text(const EvalResult& result, const SequenceDataset& data);
// IoError naming the file and line on anything malformed.
PerUser read_per_user(const std::string& path);

// Value of "HR@K", "NDCG@K" or "MRR@K" for a 0-based rank; ConfigError on other names.
double metric_from_rank(const std::string& metric, std::int64_t rank);

struct PairedResult {
  std::string metric;
  std::int64_t n = 0;  // users
  double mean_a = 0, mean_b = 0, diff = 0;  // diff = mean_b - mean_a
  double lo = 0, hi = 0;                    // ci95
  double p_value = 1;
  int resamples = 0;
  std::uint64_t seed = 0;
};

// Paired bootstrap over users (Note [paired bootstrap]) of per-user values a[i], b[i].
PairedResult paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b, int resamples,
                              std::uint64_t seed);

// Per-user means of `metric` for two files of the same users in the same order; ConfigError
// naming the first line where the users differ.
PairedResult compare_per_user(const PerUser& a, const PerUser& b, const std::string& metric, int resamples,
                              std::uint64_t seed);

// {"metric","n","mean_a","mean_b","diff","ci95":[lo,hi],"p_value","resamples","seed"} on one line.
std::string to_json(const PairedResult& r);
// "no difference (diff +0.0012, 95% CI [-0.0031, +0.0055])" when the interval contains 0,
// else "b higher by 0.0123 (95% CI [...], p 0.002)" / "b lower by ...".
std::string describe_difference(const PairedResult& r);

}  // namespace prunerec::recsys
