#include "apps/pipeline.h"

#include <algorithm>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "nn/text_proto.h"
#include "base/format.h"
#include "prune/report.h"
#include "tensor/parallel.h"

namespace prunerec::apps {

recsys::TrainResult train_from_recipe(const pb::Recipe& recipe, const LoadedData& d, const std::string& data_path,
                                      const std::string& out, const TrainOptions& options) {
  nn::Transformer net(recipe.model(), DType::f32, recipe.train().seed());
  if (!options.quiet)
    std::cerr << options.phase << ": " << net.num_layers() << " layers, hidden " << net.hidden_size() << ", "
              << format_grouped(net.non_embedding_parameters()) << " non-embedding parameters; seed " << recipe.train().seed()
              << ", " << plural(num_threads(), "thread") << "\n";
  recsys::TrainSpec spec;
  spec.data = &d.data;
  spec.split = &d.split;
  spec.config = recipe.train();
  spec.out_path = out;
  spec.resume = options.resume;
  spec.catalog = &d.data.items;
  spec.stop = cli::stop_flag();
  spec.phase = options.phase;
  spec.progress = options.quiet ? Progress::Mode::kSilent : Progress::Mode::kAuto;
  spec.metadata["recipe"] = nn::to_short_text_proto(recipe);
  spec.metadata["seed"] = std::to_string(recipe.train().seed());
  spec.metadata["threads"] = std::to_string(num_threads());
  data_config_to_metadata(d.config, data_path, spec.metadata);
  return recsys::train_model(net, spec);
}

prune::PruneRun make_prune_run(const LoadedData& d, const std::string& data_path, const std::string& teacher,
                               const std::string& out_dir, const pb::Schedule& schedule, bool quiet, bool latency,
                               const std::string& command) {
  prune::PruneRun run;
  run.data = &d.data;
  run.split = &d.split;
  run.teacher_path = teacher;
  run.out_dir = out_dir;
  run.schedule = schedule;
  run.latency = latency;
  run.stop = cli::stop_flag();
  run.progress = quiet ? Progress::Mode::kSilent : Progress::Mode::kAuto;
  run.data_description = data_path + " (" + d.summary + ")";
  run.command = command;
  data_config_to_metadata(d.config, data_path, run.metadata);
  return run;
}

std::vector<std::string> parse_controls(const std::string& flag) {
  if (flag.empty()) return {};
  const std::vector<std::string>& names = prune::control_names();
  if (flag == "all") return names;
  std::string c = flag;
  for (char& ch : c)
    if (ch == ',') ch = ' ';
  std::istringstream is(c);
  std::vector<std::string> out;
  for (std::string w; is >> w;) {
    if (std::find(names.begin(), names.end(), w) == names.end()) {
      std::string known;
      for (const std::string& n : names) known += n + ", ";
      throw cli::UsageError("--controls: unknown control '" + w + "' (" + known + "or all)");
    }
    out.push_back(w);
  }
  return out;
}

void run_controls(const prune::PruneRun& run, pb::Report& report, const std::vector<std::string>& controls) {
  if (controls.empty()) return;
  report.clear_controls();
  for (const auto& name : controls) {
    if (run.progress != Progress::Mode::kSilent) std::cerr << "control " << name << ":\n";  // --quiet: results only
    *report.add_controls() = prune::run_control(run, report, name);
    prune::write_report(run.out_dir, report);
  }
}

std::string command_line(const std::string& command, const std::vector<std::string>& args) {
  std::ostringstream os;
  os << "prunerec " << command;
  for (const auto& a : args) os << " " << a;
  return os.str();
}

}  // namespace prunerec::apps
