// NaN and Inf through the command line: a run that goes non-finite stops with a
// NumericError naming the step and the tensor, exits 1, and keeps the last good state
// intact bit for bit (Note [resumable training] in recsys/trainer.h). Two ways in: an
// absurd learning rate, and a model file whose weights hold a NaN (written with
// nn::save_model, so its checksums are right: only the values are wrong).
#include <cmath>
#include <filesystem>
#include <limits>
#include <cctype>
#include <string>

#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "tests/apps/cli_runner.h"
#include "tests/apps/fixtures.h"

namespace prunerec::apps_test {
namespace {

namespace fs = std::filesystem;

// Rewrites the model file `in` to `out` with element 0 of `tensor` set to NaN, keeping
// optimizer moments, training state, catalogue and metadata (and, when `unfinished`,
// moving the training state back to the start of its last epoch, so `train` resumes).
void poison(const std::string& in, const std::string& out, const std::string& tensor, bool unfinished) {
  nn::LoadedModel m = nn::load_model(in);
  Tensor w = m.model->parameter(tensor).value();
  w.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  nn::AdamW opt(*m.model, nn::AdamWOptions{});
  if (m.has_optimizer()) nn::restore_optimizer(opt, m);
  pb::TrainingState state = m.manifest.state();
  if (unfinished) {
    state.set_finished(false);
    state.set_epoch(state.epoch() - 1);
    state.set_epoch_batch(0);
    state.set_epoch_loss_sum(0);
    state.set_epoch_positions(0);
  }
  std::map<std::string, std::string> metadata(m.manifest.metadata().begin(), m.manifest.metadata().end());
  nn::save_model(out, *m.model,
                 {.optimizer = m.has_optimizer() ? &opt : nullptr, .state = &state, .catalog = &m.manifest.catalog(),
                  .metadata = metadata});
}

// The step a NumericError message names ("step 12"), or -1.
long step_in(const std::string& message) {
  for (std::size_t pos = message.find("step "); pos != std::string::npos; pos = message.find("step ", pos + 1)) {
    std::size_t end = pos + 5;
    while (end < message.size() && std::isdigit(static_cast<unsigned char>(message[end]))) ++end;
    if (end > pos + 5) return std::stol(message.substr(pos + 5, end - pos - 5));
  }
  return -1;
}

TEST(NumericFailure, AbsurdLearningRateStopsNamingTheStepAndKeepsTheLastState) {
  Workdir dir;
  const Teacher& t = shared_teacher();
  const std::string recipe = dir.write("recipe.pbtxt", tiny_recipe(3, 1, /*lr=*/1e30));
  fs::create_directories(dir.path("run"));
  const std::vector<std::string> args = {"train", "--data", t.data, "--config", recipe, "--out", dir.path("run/m.prc"),
                                         kThreads, "--quiet"};
  const RunResult first = run_prunerec(args);
  ASSERT_EQ(first.exit_code, 1) << first.err;
  const std::string error = first.err_lines().back();
  EXPECT_EQ(error.rfind("prunerec: ", 0), 0u) << error;
  const long step = step_in(error);
  EXPECT_GE(step, 1) << error;
  EXPECT_TRUE(error.find("loss") != std::string::npos || error.find("gradient of '") != std::string::npos) << error;
  EXPECT_NE(error.find(dir.path("run/m.prc.state")), std::string::npos) << "the last good state is not named: " << error;
  EXPECT_EQ(temp_files(dir.path("run")), std::vector<std::string>{});

  // The state is the one saved after the last good step (checkpoint every step), and
  // valid; rerunning resumes from it, fails at the same step, and leaves it bit for bit.
  const std::string state_path = dir.path("run/m.prc.state");
  pb::Manifest state;
  ASSERT_NO_THROW(state = nn::read_checkpoint_manifest(state_path));
  EXPECT_EQ(state.state().step(), step);
  const std::string saved = read_bytes(state_path);
  const RunResult again = run_prunerec(args);
  EXPECT_EQ(again.exit_code, 1) << again.err;
  EXPECT_EQ(again.err_lines().back(), error);
  EXPECT_TRUE(read_bytes(state_path) == saved) << "the failing rerun changed the state file";
  EXPECT_EQ(temp_files(dir.path("run")), std::vector<std::string>{});
}

// A resume state whose weights hold a NaN: the run stops (at load, or at the first step
// naming it) naming the parameter, and neither the state nor the best model beside it
// changes.
TEST(NumericFailure, PoisonedResumeStateStopsNamingStepAndTensor) {
  Workdir dir;
  const Teacher& t = shared_teacher();
  const std::string recipe = dir.write("recipe.pbtxt", tiny_recipe(3, 0));
  fs::create_directories(dir.path("run"));
  fs::copy_file(t.model, dir.path("run/m.prc"));
  const std::string tensor = "blocks.1.mlp.up_proj.weight";
  poison(t.model + ".state", dir.path("run/m.prc.state"), tensor, /*unfinished=*/true);
  const std::vector<std::string> args = {"train", "--data", t.data, "--config", recipe, "--out", dir.path("run/m.prc"),
                                         kThreads, "--quiet"};
  const std::string state_before = read_bytes(dir.path("run/m.prc.state"));
  const std::string best_before = read_bytes(dir.path("run/m.prc"));
  const RunResult r = run_prunerec(args);
  ASSERT_EQ(r.exit_code, 1) << r.err;
  const std::string error = r.err_lines().back();
  // Either refused when loaded (naming the file) or stopped at the first step (naming it).
  EXPECT_TRUE(step_in(error) >= 0 || error.find(dir.path("run/m.prc.state")) != std::string::npos) << error;
  EXPECT_NE(error.find(tensor), std::string::npos) << "the NaN tensor is not named: " << error;
  EXPECT_TRUE(read_bytes(dir.path("run/m.prc.state")) == state_before) << "the state file changed";
  EXPECT_TRUE(read_bytes(dir.path("run/m.prc")) == best_before) << "the best model changed";
  EXPECT_EQ(temp_files(dir.path("run")), std::vector<std::string>{});
}

// A teacher whose weights hold a NaN: prune must not produce a model from it. (eval and
// recommend of such a file: see the next test.)
TEST(NumericFailure, PoisonedTeacherStopsThePruneRun) {
  Workdir dir;
  const Teacher& t = shared_teacher();
  const std::string teacher = dir.path("teacher.prc");
  const std::string tensor = "blocks.0.attn.q_proj.weight";
  poison(t.model, teacher, tensor, false);
  const std::string schedule = dir.write("schedule.pbtxt", tiny_schedule(1));
  const RunResult r = run_prunerec({"prune", "--teacher", teacher, "--data", t.data, "--schedule", schedule, "--out",
                                    dir.path("out"), kThreads, "--quiet", "--no-latency"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_FALSE(fs::exists(dir.path("out/final.prc"))) << "a final model was written from a NaN teacher";
  const std::string error = r.err_lines().empty() ? "" : r.err_lines().back();
  EXPECT_NE(error.find(tensor), std::string::npos) << "the NaN tensor is not named: " << error;
  EXPECT_EQ(temp_files(dir.path("out")), std::vector<std::string>{});
}

// eval and recommend must not answer silently from a model with NaN weights.
TEST(NumericFailure, PoisonedModelIsNotUsedSilently) {
  Workdir dir;
  const Teacher& t = shared_teacher();
  const std::string model = dir.path("model.prc");
  const std::string tensor = "embed.weight";
  poison(t.model, model, tensor, false);
  const RunResult rec = run_prunerec({"recommend", "--model", model, "--history", "101 102", "-k", "3"});
  EXPECT_EQ(rec.exit_code, 1) << rec.out << rec.err;
  EXPECT_NE(rec.err.find(tensor), std::string::npos) << rec.out << rec.err;
  const RunResult eval = run_prunerec({"eval", "--model", model, "--data", t.data, kThreads});
  EXPECT_EQ(eval.exit_code, 1) << eval.out << eval.err;
  EXPECT_NE(eval.err.find(tensor), std::string::npos) << eval.out << eval.err;
}

}  // namespace
}  // namespace prunerec::apps_test
