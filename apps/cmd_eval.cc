// prunerec eval
#include <cstdio>
#include <iostream>
#include <set>
#include <sstream>

#include "apps/commands.h"
#include "apps/common.h"
#include "apps/title.h"
#include "base/format.h"
#include "base/json.h"
#include "recsys/eval/evaluator.h"
#include "recsys/eval/paired.h"
#include "recsys/recommender.h"
#include "tensor/parallel.h"

namespace prunerec::apps {

std::string metrics_table(const std::map<std::string, double>& metrics) {
  std::ostringstream os;
  // The cut-offs present (item-token mode: 1, 5, 10, 20; title mode adds 3).
  std::set<int> ks;
  for (const auto& [name, value] : metrics)
    if (name.rfind("HR@", 0) == 0) ks.insert(std::stoi(name.substr(3)));
  if (ks.empty()) ks = {1, 5, 10, 20};
  os << "        ";
  for (int k : ks) os << "     @" << k << (k < 10 ? " " : "");
  os << "\n";
  for (const char* name : {"NDCG", "HR", "MRR"}) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%-8s", name);
    os << buf;
    for (int k : ks) {
      const auto it = metrics.find(std::string(name) + "@" + std::to_string(k));
      std::snprintf(buf, sizeof buf, " %7.4f", it == metrics.end() ? 0.0 : it->second);
      os << buf;
    }
    os << "\n";
  }
  return os.str();
}

void print_train_summary(const TrainSummary& s, const recsys::EvalResult& test, bool json) {
  if (json) {
    Json j;
    j.begin_object().key("model").value(s.model);
    if (!s.mode.empty()) j.key("mode").value(s.mode);
    j.key("seed").value(static_cast<std::int64_t>(s.seed))
        .key("epochs_run").value(s.epochs_run)
        .key("best_epoch").value(s.best_epoch)
        .key("steps").value(s.steps)
        .key("seconds").value(s.seconds)
        .key(s.rate_key).value(s.rate)
        .key("valid").object(s.valid)
        .key("test").raw(recsys::to_json(test))
        .end_object();
    std::cout << j.str() << "\n";
    return;
  }
  std::cout << "best epoch " << s.best_epoch << " of " << s.epochs_run << " (" << s.steps << " steps, "
            << format_duration(s.seconds) << ", " << format_count(s.rate) << " " << s.rate_unit << ")\n"
            << "model: " << s.model << "\n"
            << recsys::describe(test.protocol) << ":\n"
            << metrics_table(test.metrics);
}

int cmd_eval(const Args& args) {
  cli::Flags flags("eval", "Evaluate a model: full ranking over all items (or sampled), NDCG/HR/MRR at 1, 5, 10, 20.",
                   "prunerec eval --model runs/beauty/teacher.prc --data ../shared/data/amazon-beauty/s3rec/Beauty.txt --split test --json");
  DataFlags data;
  data.add_to(flags, false);
  std::string model_path, split = "test", ranking = "full", baseline;
  int negatives = 100, batch = 256, threads = 0;
  std::uint64_t seed = 0;
  bool json = false, keep_history = false;
  std::string per_user;
  flags.add("model", &model_path, "model file (or use --baseline)");
  flags.add("baseline", &baseline, "evaluate a baseline instead of a model: popularity (training-set counts)");
  flags.choices("baseline", {"popularity"});
  flags.add("split", &split, "valid or test");
  flags.choices("split", {"valid", "test"});
  flags.add("ranking", &ranking, "full (all items) or sampled (seeded negatives)");
  flags.choices("ranking", {"full", "sampled"});
  flags.add("negatives", &negatives, "negatives per example under --ranking sampled; fewer than the catalogue's items");
  flags.range("negatives", 1);
  flags.add("seed", &seed, "seed of the sampled negatives");
  flags.add_switch("keep-history", &keep_history, "do not exclude the user's history items from the ranking");
  std::string item_table = "f32";
  flags.add("item-table", &item_table, "full ranking: score with the item table in f32 or bf16 (as a bf16 serving table would)");
  flags.add("batch-size", &batch, "histories scored at once");
  flags.range("batch-size", 1);
  flags.add("threads", &threads, "worker threads (default: all cores)");
  flags.range("threads", 1);
  flags.add_switch("json", &json, "print one JSON object with protocol and metrics");
  flags.add("per-user", &per_user, "also write each user's rank of the target to FILE (for prunerec compare)");
  int beams = 20;
  std::int64_t limit = 0;
  flags.add("beams", &beams, "title-mode models: beams of the constrained beam search (the paper's 20)");
  flags.range("beams", 1);
  flags.add("limit", &limit, "title-mode models: evaluate only the first N examples of the split (default: all)");
  flags.range("limit", 0);
  flags.parse(args);
  if (threads > 0) set_num_threads(threads);
  if (!model_path.empty() && is_title_model(model_path)) {
    // Title mode: rank of the target among the generated titles (docs/title-mode.md).
    for (const char* f : {"ranking", "negatives", "seed", "keep-history", "batch-size", "item-table"})
      if (flags.given(f))
        throw cli::UsageError(std::string("eval: --") + f + " does not apply to a title-mode model (" + model_path +
                              " writes titles under a constrained beam search)");
    refuse_data_parallel("eval on a title-mode model");
    TitleModel m = load_title_model(model_path);
    LoadedData d = load_model_data(data, m.catalog, m.manifest.metadata(), model_path, "eval");
    recsys::TitleEvalOptions to;
    to.split = split;
    to.beams.beams = beams;
    to.limit = limit;
    const auto& examples = split == "test" ? d.split.test : d.split.valid;
    Progress progress(std::cerr, "eval " + split,
                      limit > 0 ? std::min<std::int64_t>(limit, static_cast<std::int64_t>(examples.size()))
                                : static_cast<std::int64_t>(examples.size()));
    const recsys::EvalResult r = recsys::evaluate_titles(*m.net, d.data, d.split, *m.task, to, &progress);
    progress.clear();
    if (!per_user.empty()) recsys::write_per_user(per_user, r, d.data);
    if (json)
      std::cout << recsys::to_json(r) << "\n";
    else
      std::cout << recsys::describe(r.protocol) << ", " << r.num_examples << " examples:\n" << metrics_table(r.metrics);
    return 0;
  }
  if (flags.given("beams") || flags.given("limit"))
    throw cli::UsageError(std::string("eval: --") + (flags.given("beams") ? "beams" : "limit") +
                          " applies to title-mode models only");
  if (model_path.empty() == baseline.empty())
    throw cli::UsageError("eval: give either --model or --baseline popularity");
  // Flags that would be ignored are refused, not dropped silently.
  if (ranking == "full" && (flags.given("negatives") || flags.given("seed")))
    throw cli::UsageError(std::string("eval: --") + (flags.given("negatives") ? "negatives" : "seed") +
                          " applies to --ranking sampled only (full ranking ranks every item)");
  if (ranking == "sampled" && keep_history)
    throw cli::UsageError("eval: --keep-history applies to --ranking full only (sampled negatives are never history items)");
  recsys::EvalOptions eo;
  eo.protocol.split = split;
  eo.protocol.ranking = ranking;
  eo.protocol.num_negatives = negatives;
  eo.protocol.seed = seed;
  eo.protocol.exclude_history = !keep_history;
  eo.protocol.item_table = item_table;
  if (!baseline.empty() && flags.given("item-table"))
    throw cli::UsageError("eval: --item-table applies to a model's scores, not to --baseline popularity");
  recsys::validate(eo.protocol);  // a wrong --item-table, or bf16 with --ranking sampled, is named here
  eo.batch_size = batch;
  recsys::EvalResult r;
  if (!baseline.empty()) {
    if (data.path.empty()) throw cli::UsageError("eval: --baseline needs --data");
    LoadedData d = load_data(data, pb::DataConfig());
    eo.max_len = 200;
    Progress progress(std::cerr, "eval " + split, static_cast<std::int64_t>((split == "test" ? d.split.test : d.split.valid).size()));
    r = recsys::evaluate(recsys::popularity_scorer(d.split), d.data, d.split, eo, &progress);
    if (!per_user.empty()) recsys::write_per_user(per_user, r, d.data);
  } else {
    recsys::Recommender rec = recsys::load_recommender(model_path);
    LoadedData d = load_model_data(data, rec.catalog, rec.manifest.metadata(), model_path, "eval");
    eo.max_len = static_cast<int>(rec.net->config().max_len());
    Progress progress(std::cerr, "eval " + split, static_cast<std::int64_t>((split == "test" ? d.split.test : d.split.valid).size()));
    r = recsys::evaluate_model(*rec.net, d.data, d.split, eo, &progress);
    if (!per_user.empty()) recsys::write_per_user(per_user, r, d.data);
  }
  if (json) {
    std::cout << recsys::to_json(r) << "\n";
  } else {
    std::cout << (baseline.empty() ? "" : "popularity baseline, ") << recsys::describe(r.protocol) << ", "
              << r.num_examples << " examples:\n" << metrics_table(r.metrics);
    if (r.short_of_negatives > 0)
      std::cout << "note: " << r.short_of_negatives << " of " << r.num_examples << " examples had fewer than "
                << negatives << " items left to sample (their history covers the rest) and were ranked against all of them\n";
  }
  return 0;
}

}  // namespace prunerec::apps
