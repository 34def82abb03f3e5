// What a new user meets on the command line (issue 18), through the real executable:
// each test would have failed before its fix. Flags and positionals (item 1), Ctrl-C in
// evaluation and calibration (2), the data path a model records (3), output targets checked
// before any work (4), sampled negatives (5), data stats (7), resuming and extending (8),
// help and version (11), presets by kind and files first (15).
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/comm.h"
#include "apps/presets.h"
#include "nn/checkpoint_file.h"
#include "prune/importance.h"
#include "recsys/data/synthetic.h"
#include "recsys/progress.h"
#include "tests/apps/cli_runner.h"
#include "tests/apps/fixtures.h"

namespace prunerec::apps_test {
namespace {

namespace fs = std::filesystem;

std::string cmd(const std::vector<std::string>& args) {
  std::string s = "prunerec";
  for (const auto& a : args) s += " " + a;
  return s;
}

// A failing command: its exit code and that its last stderr line mentions each string.
void expect_fails(const std::vector<std::string>& args, int exit_code, const std::vector<std::string>& mentions,
                  const std::string& cwd = "") {
  const RunResult r = run_prunerec(args, std::chrono::seconds(120), cwd);
  EXPECT_EQ(r.exit_code, exit_code) << cmd(args) << "\n" << r.err;
  const auto lines = r.err_lines();
  ASSERT_FALSE(lines.empty()) << cmd(args) << ": nothing on stderr";
  for (const auto& m : mentions) EXPECT_NE(lines.back().find(m), std::string::npos) << cmd(args) << ": '" << m << "' not in:\n" << r.err;
}

// ---- 1. flags and positionals --------------------------------------------------------

TEST(Cli, ReportTakesItsFolderAsFlagOrArgument) {
  Workdir dir;
  fs::create_directories(dir.path("prune"));
  const std::string missing = (fs::path(dir.path("prune")) / "report.json").string();
  // Before: "--dir needs a value" (exit 2) and "--print/report.json". Now both read DIR.
  expect_fails({"report", "--dir", dir.path("prune"), "--print"}, 1, {missing});
  expect_fails({"report", dir.path("prune"), "--print"}, 1, {missing});
  expect_fails({"report", "--print", "--dir=" + dir.path("prune")}, 1, {missing});
  expect_fails({"report", dir.path("prune"), "--dir", dir.path("prune")}, 2, {"--dir is given twice"});
  expect_fails({"report", "--dir", "--print"}, 2, {"--dir needs a value"});
}

TEST(Cli, RangesChoicesAndRepeatedFlags) {
  Workdir dir;
  const std::string data = dir.write("seq.txt", synthetic_user_seq());
  expect_fails({"data", "stats", "--data", data, "--kcore", "-1"}, 2, {"--kcore must be at least 0, got -1"});
  expect_fails({"data", "stats", "--data", data, "--data", data}, 2, {"--data is given twice"});
  expect_fails({"data", "stats", "--data", data, "--split-kind", "leave_one_out"}, 2,
               {"--split-kind must be one of leave-one-out, temporal"});
  expect_fails({"data", "summary", "--data", data}, 2, {"WHAT must be one of stats"});
  expect_fails({"recommend", "--model", shared_teacher().model, "--history", "100", "-k=0"}, 2,
               {"--k must be at least 1, got 0"});
  const RunResult r = run_prunerec({"recommend", "--model", shared_teacher().model, "--history", "100 101", "-k=3", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const RunResult same = run_prunerec({"recommend", "--model", shared_teacher().model, "--history", "100 101", "--k", "3", "--json"});
  EXPECT_EQ(r.out, same.out);
}

// ---- 2. Ctrl-C outside training steps ----------------------------------------------

TEST(Cli, CtrlCStopsAnEvaluationWithExitCode130) {
  Workdir dir;
  // Long enough to be running when the signal comes (seconds of ranking on one thread).
  const recsys::SequenceDataset big =
      recsys::make_synthetic({.users = small_test_mode() ? 40000 : 150000, .items = 20000, .clusters = 50, .mean_length = 8, .seed = 3});
  std::ostringstream os;
  for (std::size_t u = 0; u < big.sequences.size(); ++u) {
    os << u + 1;
    for (std::int32_t i : big.sequences[u]) os << ' ' << i + 1;
    os << '\n';
  }
  const std::string data = dir.write("big.txt", os.str());
  Process p({"eval", "--baseline", "popularity", "--data", data, kThreads}, "eval_interrupted");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_FALSE(p.finished()) << "the evaluation ended before the signal; make the fixture larger";
  p.signal(SIGINT);
  const RunResult r = p.wait(std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find("stopping"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("stopped on request"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");  // no partial result
}

// Calibration and importance scoring check the same request (in process: the loops of
// prune/importance.cc through its public functions).
TEST(Cli, CalibrationAndScoringStopOnRequest) {
  const recsys::SequenceDataset data = recsys::make_synthetic({.users = 40, .items = 20, .clusters = 2, .mean_length = 6, .seed = 2});
  pb::ModelConfig mc;
  mc.set_vocab_size(20);
  mc.set_hidden(16);
  mc.set_head_dim(8);
  mc.set_max_len(8);
  mc.set_num_layers(1);
  mc.mutable_layer_defaults()->set_num_heads(2);
  mc.mutable_layer_defaults()->set_num_kv_heads(1);
  mc.mutable_layer_defaults()->set_mlp_width(16);
  nn::Transformer net(mc, DType::f32, 1);
  pb::CalibrationConfig cc;
  cc.set_sequences(16);
  cc.set_batch_size(8);
  const prune::Calibration calib = prune::make_calibration(data.sequences, 8, cc);
  EXPECT_NO_THROW(prune::calibration_loss(net, calib));
  request_stop();
  EXPECT_THROW(prune::calibration_loss(net, calib), Interrupted);
  EXPECT_THROW(prune::mlp_scores(net, calib, "magnitude", {8}, 1), Interrupted);
  clear_stop_request();
  EXPECT_NO_THROW(prune::mlp_scores(net, calib, "magnitude", {8}, 1));
}

// ---- 3, 8, 15: a run in its own folder --------------------------------------------

TEST(Cli, ModelRecordsItsDataPathResolvedAndRunsResumeAndExtendClearly) {
  Workdir dir;
  fs::create_directories(dir.path("work"));
  const std::string work = dir.path("work");
  std::ofstream(fs::path(work) / "seq.txt") << synthetic_user_seq();
  // A file named like a preset: the file wins (before: the "small" preset, silently).
  std::ofstream(fs::path(work) / "small") << tiny_recipe(1, 0);
  const std::vector<std::string> train = {"train", "--data", "seq.txt", "--config", "small", "--out", "m.prc", kThreads};
  const RunResult first = run_prunerec(train, std::chrono::seconds(300), work);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("--config: reading the file small"), std::string::npos) << first.err;
  const pb::Manifest m = nn::read_checkpoint_manifest((fs::path(work) / "m.prc").string());
  EXPECT_EQ(m.config().hidden(), 16) << "the preset was read instead of the file";
  // 3. The data path is stored resolved, so the model works from any folder.
  const std::string recorded = m.metadata().at("data.path");
  EXPECT_EQ(recorded, (fs::path(work) / "seq.txt").lexically_normal().string());
  const RunResult eval = run_prunerec({"eval", "--model", "work/m.prc", kThreads}, std::chrono::seconds(120), dir.root());
  EXPECT_EQ(eval.exit_code, 0) << eval.err;

  // 8. The finished run says so, and --epochs extends it.
  const RunResult again = run_prunerec(train, std::chrono::seconds(300), work);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("is finished (1 epoch,"), std::string::npos) << again.err;
  EXPECT_EQ(again.err.find("resuming"), std::string::npos) << again.err;
  std::vector<std::string> longer = train;
  longer.push_back("--epochs=2");
  const RunResult extended = run_prunerec(longer, std::chrono::seconds(300), work);
  ASSERT_EQ(extended.exit_code, 0) << extended.err;
  EXPECT_NE(extended.err.find("extending the finished run"), std::string::npos) << extended.err;
  EXPECT_EQ(nn::read_checkpoint_manifest((fs::path(work) / "m.prc.state").string()).state().epoch(), 2);
  std::vector<std::string> reseeded = train;
  reseeded.push_back("--seed=8");
  expect_fails(reseeded, 2, {"seed", "--no-resume"}, work);

  // 3. Data moved away: the error says where the path came from and suggests --data.
  const RunResult eval_extended = run_prunerec({"eval", "--model", "work/m.prc", kThreads}, std::chrono::seconds(120), dir.root());
  EXPECT_EQ(eval_extended.exit_code, 0) << eval_extended.err;
  fs::rename(fs::path(work) / "seq.txt", fs::path(work) / "moved.txt");
  expect_fails({"eval", "--model", "work/m.prc"}, 1, {recorded, "recorded in work/m.prc", "--data"}, dir.root());
  const RunResult with_data =
      run_prunerec({"eval", "--model", "work/m.prc", "--data", "work/moved.txt", kThreads}, std::chrono::seconds(120), dir.root());
  EXPECT_EQ(with_data.exit_code, 0) << with_data.err;
  EXPECT_EQ(with_data.out, eval_extended.out);
}

TEST(Cli, PresetsAreKeyedByKind) {
  Workdir dir;
  const std::string data = dir.write("seq.txt", synthetic_user_seq());
  // Before: "Recipe has no field named seed".
  expect_fails({"train", "--data", data, "--config", "schedule", "--out", dir.path("m.prc")}, 2,
               {"'schedule' is a built-in schedule preset", "--config takes a recipe", "small, teacher"});
  expect_fails({"prune", "--teacher", shared_teacher().model, "--schedule", "teacher", "--out", dir.path("p")}, 2,
               {"'teacher' is a built-in recipe preset", "--schedule takes a schedule"});
  EXPECT_FALSE(fs::exists(dir.path("p")));
}

// ---- 4. output targets before any work ----------------------------------------------

TEST(Cli, BadOutputTargetsFailBeforeAnyWork) {
  Workdir dir;
  const std::string data = dir.write("seq.txt", synthetic_user_seq());
  const std::string recipe = dir.write("recipe.pbtxt", tiny_recipe(1, 0));
  fs::create_directories(dir.path("existing"));
  const std::string a_file = dir.write("a_file", "x");
  const auto before = snapshot(dir.root());
  expect_fails({"train", "--data", data, "--config", recipe, "--out", dir.path("existing")}, 2, {"is a folder"});
  expect_fails({"train", "--data", data, "--config", recipe, "--out", a_file + "/m.prc"}, 2, {"is a file, not a folder"});
  expect_fails({"prune", "--teacher", shared_teacher().model, "--out", a_file}, 2, {"is a file"});
  expect_fails({"run", "--data", data, "--config", recipe, "--out", a_file}, 2, {"is a file"});
  expect_fails({"export", "--model", shared_teacher().model, "--out", a_file}, 2, {"is a file"});
  EXPECT_EQ(snapshot(dir.root()), before) << "a failed command wrote something";
}

// ---- 5. sampled negatives -------------------------------------------------------------

TEST(Cli, NegativesAreRefusedWhereTheyCannotMeanWhatTheySay) {
  const Teacher& t = shared_teacher();  // 40 items
  expect_fails({"eval", "--model", t.model, "--ranking", "sampled", "--negatives", "5000"}, 2,
               {"5000 sampled negatives but the catalogue has only 40 items", "at most 38"});
  expect_fails({"eval", "--model", t.model, "--negatives", "50"}, 2, {"--negatives applies to --ranking sampled only"});
  const RunResult r = run_prunerec({"eval", "--model", t.model, "--ranking", "sampled", "--negatives", "30", "--json", kThreads});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"num_negatives\": 30"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"examples_short_of_negatives\": "), std::string::npos) << r.out;
}

// ---- 7. data stats ------------------------------------------------------------------------

TEST(Cli, DataStatsFindsNestedFilesRefusesBinariesAndReportsTheSplit) {
  Workdir dir;
  // The ml-1m layout: two id maps at the top, the sequences in train/input.txt.
  const std::string root = dir.path("ml");
  fs::create_directories(fs::path(root) / "train");
  std::ofstream(fs::path(root) / "sas_to_original_items.txt") << "1 1198\n2 3552\n";
  std::ofstream(fs::path(root) / "sas_to_original_users.txt") << "1 5\n2 9\n";
  std::ofstream(fs::path(root) / "train" / "input.txt") << "1 2 3\n";
  expect_fails({"data", "stats", "--data", root}, 2, {(fs::path(root) / "train" / "input.txt").string()});

  // A binary file with commas is not sniffed as CSV.
  std::string binary = "PRC1,\x01\x02";
  binary += std::string(8, '\0') + ",1,2\n";
  expect_fails({"data", "stats", "--data", dir.write("model.csv", binary)}, 1, {"binary file"});

  const std::string data = dir.write("seq.txt", synthetic_user_seq());
  const RunResult text = run_prunerec({"data", "stats", "--data", data});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("split             leave-one-out (none predefined): 80 train sequences, 80 valid, 80 test"),
            std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("split             none"), std::string::npos) << text.out;
  const RunResult json = run_prunerec({"data", "stats", "--data", data, "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  for (const char* part : {"\"split_kind\": \"leave-one-out\"", "\"train_sequences\": 80", "\"valid_examples\": 80",
                           "\"test_examples\": 80"})
    EXPECT_NE(json.out.find(part), std::string::npos) << part << " not in " << json.out;
}

// ---- 10. progress and --quiet -----------------------------------------------------------

TEST(Cli, QuietPruneWritesOnlyTheLedger) {
  Workdir dir;
  const Teacher& t = shared_teacher();
  const std::string schedule = dir.write("schedule.pbtxt", tiny_schedule(1));
  const std::string out = dir.path("prune");
  const std::vector<std::string> args{"prune", "--teacher", t.model, "--data", t.data, "--schedule", schedule,
                                      "--out", out, kThreads, "--no-latency", "--controls", "no-recovery"};
  std::vector<std::string> quiet_args = args;
  quiet_args.push_back("--quiet");
  const RunResult quiet = run_prunerec(quiet_args);
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  // Before the fix the stage headers, estimator stabilities and "control no-recovery:"
  // reached stderr under --quiet.
  EXPECT_EQ(quiet.err, "") << cmd(quiet_args);
  EXPECT_NE(quiet.out.find("teacher"), std::string::npos) << quiet.out;
  EXPECT_NE(quiet.out.find("no recovery"), std::string::npos) << quiet.out;
  // Without --quiet (and with --redo, so the stages run again) the run says what it does:
  // each stage's place and the elapsed time, and from the second stage on the rough
  // estimate of the time left (Note [schedule time estimate]).
  std::vector<std::string> loud_args = args;
  loud_args.push_back("--redo");
  const RunResult loud = run_prunerec(loud_args);
  ASSERT_EQ(loud.exit_code, 0) << loud.err;
  const std::size_t control = loud.err.find("control no-recovery:");
  ASSERT_NE(control, std::string::npos) << loud.err;
  // --redo redoes the control's stages too (before the fix they were skipped as done).
  EXPECT_EQ(loud.err.find(": done (", control), std::string::npos) << loud.err.substr(control);
  EXPECT_NE(loud.err.find("s1 (stage 1/3), elapsed ", control), std::string::npos) << loud.err.substr(control);
  EXPECT_NE(loud.err.find("s1 (stage 1/3), elapsed "), std::string::npos) << loud.err;
  const std::size_t s3 = loud.err.find("s3 (stage 3/3), elapsed ");
  ASSERT_NE(s3, std::string::npos) << loud.err;
  const std::string s3_line = loud.err.substr(s3, loud.err.find('\n', s3) - s3);
  EXPECT_NE(s3_line.find("left (rough estimate: 1 stage at the "), std::string::npos) << s3_line;
  EXPECT_EQ(loud.err.find("s1 (stage 1/3), elapsed 0:00, roughly"), std::string::npos)
      << "no estimate before any stage has run:\n" << loud.err;
}

// ---- 11. help and version ---------------------------------------------------------------

TEST(Cli, HelpShowsExitCodesDefaultsAndTheVersion) {
  const RunResult top = run_prunerec({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("130"), std::string::npos) << top.out;
  for (const char* command : {"run", "data", "train", "eval", "recommend", "inspect", "prune", "report", "export", "bench"}) {
    const RunResult r = run_prunerec({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      // A sentinel (0 or -1 for "unset") is never shown as if it were the value; seeds of 0 are real.
      if (line.find("--seed") != std::string::npos) continue;
      EXPECT_EQ(line.find("(default 0)"), std::string::npos) << command << ": " << line;
      EXPECT_EQ(line.find("(default -1)"), std::string::npos) << command << ": " << line;
    }
  }
  const RunResult v = run_prunerec({"--version"});
  // The version, then whether this build runs data-parallel under mpirun (docs/scale-out.md).
  const std::string mpi = prunerec::mpi_built() ? "mpi: yes (data-parallel under mpirun; docs/scale-out.md)\n"
                                                : "mpi: no (built without PRUNEREC_MPI)\n";
  EXPECT_EQ(v.out, std::string("prunerec ") + PRUNEREC_PROJECT_VERSION + "\n" + mpi);
}

}  // namespace
}  // namespace prunerec::apps_test
