// `prune --calibration-tokens` (Note [one-shot pruning]): an imported Qwen2 fixture pruned
// one-shot on token sequences, at the command line.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "nn/checkpoint_file.h"
#include "tests/apps/cli_runner.h"
#include "tests/apps/fixtures.h"

namespace prunerec::apps_test {
namespace {

TEST(PruneTokens, ImportedModelPrunedOneShotOnTokenSequences) {
  Workdir dir;
  const std::string base = dir.path("base.prc");
  const std::string hf = std::string(PRUNEREC_SOURCE_DIR) + "/tests/fixtures/hf/qwen2";
  const RunResult imp = run_prunerec({"import", "--hf", hf, "--out", base});
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  std::ostringstream tokens;
  tokens << "# token ids of the fixture's 96-token vocabulary\n";
  for (int s = 0; s < 24; ++s) {
    for (int i = 0; i < 8 + s % 7; ++i) tokens << (i ? " " : "") << (s * 7 + i * 13) % 90;
    tokens << "\n";
  }
  const std::string file = dir.write("calib.tokens", tokens.str());
  const std::string schedule = dir.write("s.pbtxt", R"(seed: 3
    calibration { sequences: 16 batch_size: 8 }
    stages { kind: WIDTH_ATTENTION keep_heads: 2 }
    stages { kind: WIDTH_MLP keep_mlp: 24 }
    stages { kind: DEPTH keep_layers: 1 })");
  const std::string out = dir.path("pruned");
  const RunResult run = run_prunerec({"prune", "--teacher", base, "--calibration-tokens", file, "--schedule", schedule,
                                      "--out", out, "--quiet", kThreads});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.err, "");  // --quiet: results only
  for (const char* row : {"| stage1-width-attention |", "| stage2-width-mlp |", "| stage3-depth |"})
    EXPECT_NE(run.out.find(row), std::string::npos) << row << " not in\n" << run.out;
  for (const char* f : {"final.prc", "stage1-width-attention.plan.pbtxt", "stage3-depth.scores.json"})
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(out) / f)) << f;
  // The cut model keeps its provenance and tokenizer record and still runs.
  const pb::Manifest before = nn::read_checkpoint_manifest(base);
  const pb::Manifest after = nn::read_checkpoint_manifest(out + "/final.prc");
  EXPECT_EQ(after.pretrained().architecture(), "Qwen2ForCausalLM");
  // Stored configs list every layer (proto/model.proto).
  EXPECT_EQ(before.config().layers_size(), 2);
  EXPECT_EQ(after.config().layers_size(), 1);
  EXPECT_EQ(after.config().layers(0).num_heads(), 2);
  EXPECT_EQ(after.config().layers(0).mlp_width(), 24);
  const RunResult fwd = run_prunerec({"forward", "--model", out + "/final.prc", "--token-ids", "1 2 3", "--json"});
  ASSERT_EQ(fwd.exit_code, 0) << fwd.err;
  EXPECT_NE(fwd.out.find("\"vocab_size\": 96"), std::string::npos) << fwd.out;
  // Bad input: a token outside the vocabulary names the file's line; item-data flags are
  // a usage error.
  const std::string bad = dir.write("bad.tokens", "1 2 3\n4 96 5\n");
  const RunResult oov = run_prunerec({"prune", "--teacher", base, "--calibration-tokens", bad, "--schedule", schedule,
                                      "--out", dir.path("bad"), kThreads});
  EXPECT_EQ(oov.exit_code, 1);
  EXPECT_NE(oov.err.find("bad.tokens:2"), std::string::npos) << oov.err;
  const RunResult mixed = run_prunerec({"prune", "--teacher", base, "--calibration-tokens", file, "--data", file,
                                        "--schedule", schedule, "--out", dir.path("mixed"), kThreads});
  EXPECT_EQ(mixed.exit_code, 2) << mixed.err;
}

}  // namespace
}  // namespace prunerec::apps_test
