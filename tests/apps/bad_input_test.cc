// Bad input everywhere, through the command line: every case must end with a clear error
// (one line on stderr, "prunerec: ...", naming the file and where it applies the line),
// the documented exit code (main.cc: 1 runtime failure, 2 usage or config error), and
// nothing left behind: no temporary files, earlier outputs intact byte for byte.
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "tests/apps/cli_runner.h"
#include "tests/apps/fixtures.h"

namespace prunerec::apps_test {
namespace {

namespace fs = std::filesystem;

// Runs a command that must fail: checks the exit code, the single "prunerec: " line and
// that it mentions every string of `mentions`; returns the line.
std::string expect_failure(const std::vector<std::string>& args, int exit_code,
                           const std::vector<std::string>& mentions) {
  const RunResult r = run_prunerec(args, std::chrono::seconds(300));
  std::string cmd;
  for (const auto& a : args) cmd += " " + a;
  EXPECT_EQ(r.exit_code, exit_code) << "prunerec" << cmd << "\n" << r.err;
  const auto lines = r.err_lines();
  if (lines.empty()) {
    ADD_FAILURE() << "prunerec" << cmd << ": nothing on stderr";
    return "";
  }
  // Commands may print what they read before failing; the error is the last line, and the
  // only one starting "prunerec: ".
  int error_lines = 0;
  for (const auto& line : lines) error_lines += line.rfind("prunerec: ", 0) == 0;
  EXPECT_EQ(error_lines, 1) << "prunerec" << cmd << ": expected one error line:\n" << r.err;
  const std::string& last = lines.back();
  EXPECT_EQ(last.rfind("prunerec: ", 0), 0u) << "prunerec" << cmd << ": last line is not the error:\n" << r.err;
  for (const auto& m : mentions) EXPECT_NE(last.find(m), std::string::npos) << "prunerec" << cmd << ": '" << m << "' not in: " << last;
  EXPECT_EQ(r.signal, 0) << "killed by a signal";
  return last;
}

// A folder holding the outputs of an earlier successful command; EXPECT_UNCHANGED after
// a failing one.
class Outputs {
 public:
  explicit Outputs(std::string dir) : dir_(std::move(dir)), before_(snapshot(dir_)) {}
  void expect_unchanged(const std::string& when) const {
    const auto after = snapshot(dir_);
    EXPECT_EQ(temp_files(dir_), std::vector<std::string>{}) << when;
    for (const auto& [name, bytes] : before_) {
      const auto it = after.find(name);
      if (it == after.end()) ADD_FAILURE() << when << ": " << name << " was removed";
      else EXPECT_TRUE(it->second == bytes) << when << ": " << name << " was changed";
    }
    for (const auto& [name, bytes] : after)
      if (!before_.count(name)) ADD_FAILURE() << when << ": left behind " << name;
  }

 private:
  std::string dir_;
  std::map<std::string, std::string> before_;
};

std::string tiny_recipe_file(const Workdir& dir) { return dir.write("recipe.pbtxt", tiny_recipe(2, 0)); }

// ---- data files ------------------------------------------------------------------------

struct Malformed {
  const char* format;
  const char* name;
  const char* text;
  int bad_line;
  friend void PrintTo(const Malformed& m, std::ostream* os) { *os << m.format << " " << m.name; }
};

// One line wrong in an otherwise good file of each format.
const Malformed kMalformed[] = {
    {"pairs", "pairs.txt", "1 10\n1 11\n2 x\n2 12\n", 3},
    {"user-seq", "useq.txt", "1 10 11\n2 1x 12\n3 10 12\n", 2},
    {"item-seq", "iseq.txt", "10 11\n12 1x\n", 2},
    {"movielens-dat", "ratings.dat", "1::10::3::100\n1::11::3::yesterday\n", 2},
    {"recbole", "data.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\n", 3},
    {"lcrec-json", "data.inter.json", "{\"0\": [1, 2],\n \"1\": [3, 4],\n \"2\": [5, -1]}\n", 3},
    {"csv", "log.csv", "user,item,timestamp\n1,10,5\n1,11,abc\n", 3},
    {"d3-csv", "d3.csv", "user_id,history_item_id,item_id\nU,[1],2\nU,\"[1, 2\",3\n", 3},
};

class MalformedData : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedData, NamesFileAndLineExits1AndLeavesOutputsAlone) {
  const Malformed& m = GetParam();
  Workdir dir;
  const std::string path = dir.write(m.name, m.text);
  const std::string where = path + ":" + std::to_string(m.bad_line) + ":";
  expect_failure({"data", "stats", "--data", path, "--format", m.format}, 1, {where});
  expect_failure({"data", "stats", "--data", path}, 1, {where});  // detected format

  // train into a folder holding an earlier model: it must stay as it was.
  const std::string out = dir.path("out");
  fs::create_directories(out);
  dir.write("out/m.prc", "an earlier model");
  const Outputs outputs(out);
  expect_failure({"train", "--data", path, "--config", tiny_recipe_file(dir), "--out", out + "/m.prc", kThreads}, 1,
                 {where});
  outputs.expect_unchanged(std::string("train on malformed ") + m.format);

  // --skip-bad-lines reads the rest (the file has good lines around the bad one; for
  // lcrec-json the bad entry is a negative id, which is skippable, unlike a JSON syntax
  // error).
  const RunResult skipped = run_prunerec({"data", "stats", "--data", path, "--format", m.format, "--skip-bad-lines"});
  EXPECT_EQ(skipped.exit_code, 0) << skipped.err;
}

INSTANTIATE_TEST_SUITE_P(EveryFormat, MalformedData, ::testing::ValuesIn(kMalformed),
                         [](const auto& info) {
                           std::string n = info.param.format;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(BadData, JsonSyntaxErrorsNameTheLineEvenWhenSkippingBadLines) {
  Workdir dir;
  const std::string path = dir.write("data.inter.json", "{\"0\": [1, 2],\n \"1\": [3, 4],\n \"2\": [5, x]}\n");
  expect_failure({"data", "stats", "--data", path}, 1, {path + ":3:"});
  expect_failure({"data", "stats", "--data", path, "--skip-bad-lines"}, 1, {path + ":3:"});
}

TEST(BadData, EmptyAndBlankFilesAreErrorsNamingTheFile) {
  Workdir dir;
  for (const char* text : {"", "\n\n   \n"}) {
    const std::string path = dir.write("empty.txt", text);
    expect_failure({"data", "stats", "--data", path}, 1, {path, "empty"});
    for (const auto& format : {"pairs", "user-seq", "movielens-dat", "recbole", "lcrec-json", "csv"})
      expect_failure({"data", "stats", "--data", path, "--format", format}, 1, {path});
  }
}

TEST(BadData, MissingFilesAreNamed) {
  Workdir dir;
  const std::string missing = dir.path("nowhere/data.txt");
  expect_failure({"data", "stats", "--data", missing}, 1, {missing});
  const Teacher& t = shared_teacher();
  const std::string titles = dir.path("titles.tsv");
  expect_failure({"data", "stats", "--data", t.data, "--titles", titles}, 1, {titles});
  expect_failure({"eval", "--model", dir.path("none.prc"), "--data", t.data}, 1, {dir.path("none.prc")});
  expect_failure({"recommend", "--model", dir.path("none.prc"), "--history", "101"}, 1, {dir.path("none.prc")});
  expect_failure({"inspect", "--model", dir.path("none.prc")}, 1, {dir.path("none.prc")});
  expect_failure({"prune", "--teacher", dir.path("none.prc"), "--data", t.data, "--out", dir.path("p")}, 1,
                 {dir.path("none.prc")});
  EXPECT_FALSE(fs::exists(dir.path("p"))) << "prune left an output folder behind";
  // A recipe or schedule name that is neither a file nor a preset: a config error (2).
  expect_failure({"train", "--data", t.data, "--config", dir.path("none.pbtxt"), "--out", dir.path("m.prc")}, 2,
                 {dir.path("none.pbtxt")});
  expect_failure({"prune", "--teacher", t.model, "--schedule", dir.path("none.pbtxt"), "--out", dir.path("p")}, 2,
                 {dir.path("none.pbtxt")});
}

TEST(BadData, UsersWithOneInteraction) {
  Workdir dir;
  const std::string recipe = tiny_recipe_file(dir);
  // Only single-interaction users: nothing to learn from; the error says why.
  const std::string single = dir.write("single.txt", "1 10\n2 11\n3 12\n4 13\n");
  expect_failure({"train", "--data", single, "--format", "user-seq", "--config", recipe, "--out", dir.path("a/m.prc"),
                  kThreads},
                 2, {"2 or more items"});
  // Mixed with normal users: they are kept (in train) and the run works.
  const std::string mixed = dir.write("mixed.txt", synthetic_user_seq() + "900 150\n901 151\n");
  fs::create_directories(dir.path("b"));
  const RunResult r = run_prunerec({"train", "--data", mixed, "--config", recipe, "--out", dir.path("b/m.prc"), kThreads});  // not --quiet: the data line is checked
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("82 users"), std::string::npos) << r.err;
}

TEST(BadData, DuplicateRowsAreDroppedAndTrainingWorks) {
  Workdir dir;
  // Every event of a pairs file twice in a row: exact repeats, dropped
  // (Note [Chronological order and duplicates] in recsys/data/dataset.h).
  std::string once, twice;
  std::istringstream is(synthetic_user_seq(40, 30));
  for (std::string line; std::getline(is, line);) {
    std::istringstream fields(line);
    std::string user, item;
    fields >> user;
    while (fields >> item) {
      once += user + " " + item + "\n";
      twice += user + " " + item + "\n" + user + " " + item + "\n";
    }
  }
  const RunResult a = run_prunerec({"data", "stats", "--data", dir.write("once.txt", once)});
  const RunResult b = run_prunerec({"data", "stats", "--data", dir.write("twice.txt", twice)});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto interactions = [](const std::string& out) {
    const auto pos = out.find("interactions");
    return pos == std::string::npos ? std::string("?") : out.substr(pos, out.find('\n', pos) - pos);
  };
  EXPECT_EQ(interactions(b.out), interactions(a.out));
  fs::create_directories(dir.path("out"));
  const RunResult r = run_prunerec({"train", "--data", dir.path("twice.txt"), "--config", tiny_recipe_file(dir), "--out",
                                    dir.path("out/m.prc"), kThreads, "--quiet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(BadData, TrainIntoAFolderThatDoesNotExistYet) {
  // `--out runs/new/m.prc` with runs/new missing: train must create it (or refuse before
  // any training), never fail at the first checkpoint after the work is done.
  Workdir dir;
  const Teacher& t = shared_teacher();
  const RunResult r = run_prunerec({"train", "--data", t.data, "--config", tiny_recipe_file(dir), "--out",
                                    dir.path("new/sub/m.prc"), kThreads, "--quiet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir.path("new/sub/m.prc")));
}

// ---- checkpoints -----------------------------------------------------------------------

std::string damaged(const std::string& good, const std::string& kind) {
  std::string b = good;
  if (kind == "truncated") return b.substr(0, b.size() / 2);
  if (kind == "truncated-trailer") return b.substr(0, b.size() - 3);
  if (kind == "empty") return "";
  if (kind == "text") return "1 10 11\n2 12 13\n";
  if (kind == "bitflip-header") {
    b[20] = static_cast<char>(b[20] ^ 0x01);
  } else if (kind == "bitflip-manifest") {
    b[100] = static_cast<char>(b[100] ^ 0x08);
  } else if (kind == "bitflip-tensor") {
    b[b.size() - 200] = static_cast<char>(b[b.size() - 200] ^ 0x40);
  } else if (kind == "oversized") {
    // The header claims a manifest far beyond the file, with a consistent header checksum.
    const std::uint64_t huge = std::uint64_t{200} << 20;
    std::memcpy(b.data() + 16, &huge, 8);
    const std::uint32_t crc = crc32c(b.data(), 28);
    std::memcpy(b.data() + 28, &crc, 4);
  } else if (kind == "extended") {
    b += std::string(64, '\0');
  }
  return b;
}

class DamagedCheckpoint : public ::testing::TestWithParam<const char*> {};

TEST_P(DamagedCheckpoint, EveryCommandNamesTheFileExits1AndLeavesOutputsAlone) {
  const std::string kind = GetParam();
  Workdir dir;
  const Teacher& t = shared_teacher();
  const std::string bad = dir.write("bad.prc", damaged(read_bytes(t.model), kind));
  expect_failure({"inspect", "--model", bad}, 1, {bad});
  expect_failure({"eval", "--model", bad, "--data", t.data, kThreads}, 1, {bad});
  expect_failure({"recommend", "--model", bad, "--history", "101 102"}, 1, {bad});

  // Commands that write: earlier outputs stay as they were.
  const std::string out = dir.path("out");
  fs::create_directories(out + "/prune");
  dir.write("out/prune/report.json", "{\"earlier\": true}\n");
  dir.write("out/export/config.json", "{\"earlier\": true}\n");
  const Outputs outputs(out);
  expect_failure({"prune", "--teacher", bad, "--data", t.data, "--out", out + "/prune", kThreads, "--quiet"}, 1, {bad});
  expect_failure({"export", "--model", bad, "--out", out + "/export"}, 1, {bad});
  outputs.expect_unchanged("prune/export with a " + kind + " checkpoint");

  // A damaged resume state: train refuses it, naming it, and touches neither it nor the
  // best model beside it.
  const std::string run = dir.path("run");
  fs::create_directories(run);
  fs::copy_file(t.model, run + "/m.prc");
  dir.write("run/m.prc.state", read_bytes(bad));
  const Outputs run_outputs(run);
  expect_failure({"train", "--data", t.data, "--config", tiny_recipe_file(dir), "--out", run + "/m.prc", kThreads,
                  "--quiet"},
                 1, {run + "/m.prc.state"});
  run_outputs.expect_unchanged("train resuming from a " + kind + " state");
}

INSTANTIATE_TEST_SUITE_P(Kinds, DamagedCheckpoint,
                         ::testing::Values("truncated", "truncated-trailer", "empty", "text", "bitflip-header",
                                           "bitflip-manifest", "bitflip-tensor", "oversized", "extended"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// ---- recommend, schedules, flags -------------------------------------------------------

TEST(BadInput, UnknownItemsAtRecommendTime) {
  const Teacher& t = shared_teacher();
  const RunResult some = run_prunerec({"recommend", "--model", t.model, "--history", "101 no-such-item 102", "-k", "3"});
  EXPECT_EQ(some.exit_code, 0) << some.err;
  EXPECT_NE(some.err.find("no-such-item"), std::string::npos) << "the skipped id is not named:\n" << some.err;
  const RunResult json = run_prunerec({"recommend", "--model", t.model, "--history", "101,nope", "--json"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_NE(json.out.find("\"unknown_history_ids\": [\"nope\"]"), std::string::npos) << json.out;
  expect_failure({"recommend", "--model", t.model, "--history", "nope1 nope2"}, 2, {"none of the 2 history ids"});
}

TEST(BadInput, EvalOnDataWithItemsTheModelNeverSaw) {
  Workdir dir;
  const Teacher& t = shared_teacher();
  const std::string other = dir.write("other.txt", synthetic_user_seq(20, 10) + "999 5000 5001 5002\n");
  expect_failure({"eval", "--model", t.model, "--data", other, kThreads}, 2, {other, "unknown to the model"});
}

TEST(BadInput, SchedulesThatDoNotFitTheModel) {
  Workdir dir;
  const Teacher& t = shared_teacher();
  struct Case {
    const char* schedule;
    const char* mentions;
  };
  const Case cases[] = {
      {"", "no stages"},
      {"stages { kind: WIDTH_MLP keep_mlp_fraction: 1.5 }", "fractions must be in [0, 1]"},
      {"stages { kind: DEPTH keep_layers: 0 }", "keep_layers 0 is not in [1, 2]"},
      {"stages { kind: DEPTH keep_layers: -5 }", "keep_layers -5 is not in [1, 2]"},
      {"stages { kind: WIDTH_ATTENTION keep_hidden: 0 }", "keep_hidden must be at least 1"},
      {"stages { kind: WIDTH_MLP }", "has no keep_mlp target"},
      {"stages { kind: WIDTH_ATTENTION keep_heads: 1 head_score: \"klx\" }", "head_score"},
      {"stages { kind: WIDTH_ATTENTION keep_heads: 1 } bogus_field: 1", "bogus_field"},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.schedule);
    const std::string schedule = dir.write("schedule" + std::to_string(i) + ".pbtxt", c.schedule);
    const std::string out = dir.path("out" + std::to_string(i++));
    expect_failure({"prune", "--teacher", t.model, "--data", t.data, "--schedule", schedule, "--out", out, kThreads,
                    "--quiet", "--no-latency"},
                   2, {c.mentions});
    // A refused schedule is refused before any work: no output folder, or an empty one.
    EXPECT_EQ(snapshot(out).size(), 0u) << "a refused schedule left files in " << out;
  }
}

TEST(BadInput, RedoWithABadScheduleKeepsTheFinishedRun) {
  Workdir dir;
  const Teacher& t = shared_teacher();
  const std::string good = dir.write("good.pbtxt", tiny_schedule(1));
  const std::string out = dir.path("prune");
  const RunResult first = run_prunerec({"prune", "--teacher", t.model, "--data", t.data, "--schedule", good, "--out",
                                        out, kThreads, "--quiet", "--no-latency"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const Outputs outputs(out);
  // A valid but different schedule on a finished run: refused, the run stays as it is.
  const std::string other = dir.write("other.pbtxt", tiny_schedule(3));
  expect_failure({"prune", "--teacher", t.model, "--data", t.data, "--schedule", other, "--out", out, kThreads,
                  "--quiet", "--no-latency"},
                 2, {"different schedule"});
  outputs.expect_unchanged("prune with another schedule");
  // A schedule that does not fit the model: refused before anything is touched, with or
  // without --redo.
  const std::string bad = dir.write("bad.pbtxt", "stages { kind: DEPTH keep_layers: 0 }");
  for (bool redo : {false, true}) {
    std::vector<std::string> cmd{"prune", "--teacher", t.model, "--data", t.data, "--schedule", bad, "--out", out,
                                 kThreads, "--quiet", "--no-latency"};
    if (redo) cmd.push_back("--redo");
    expect_failure(cmd, 2, {"keep_layers 0 is not in [1, 2]"});
  }
  outputs.expect_unchanged("prune --redo with a bad schedule");
}

TEST(BadInput, RecipesThatAreWrong) {
  Workdir dir;
  const Teacher& t = shared_teacher();
  struct Case {
    const char* recipe;
    const char* mentions;
  };
  const Case cases[] = {
      {"", "recipe"},  // an empty file: the error must name it
      {"model { hidden: 16 num_layers: 1 layer_defaults { num_heads: 3 num_kv_heads: 2 mlp_width: 8 } }", "heads"},
      {"model { hidden: 16 num_layers: 1 layer_defaults { num_heads: 2 num_kv_heads: 1 } } train { epochs: 0 }",
       "epochs"},
      {"model { hidden: 16 num_layers: 1 layer_defaults { num_heads: 2 num_kv_heads: 1 } } train { dropout: 1.5 }",
       "dropout"},
      {"model { hidden: 16 num_layers: 1 } trian { }", "trian"},
      {"model { hidden: 16 num_layers: 1 layer_defaults { num_heads: 2 num_kv_heads: 1 } } train { optimizer { beta1: 1 } }",
       "beta"},
      // A warm-up longer than the run makes no sense; 1e30 steps does not fit an integer.
      {"model { hidden: 16 num_layers: 1 layer_defaults { num_heads: 2 num_kv_heads: 1 } } "
       "train { optimizer { warmup_fraction: 1e30 } }",
       "warmup_fraction"},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.recipe);
    const std::string recipe = dir.write("recipe" + std::to_string(i) + ".pbtxt", c.recipe);
    const std::string out = dir.path("out" + std::to_string(i++));
    fs::create_directories(out);
    std::string mention = c.mentions;
    if (mention == "recipe") mention = recipe;
    expect_failure({"train", "--data", t.data, "--config", recipe, "--out", out + "/m.prc", kThreads, "--quiet"}, 2,
                   {mention});
    EXPECT_EQ(snapshot(out).size(), 0u) << "a refused recipe left files in " << out;
  }
}

TEST(BadInput, WrongFlagsAreUsageErrorsOnOneLine) {
  Workdir dir;
  const Teacher& t = shared_teacher();
  const std::string recipe = tiny_recipe_file(dir);
  const std::string out = dir.path("x.prc");
  const std::vector<std::vector<std::string>> cases = {
      {"train", "--bogus", "1"},
      {"train", "--data", t.data},
      {"train", "--data", t.data, "--config", recipe, "--out", out, "--epochs", "abc"},
      {"train", "--data", t.data, "--config", recipe, "--out", out, "--epochs=-3", "--quiet"},
      {"train", "--data", t.data, "--config", recipe, "--out", out, "--seed", "-1", "--quiet"},
      {"train", "--data", t.data, "--config", recipe, "--out", out, "--threads", "99999999999"},
      {"eval"},
      {"eval", "--model", t.model, "--split", "foo"},
      {"eval", "--model", t.model, "--ranking", "foo"},
      {"recommend", "--model", t.model},
      {"recommend", "--model", t.model, "--history", "101", "-k", "0"},
      {"recommend", "--model", t.model, "--history", " , "},
      {"inspect", "--model"},
      {"data", "stats", "--data", t.data, "--format", "foo"},
      {"data", "stats", "--data", t.data, "--kcore", "abc"},
      {"data", "stats", "--data", t.data, "--split-kind", "foo"},
      {"data", "frobnicate"},
  };
  for (const auto& args : cases) {
    SCOPED_TRACE(args.size() > 4 ? args[args.size() - 2] + " " + args.back() : args.back());
    expect_failure(args, 2, {});
  }
  EXPECT_EQ(snapshot(dir.root()).count("x.prc"), 0u) << "a refused command wrote its output";
  // Unknown commands print the usage after the one-line error.
  const RunResult unknown = run_prunerec({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(unknown.err.rfind("prunerec: unknown command 'frobnicate'\n", 0), 0u) << unknown.err;
  EXPECT_EQ(run_prunerec({}).exit_code, 2);
  EXPECT_EQ(run_prunerec({"--help"}).exit_code, 0);
  EXPECT_EQ(run_prunerec({"train", "--help"}).exit_code, 0);
}

}  // namespace
}  // namespace prunerec::apps_test
