// Killed and interrupted runs resume to the same result, bit for bit, as runs never
// interrupted (Note [resumable training] in recsys/trainer.h, Note [resumable schedule] in
// prune/schedule.h), through the real command line.
//
// Each test runs the command once uninterrupted (the reference), then again in another
// folder, SIGKILLing it repeatedly and rerunning the same command until it completes. The
// kill points follow a seeded schedule of three kinds: a random delay within the
// reference's run time; right after the k-th checkpoint is renamed into place; and right
// after the k-th temporary file of an atomic write appears (so mid-write). Which step a
// timed kill hits depends on the machine's speed, so each resume's starting point is
// logged; the property checked holds for any kill point. After every kill, each
// checkpoint present must read back valid (a kill never leaves a damaged file).
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/apps/cli_runner.h"
#include "tests/apps/fixtures.h"
#include "tensor/rng.h"

namespace prunerec::apps_test {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// The lines of a command's stdout that hold results (not timings or the output path).
std::string result_lines(const std::string& out) {
  std::istringstream is(out);
  std::string kept;
  for (std::string line; std::getline(is, line);)
    if (line.find("positions/s") == std::string::npos && line.rfind("model: ", 0) != 0) kept += line + "\n";
  return kept;
}

void expect_valid_checkpoints(const std::string& dir, const std::string& when) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.size() < 4 || name.find(".tmp.") != std::string::npos) continue;
    if (name.ends_with(".prc") || name.ends_with(".state")) {
      try {
        (void)nn::read_checkpoint(e.path().string());
      } catch (const Error& err) {
        ADD_FAILURE() << when << ": " << err.what();
      }
    }
  }
}

enum class KillAt { kTime, kCheckpointRenamed, kTempCreated };

const char* kill_name(KillAt k) {
  switch (k) {
    case KillAt::kTime: return "timed";
    case KillAt::kCheckpointRenamed: return "after checkpoint";
    case KillAt::kTempCreated: return "mid-write";
  }
  return "";
}

struct KillReport {
  int kills = 0;
  std::vector<std::string> resumed_from;  // the "resuming ..." lines of the reruns
  std::vector<std::string> leftovers;     // temporary files left by kills
};

// Runs `args` in `out_dir` (watched) until it exits 0, SIGKILLing it up to `max_kills`
// times on the seeded schedule. `checkpoint_part` names the checkpoint renames to wait
// for; `reference_seconds` bounds the timed kills.
KillReport kill_until_done(const std::vector<std::string>& args, const std::string& out_dir,
                           const std::string& checkpoint_part, double reference_seconds, int max_kills,
                           unsigned seed) {
  Rng rng(seed);
  KillReport report;
  fs::create_directories(out_dir);
  for (int attempt = 0; attempt < max_kills + 20; ++attempt) {
    FolderWatch watch(out_dir);
    Process p(args, "killed");
    const bool kill_now = report.kills < max_kills;
    if (kill_now) {
      const auto kind = static_cast<KillAt>(rng.below(3));
      const int count = 1 + static_cast<int>(rng.below(2));
      const double delay = (0.02 + 0.58 * rng.uniform()) * reference_seconds;
      const auto limit = milliseconds(static_cast<int>(reference_seconds * 3000) + 2000);
      bool fire = false;
      switch (kind) {
        case KillAt::kTime: {
          const auto until = std::chrono::steady_clock::now() + milliseconds(static_cast<int>(delay * 1000));
          while (std::chrono::steady_clock::now() < until && !p.finished()) std::this_thread::sleep_for(milliseconds(1));
          fire = true;
          break;
        }
        case KillAt::kCheckpointRenamed:
          fire = watch.wait_for(FolderWatch::Event::kRenamedInto, checkpoint_part, count, limit, [&] { return !p.finished(); });
          break;
        case KillAt::kTempCreated:
          fire = watch.wait_for(FolderWatch::Event::kCreated, ".tmp.", count, limit, [&] { return !p.finished(); });
          break;
      }
      if (fire) p.signal(SIGKILL);
      const RunResult r = p.wait();
      if (r.signal == SIGKILL) {
        ++report.kills;
        std::cerr << "  kill " << report.kills << " (" << kill_name(kind) << ", count " << count << ") after "
                  << r.seconds << " s\n";
        for (const auto& line : r.err_lines())
          if (line.find("resuming") != std::string::npos) report.resumed_from.push_back(line);
        expect_valid_checkpoints(out_dir, "after kill " + std::to_string(report.kills));
        continue;
      }
      EXPECT_EQ(r.exit_code, 0) << "run " << attempt << " ended with " << r.exit_code << " (signal " << r.signal
                                << "):\n" << r.err;
      if (r.exit_code != 0) return report;
      for (const auto& line : r.err_lines())
        if (line.find("resuming") != std::string::npos) report.resumed_from.push_back(line);
      break;  // finished before the kill
    }
    const RunResult r = p.wait();
    EXPECT_EQ(r.exit_code, 0) << "the final rerun failed:\n" << r.err;
    for (const auto& line : r.err_lines())
      if (line.find("resuming") != std::string::npos) report.resumed_from.push_back(line);
    break;
  }
  report.leftovers = temp_files(out_dir);
  for (const auto& line : report.resumed_from) std::cerr << "  " << line << "\n";
  if (!report.leftovers.empty()) {
    std::cerr << "  note: " << report.leftovers.size() << " temporary file(s) of killed writes remain:";
    for (const auto& f : report.leftovers) std::cerr << " " << f;
    std::cerr << "\n";
  }
  return report;
}

int kills_to_try() { return small_test_mode() ? 3 : 6; }

TEST(TrainResume, KilledRunsEndBitIdenticalToAnUninterruptedRun) {
  Workdir dir;
  const std::string data = dir.write("seq.txt", synthetic_user_seq());
  const std::string recipe = dir.write("recipe.pbtxt", tiny_recipe(small_test_mode() ? 4 : 8, 3));
  auto train_args = [&](const std::string& out) {
    return std::vector<std::string>{"train", "--data", data, "--config", recipe, "--out", out, kThreads, "--quiet"};
  };
  fs::create_directories(dir.path("ref"));
  const RunResult ref = run_prunerec(train_args(dir.path("ref/m.prc")));
  ASSERT_EQ(ref.exit_code, 0) << ref.err;

  const KillReport report =
      kill_until_done(train_args(dir.path("killed/m.prc")), dir.path("killed"), "m.prc.state", ref.seconds,
                      kills_to_try(), /*seed=*/2024);
  EXPECT_GE(report.kills, 1);
  EXPECT_EQ(compare_checkpoints(dir.path("ref/m.prc"), dir.path("killed/m.prc")), "");
  EXPECT_EQ(compare_checkpoints(dir.path("ref/m.prc.state"), dir.path("killed/m.prc.state")), "");

  // The test metrics printed by the last rerun are the uninterrupted run's.
  const RunResult again = run_prunerec(train_args(dir.path("killed/m.prc")));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(result_lines(again.out), result_lines(ref.out));
}

// SIGINT (and SIGTERM, the same handler): the run saves its state, says so on one line,
// exits 130, leaves no temporary file, and the same command resumes to the uninterrupted
// result.
void interrupt_and_resume(int sig) {
  Workdir dir;
  const std::string data = dir.write("seq.txt", synthetic_user_seq());
  const std::string recipe = dir.write("recipe.pbtxt", tiny_recipe(6, 3));
  auto train_args = [&](const std::string& out) {
    return std::vector<std::string>{"train", "--data", data, "--config", recipe, "--out", out, kThreads, "--quiet"};
  };
  fs::create_directories(dir.path("ref"));
  const RunResult ref = run_prunerec(train_args(dir.path("ref/m.prc")));
  ASSERT_EQ(ref.exit_code, 0) << ref.err;

  fs::create_directories(dir.path("run"));
  RunResult stopped;
  {
    FolderWatch watch(dir.path("run"));
    Process p(train_args(dir.path("run/m.prc")), "interrupted");
    ASSERT_TRUE(watch.wait_for(FolderWatch::Event::kRenamedInto, "m.prc.state", 2, milliseconds(60000),
                               [&] { return !p.finished(); }))
        << "no second checkpoint seen";
    p.signal(sig);
    stopped = p.wait();
  }
  ASSERT_EQ(stopped.exit_code, 130) << "signal " << stopped.signal << "\n" << stopped.err;
  const auto lines = stopped.err_lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("state saved to " + dir.path("run/m.prc.state")), std::string::npos) << lines.back();
  EXPECT_EQ(temp_files(dir.path("run")), std::vector<std::string>{});
  pb::Manifest state;
  ASSERT_NO_THROW(state = nn::read_checkpoint_manifest(dir.path("run/m.prc.state")));
  EXPECT_GE(state.state().step(), 3);
  EXPECT_FALSE(state.state().finished());

  const RunResult resumed = run_prunerec(train_args(dir.path("run/m.prc")));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming from"), std::string::npos) << resumed.err;
  EXPECT_EQ(compare_checkpoints(dir.path("ref/m.prc"), dir.path("run/m.prc")), "");
  EXPECT_EQ(compare_checkpoints(dir.path("ref/m.prc.state"), dir.path("run/m.prc.state")), "");
  EXPECT_EQ(result_lines(resumed.out), result_lines(ref.out));
}

TEST(TrainResume, SigintSavesStateExits130AndResumes) { interrupt_and_resume(SIGINT); }
TEST(TrainResume, SigtermSavesStateExits130AndResumes) { interrupt_and_resume(SIGTERM); }

std::vector<std::string> prune_args(const std::string& schedule, const std::string& out) {
  const Teacher& t = shared_teacher();
  return {"prune", "--teacher", t.model, "--data", t.data, "--schedule", schedule, "--out", out,
          kThreads, "--quiet", "--no-latency"};
}

void expect_same_prune_outputs(const std::string& ref, const std::string& other) {
  for (const char* name : {"final.prc", "s1.prc", "s2.prc", "s3.prc", "s1.pruned.prc", "s3.pruned.prc"})
    EXPECT_EQ(compare_checkpoints(ref + "/" + name, other + "/" + name), "") << name;
  for (const char* name : {"s1.plan.pbtxt", "s2.plan.pbtxt", "s3.plan.pbtxt"})
    EXPECT_EQ(read_bytes(ref + "/" + name), read_bytes(other + "/" + name)) << name;
}

TEST(PruneResume, KilledRunsEndBitIdenticalToAnUninterruptedRun) {
  Workdir dir;
  const std::string schedule = dir.write("schedule.pbtxt", tiny_schedule(small_test_mode() ? 1 : 2));
  const RunResult ref = run_prunerec(prune_args(schedule, dir.path("ref")));
  ASSERT_EQ(ref.exit_code, 0) << ref.err;

  const KillReport report = kill_until_done(prune_args(schedule, dir.path("killed")), dir.path("killed"), ".state",
                                            ref.seconds, kills_to_try(), /*seed=*/77);
  EXPECT_GE(report.kills, 1);
  expect_same_prune_outputs(dir.path("ref"), dir.path("killed"));
}

TEST(PruneResume, SigtermDuringRecoverySavesAndResumes) {
  Workdir dir;
  const std::string schedule = dir.write("schedule.pbtxt", tiny_schedule(2));
  const RunResult ref = run_prunerec(prune_args(schedule, dir.path("ref")));
  ASSERT_EQ(ref.exit_code, 0) << ref.err;

  fs::create_directories(dir.path("run"));
  RunResult stopped;
  {
    FolderWatch watch(dir.path("run"));
    Process p(prune_args(schedule, dir.path("run")), "interrupted");
    // The second recovery checkpoint of stage 2: stage 1 is done, stage 2 is mid-way.
    ASSERT_TRUE(watch.wait_for(FolderWatch::Event::kRenamedInto, "s2.prc.state", 2, milliseconds(60000),
                               [&] { return !p.finished(); }))
        << "no checkpoint of stage 2 seen";
    p.signal(SIGTERM);
    stopped = p.wait();
  }
  ASSERT_EQ(stopped.exit_code, 130) << stopped.err;
  EXPECT_EQ(temp_files(dir.path("run")), std::vector<std::string>{});
  ASSERT_NO_THROW((void)nn::read_checkpoint(dir.path("run/s2.prc.state")));
  const RunResult resumed = run_prunerec(prune_args(schedule, dir.path("run")));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_prune_outputs(dir.path("ref"), dir.path("run"));
}

}  // namespace
}  // namespace prunerec::apps_test
