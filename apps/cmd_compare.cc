// prunerec compare: paired bootstrap over users of two per-user rank files
// (recsys/eval/paired.h, Note [paired bootstrap]).
#include <iostream>

#include "apps/commands.h"
#include "apps/common.h"
#include "recsys/eval/paired.h"

namespace prunerec::apps {

int cmd_compare(const Args& args) {
  cli::Flags flags("compare",
                   "Compare two evaluations of the same users (files from `prunerec eval --per-user`): the mean "
                   "difference b - a of a metric with a 95% paired-bootstrap interval over users and its p-value. An "
                   "interval that contains 0 is reported as \"no difference\".",
                   "prunerec compare --a runs/ml1m/teacher.users.tsv --b runs/ml1m/final.users.tsv --metric NDCG@10 --json");
  std::string a_path, b_path, metric = "NDCG@10";
  int resamples = 10000;
  std::uint64_t seed = 1;
  bool json = false;
  flags.add("a", &a_path, "per-user file of the first evaluation");
  flags.add("b", &b_path, "per-user file of the second evaluation (diff = b - a)");
  flags.add("metric", &metric, "HR@K, NDCG@K or MRR@K, recomputed from the ranks");
  flags.add("resamples", &resamples, "bootstrap resamples");
  flags.add("seed", &seed, "seed of the resampling");
  flags.add_switch("json", &json, "print one JSON object");
  flags.parse(args);
  if (a_path.empty() || b_path.empty()) throw cli::UsageError("compare: --a and --b are required");
  if (resamples < 1) throw cli::UsageError("compare: --resamples must be positive");
  const recsys::PerUser a = recsys::read_per_user(a_path), b = recsys::read_per_user(b_path);
  if (a.protocol != b.protocol)
    std::cerr << "compare: warning: the files were evaluated under different protocols:\n  a: " << a.protocol
              << "\n  b: " << b.protocol << "\n";
  const recsys::PairedResult r = recsys::compare_per_user(a, b, metric, resamples, seed);
  if (json) {
    std::cout << recsys::to_json(r) << "\n";
  } else {
    std::cout << metric << " over " << r.n << " users: a " << r.mean_a << ", b " << r.mean_b << "; "
              << recsys::describe_difference(r) << " (" << r.resamples << " resamples, seed " << r.seed << ")\n";
  }
  return 0;
}

}  // namespace prunerec::apps
