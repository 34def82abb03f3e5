// The subcommands of `prunerec`. Each takes the arguments after its name and returns the
// process exit code; errors are thrown (main maps them to exit codes 1 and 2).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "recsys/eval/metrics.h"

namespace prunerec::apps {

using Args = std::vector<std::string>;

int cmd_data(const Args& args);       // data stats
int cmd_train(const Args& args);
int cmd_eval(const Args& args);
int cmd_recommend(const Args& args);
int cmd_inspect(const Args& args);
int cmd_prune(const Args& args);
int cmd_report(const Args& args);   // rebuild report.md and charts from report.json
int cmd_run(const Args& args);      // the whole pipeline: data, teacher, schedule, ledger
int cmd_bench(const Args& args);    // training / inference speed on the reference configs
int cmd_export(const Args& args);   // safetensors + config.json
int cmd_compare(const Args& args);  // paired bootstrap of two per-user rank files
int cmd_import(const Args& args);   // a Hugging Face checkpoint as a model file
int cmd_forward(const Args& args);  // logits of one token sequence
int cmd_tokenize(const Args& args); // encode / decode with a tokenizer file

// Human-readable metric table (NDCG/HR/MRR by K) used by several commands.
std::string metrics_table(const std::map<std::string, double>& metrics);

// What `train` prints at the end, in item-token and title mode alike: the run and the best
// model's test result, as one JSON object or as text.
struct TrainSummary {
  std::string model;             // the --out file
  std::string mode;              // JSON "mode" when not empty ("title")
  std::uint64_t seed = 0;
  std::int64_t epochs_run = 0, best_epoch = 0, steps = 0;
  double seconds = 0;
  std::string rate_key;          // JSON key of the rate: "positions_per_s", "target_tokens_per_s"
  std::string rate_unit;         // its text: "positions/s", "target tokens/s"
  double rate = 0;
  std::map<std::string, double> valid;  // the best epoch's validation metrics
};
void print_train_summary(const TrainSummary& s, const recsys::EvalResult& test, bool json);

}  // namespace prunerec::apps
