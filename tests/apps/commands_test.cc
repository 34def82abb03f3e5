// The commands no other test drives, each end to end on tiny sizes (seconds each):
//   run     the README's main job: data -> teacher -> three-stage schedule -> ledger;
//   report  rebuilds report.md and the charts of that run from its report.json;
//   bench   the speed benchmark, one step of everything, read back as JSON.
// They check what a user relies on: exit status, the files promised by the output lines,
// a pruned model smaller than its teacher, a rebuilt report identical to the original.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "recsys/recommender.h"
#include "tests/api/json_reader.h"
#include "tests/apps/cli_runner.h"
#include "tests/apps/fixtures.h"

namespace prunerec::apps_test {
namespace {

namespace fs = std::filesystem;

TEST(Commands, RunTrainsPrunesAndReportRebuildsTheSameReport) {
  Workdir dir;
  const std::string data = dir.write("seq.txt", synthetic_user_seq());
  const std::string recipe = dir.write("recipe.pbtxt", tiny_recipe(/*epochs=*/1, /*checkpoint_every_steps=*/0));
  const std::string schedule = dir.write("schedule.pbtxt", tiny_schedule(/*recovery_epochs=*/1));
  const std::string out = dir.path("run");
  const RunResult r = run_prunerec({"run", "--data", data, "--config", recipe, "--schedule", schedule, "--out", out,
                                    "--no-latency", "--quiet", kThreads});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The last line names the outputs; the terminal ledger (prune::ledger_text: a header row,
  // then the teacher's row) comes before it.
  EXPECT_NE(r.out.find("Outputs: " + out + "/teacher.prc"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nstage "), std::string::npos) << "no ledger header in:\n" << r.out;
  EXPECT_NE(r.out.find("\nteacher "), std::string::npos) << "no teacher row in:\n" << r.out;
  const fs::path prune_dir = fs::path(out) / "prune";
  for (const fs::path& f : {fs::path(out) / "teacher.prc", prune_dir / "final.prc", prune_dir / "report.json",
                            prune_dir / "report.md"})
    EXPECT_TRUE(fs::is_regular_file(f)) << "run did not write " << f;
  const recsys::Recommender teacher = recsys::load_recommender((fs::path(out) / "teacher.prc").string());
  const recsys::Recommender final_model = recsys::load_recommender((prune_dir / "final.prc").string());
  EXPECT_LT(final_model.net->non_embedding_parameters(), teacher.net->non_embedding_parameters())
      << "the schedule's final model is not smaller than its teacher";
  EXPECT_EQ(final_model.catalog.raw_ids, teacher.catalog.raw_ids);

  // report: delete report.md and the charts, rebuild them from report.json alone.
  const std::string report_md = read_bytes((prune_dir / "report.md").string());
  std::vector<fs::path> charts;
  for (const auto& e : fs::directory_iterator(prune_dir))
    if (e.path().extension() == ".svg") charts.push_back(e.path());
  EXPECT_FALSE(charts.empty()) << "run wrote no chart beside report.md";
  fs::remove(prune_dir / "report.md");
  for (const fs::path& c : charts) fs::remove(c);
  const RunResult rep = run_prunerec({"report", prune_dir.string(), "--print"});
  ASSERT_EQ(rep.exit_code, 0) << rep.err;
  ASSERT_TRUE(fs::is_regular_file(prune_dir / "report.md")) << rep.err;
  EXPECT_EQ(read_bytes((prune_dir / "report.md").string()), report_md)
      << "report.md rebuilt from report.json differs from the one the run wrote";
  EXPECT_NE(rep.out.find(report_md), std::string::npos) << "--print did not print report.md";
  for (const fs::path& c : charts) EXPECT_TRUE(fs::is_regular_file(c)) << "report did not rebuild " << c;
}

TEST(Commands, BenchMeasuresOneStepOfEverythingAsJson) {
  const RunResult r = run_prunerec({"bench", "--preset", "small", kThreads, "--steps", "1", "--warmup", "0",
                                    "--infer-reps", "1", "--infer-seconds", "0.01", "--eval-users", "8",
                                    "--eval-reps", "1", "--floor-reps", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One JSON object on the last line of stdout.
  std::string last = r.out;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
  testing::JsonValue j;
  ASSERT_NO_THROW(j = testing::parse_json(last)) << r.out;
  EXPECT_EQ(j.at("preset").string, "small");
  EXPECT_EQ(j.at("threads").number, 1);
  EXPECT_EQ(j.at("steps").number, 1);
  for (const char* key : {"ms_per_step", "positions_per_s", "gflops", "gemm_floor_ms"}) {
    const double v = j.at(key).number;
    EXPECT_TRUE(std::isfinite(v) && v > 0) << key << " = " << v;
  }
  // One step of a fresh model on random data: the loss is about ln(items), never NaN.
  const double loss = j.at("loss_first").number, items = j.at("items").number;
  EXPECT_TRUE(std::isfinite(loss)) << loss;
  EXPECT_NEAR(loss, std::log(items), 1.0) << "a fresh model's cross-entropy should be near ln(" << items << ")";
}

}  // namespace
}  // namespace prunerec::apps_test
