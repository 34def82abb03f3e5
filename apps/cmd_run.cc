// prunerec run: the main job.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/common.h"
#include "nn/text_proto.h"
#include "prune/report.h"
#include "prune/schedule.h"
#include "recsys/data/synthetic.h"
#include "recsys/eval/evaluator.h"
#include "recsys/recommender.h"
#include "recsys/trainer.h"
#include "tensor/parallel.h"
#include "tensor/util/atomic_file.h"

namespace prunerec::apps {
namespace {

namespace fs = std::filesystem;

// The built-in data set, written as "user item item ..." lines so every other command can
// read it again (it is recorded as the model's data path).
std::string write_synthetic(const std::string& dir, std::uint64_t seed) {
  const recsys::SequenceDataset d =
      recsys::make_synthetic({.users = 4000, .items = 1000, .clusters = 25, .mean_length = 14, .seed = seed});
  std::ostringstream os;
  for (std::size_t u = 0; u < d.sequences.size(); ++u) {
    os << u + 1;
    for (std::int32_t i : d.sequences[u]) os << ' ' << i + 1;
    os << '\n';
  }
  const std::string path = (fs::path(dir) / "synthetic.txt").string();
  write_file_atomic(path, os.str());
  std::ostringstream titles;
  titles << "item_id\ttitle\n";
  for (std::int32_t i = 0; i < d.items.size(); ++i) titles << i + 1 << '\t' << d.items.title(i) << '\n';
  write_file_atomic((fs::path(dir) / "synthetic_titles.tsv").string(), titles.str());
  return path;
}

}  // namespace

int cmd_run(const Args& args) {
  cli::Flags flags("run",
                   "The whole pipeline: read (or generate) the data, train the teacher, run the three-stage\n"
                   "prune-and-distill schedule and print the ledger. Without --data it uses a built-in seeded\n"
                   "synthetic data set (popularity skew, item clusters, order effects). Re-running resumes.",
                   "prunerec run --data ../shared/data/amazon-beauty/s3rec/Beauty.txt --out runs/beauty");
  DataFlags data;
  data.add_to(flags, false);
  std::string out = "runs/default", config = "teacher", schedule = "schedule", controls;
  std::uint64_t seed = 42;
  int threads = 0, epochs = 0, max_len = 0;
  bool quiet = false, no_latency = false;
  flags.add("out", &out, "output folder");
  flags.add("config", &config, "teacher recipe: a file or preset (teacher, small)");
  flags.add("schedule", &schedule, "prune schedule: a file or the preset 'schedule'");
  flags.add("seed", &seed, "seed of the data generator, the teacher and the schedule");
  flags.add("epochs", &epochs, "teacher epochs (default: the recipe's; 12 on the built-in data)");
  flags.add("max-len", &max_len, "longest history the teacher reads (default: the recipe's)");
  flags.add("controls", &controls, "also run controls: scratch, random, no-recovery, or all");
  flags.add("threads", &threads, "worker threads (default: all cores)");
  flags.add_switch("no-latency", &no_latency, "skip latency measurements");
  flags.add_switch("quiet", &quiet, "no progress output");
  flags.parse(args);
  if (flags.given("epochs") && epochs <= 0) throw cli::UsageError("run: --epochs must be positive");
  if (flags.given("max-len") && max_len <= 0) throw cli::UsageError("run: --max-len must be positive");
  if (flags.given("threads") && threads <= 0) throw cli::UsageError("run: --threads must be positive");
  if (threads > 0) set_num_threads(threads);
  fs::create_directories(out);
  const bool builtin = data.path.empty();
  if (builtin) {
    data.path = write_synthetic(out, seed);
    data.titles = (fs::path(out) / "synthetic_titles.tsv").string();
    if (epochs == 0) epochs = 12;
    std::cerr << "data: built-in synthetic data set written to " << data.path << "\n";
  }

  // 1. The teacher.
  pb::Recipe recipe;
  nn::parse_text_proto(preset_or_file(config, "config"), config, &recipe);
  recipe.mutable_train()->set_seed(seed);
  if (epochs > 0) recipe.mutable_train()->set_epochs(epochs);
  if (max_len > 0) recipe.mutable_model()->set_max_len(max_len);
  LoadedData d = load_data(data, recipe.data());
  *recipe.mutable_data() = d.config;
  recipe.mutable_model()->set_vocab_size(d.data.items.size());
  validate_recipe(recipe, config);
  std::cerr << "data: " << d.summary << "\n";
  const std::string teacher_path = (fs::path(out) / "teacher.prc").string();
  {
    nn::Transformer net(recipe.model(), DType::f32, seed);
    std::cerr << "teacher: " << net.num_layers() << " layers, hidden " << net.hidden_size() << ", "
              << net.non_embedding_parameters() << " non-embedding parameters\n";
    recsys::TrainSpec spec;
    spec.data = &d.data;
    spec.split = &d.split;
    spec.config = recipe.train();
    spec.out_path = teacher_path;
    spec.catalog = &d.data.items;
    spec.stop = cli::stop_flag();
    spec.phase = "teacher";
    spec.progress = quiet ? Progress::Mode::kSilent : Progress::Mode::kAuto;
    spec.metadata["recipe"] = nn::to_short_text_proto(recipe);
    spec.metadata["seed"] = std::to_string(seed);
    data_config_to_metadata(d.config, data.path, spec.metadata);
    recsys::train_model(net, spec);
  }

  // 2. The schedule (and controls).
  const recsys::Recommender rec = recsys::load_recommender(teacher_path);
  prune::PruneRun run;
  run.data = &d.data;
  run.split = &d.split;
  run.teacher_path = teacher_path;
  run.out_dir = (fs::path(out) / "prune").string();
  run.schedule = prune::parse_schedule(preset_or_file(schedule, "schedule"), schedule);
  run.schedule.set_seed(seed);
  run.latency = !no_latency;
  run.stop = cli::stop_flag();
  run.progress = quiet ? Progress::Mode::kSilent : Progress::Mode::kAuto;
  run.data_description = data.path + " (" + d.summary + ")";
  std::ostringstream cmd;
  cmd << "prunerec run";
  for (const auto& a : args) cmd << " " << a;
  run.command = cmd.str();
  data_config_to_metadata(d.config, data.path, run.metadata);
  pb::Report report = prune::run_schedule(run);
  if (!controls.empty()) {
    std::vector<std::string> wanted;
    if (controls == "all") {
      wanted = {"scratch", "random", "no-recovery"};
    } else {
      std::string c = controls;
      for (char& ch : c)
        if (ch == ',') ch = ' ';
      std::istringstream is(c);
      for (std::string w; is >> w;) wanted.push_back(w);
    }
    report.clear_controls();
    for (const auto& name : wanted) {
      std::cerr << "control " << name << ":\n";
      *report.add_controls() = prune::run_control(run, report, name);
      prune::write_report(run.out_dir, report);
    }
  }
  std::cout << prune::report_markdown(report) << "\nOutputs: " << out << "/teacher.prc, " << run.out_dir
            << "/final.prc, " << run.out_dir << "/report.md (charts beside it)\n";
  return 0;
}

}  // namespace prunerec::apps
