// Title mode through the command line (docs/title-mode.md): train --mode title, eval and
// recommend on the model it writes, and the named errors for bad input.
#include <gtest/gtest.h>

#include <csignal>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nn/checkpoint_file.h"
#include "text/tokenizer.h"

#include "tests/api/json_reader.h"
#include "tests/apps/cli_runner.h"
#include "tests/apps/fixtures.h"

namespace prunerec::apps_test {
namespace {

using prunerec::testing::parse_json;

// Titles for synthetic_user_seq's items (raw ids 100..139): "<colour> widget <k>".
std::string titles_tsv(int items, int untitled = -1) {
  const char* colours[] = {"red", "green", "blue", "grey", "black"};
  std::ostringstream os;
  for (int k = 0; k < items; ++k)
    if (k != untitled) os << 100 + k << '\t' << colours[k % 5] << " widget " << k << '\n';
  return os.str();
}

struct TitleRun {
  Workdir dir;
  std::string data = dir.write("seq.txt", synthetic_user_seq(80, 40));
  std::string titles = dir.write("titles.tsv", titles_tsv(40));
  std::string tmpl = dir.write("prompt.txt", "bought: {history}\nnext: ");
  std::string recipe = dir.write("tiny.pbtxt", tiny_recipe(2, 0));
  std::vector<std::string> train_args(const std::string& out) const {
    return {"train", "--mode", "title", "--data", data, "--titles", titles, "--template", tmpl, "--config", recipe,
            "--max-len", "64", "--history", "3", "--vocab-size", "200", "--valid-limit", "20", "--out", out,
            "--quiet", kThreads};
  }
};

TEST(TitleCli, TrainEvalRecommend) {
  TitleRun t;
  const std::string model = t.dir.path("title.prc");
  std::vector<std::string> args = t.train_args(model);
  args.push_back("--json");
  const RunResult train = run_prunerec(args);
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto j = parse_json(train.out);
  EXPECT_EQ(j.at("mode").string, "title");
  EXPECT_EQ(j.at("test").at("num_examples").number, 80);  // every test user without --test-limit
  EXPECT_EQ(j.at("test").at("protocol").at("ranking").string, "title-generation");
  EXPECT_EQ(j.at("test").at("protocol").at("beams").number, 20);

  // eval prints every key item-token mode prints (and @3).
  const RunResult eval = run_prunerec({"eval", "--model", model, "--json", kThreads});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const auto e = parse_json(eval.out);
  EXPECT_EQ(e.at("protocol").at("split").string, "test");
  EXPECT_EQ(e.at("protocol").at("split_kind").string, "leave-one-out");
  for (const char* m : {"HR", "NDCG", "MRR"})
    for (int k : {1, 3, 5, 10, 20}) EXPECT_TRUE(e.at("metrics").has(std::string(m) + "@" + std::to_string(k))) << m << k;
  // The same model evaluated twice gives the same numbers (the train command's test).
  EXPECT_EQ(e.at("metrics").at("NDCG@10").number, j.at("test").at("metrics").at("NDCG@10").number);
  const RunResult text = run_prunerec({"eval", "--model", model, "--limit", "5", kThreads});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("title generation, 20 beams"), std::string::npos) << text.out;

  // recommend from item ids and from free titles: answers are catalogue items and titles.
  for (const std::vector<std::string>& history :
       {std::vector<std::string>{"--history", "103 104"}, std::vector<std::string>{"--history-titles", "red widget 0|any text"}}) {
    std::vector<std::string> rargs = {"recommend", "--model", model, "-k", "5", "--json"};
    rargs.insert(rargs.end(), history.begin(), history.end());
    const RunResult rec = run_prunerec(rargs);
    ASSERT_EQ(rec.exit_code, 0) << rec.err;
    const auto items = parse_json(rec.out).at("items").array;
    ASSERT_EQ(items.size(), 5u);
    for (const auto& it : items) {
      const std::string id = it.at("ids").array.at(0).string;
      const int k = std::stoi(id) - 100;
      ASSERT_TRUE(k >= 0 && k < 40) << id;
      EXPECT_NE(it.at("title").string.find("widget " + std::to_string(k)), std::string::npos) << it.at("title").string;
    }
  }
  // inspect names the title-mode parts: the trained tokenizer, the history, the catalogue.
  const RunResult inspect = run_prunerec({"inspect", "--model", model, "--json"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  const auto tm = parse_json(inspect.out).at("title_mode");
  EXPECT_EQ(tm.at("history").number, 3);
  EXPECT_EQ(tm.at("items").number, 40);
  EXPECT_EQ(tm.at("distinct_titles").number, 40);
  EXPECT_GT(tm.at("pieces").number, 0);
  EXPECT_LE(tm.at("pieces").number, 200);  // --vocab-size 200 is an upper bound
  EXPECT_NE(tm.at("tokenizer").string.find("trained on the catalogue"), std::string::npos) << tm.at("tokenizer").string;
  const RunResult inspect_text = run_prunerec({"inspect", "--model", model});
  ASSERT_EQ(inspect_text.exit_code, 0) << inspect_text.err;
  EXPECT_NE(inspect_text.out.find("title mode: tokenizer.model"), std::string::npos) << inspect_text.out;
  // Item-token-only flags are refused by name.
  const RunResult sampled = run_prunerec({"eval", "--model", model, "--ranking", "sampled"});
  EXPECT_EQ(sampled.exit_code, 2);
  EXPECT_NE(sampled.err.find("title-mode"), std::string::npos) << sampled.err;
}

TEST(TitleCli, BadInputIsNamed) {
  TitleRun t;
  {
    const std::string bad = t.dir.write("noslot.txt", "bought: these items\nnext: ");
    std::vector<std::string> args = t.train_args(t.dir.path("a.prc"));
    for (auto& a : args)
      if (a == t.tmpl) a = bad;
    const RunResult r = run_prunerec(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("noslot.txt"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("{history}"), std::string::npos) << r.err;
  }
  {
    const std::string partial = t.dir.write("partial.tsv", titles_tsv(40, /*untitled=*/7));
    std::vector<std::string> args = t.train_args(t.dir.path("b.prc"));
    for (auto& a : args)
      if (a == t.titles) a = partial;
    const RunResult r = run_prunerec(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("107"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("no title"), std::string::npos) << r.err;
  }
  {
    std::vector<std::string> args = t.train_args(t.dir.path("c.prc"));
    for (std::size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "--max-len") args[i + 1] = "4";
    const RunResult r = run_prunerec(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("context"), std::string::npos) << r.err;
  }
}

// --init: title mode from an imported model (the tiny Qwen2 fixture, given a SentencePiece
// tokenizer that fits its 96-token vocabulary): its weights and tokenizer are used, the
// model file records where it came from and stores no tokenizer of its own.
TEST(TitleCli, TrainsFromAnImportedModel) {
  TitleRun t;
  namespace fs = std::filesystem;
  const fs::path hf = fs::path(t.dir.root()) / "qwen2";
  fs::create_directories(hf);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fs::path(PRUNEREC_SOURCE_DIR) / "tests/fixtures/hf/qwen2" / f, hf / f);
  std::vector<std::string> sentences;
  for (int k = 0; k < 40; ++k) {
    std::ostringstream os;
    os << '"' << (k % 2 ? "red" : "blue") << " widget " << k << "\"\n";
    sentences.push_back(os.str());
  }
  sentences.push_back("bought: {history}\nnext: ");
  const std::string spm = text::train_sentencepiece(sentences, {.vocab_size = 80, .hard_vocab_limit = false});
  std::ofstream(hf / "tokenizer.model", std::ios::binary) << spm;
  const std::string base = t.dir.path("base.prc"), model = t.dir.path("title.prc");
  const RunResult imp = run_prunerec({"import", "--hf", hf.string(), "--out", base});
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  // Titles made of the words the tokenizer was trained on (no <unk> pieces).
  const std::string titles = t.dir.write("titles2.tsv", [] {
    std::ostringstream os;
    for (int k = 0; k < 40; ++k) os << 100 + k << '\t' << (k % 2 ? "red" : "blue") << " widget " << k << '\n';
    return os.str();
  }());
  std::vector<std::string> args = t.train_args(model);
  for (auto& a : args)
    if (a == t.titles) a = titles;
  for (std::size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--vocab-size") args.erase(args.begin() + static_cast<std::ptrdiff_t>(i), args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
  args.insert(args.end(), {"--init", base, "--test-limit", "7", "--json"});
  const RunResult train = run_prunerec(args);
  ASSERT_EQ(train.exit_code, 0) << train.err;
  EXPECT_EQ(parse_json(train.out).at("test").at("num_examples").number, 7);  // the first 7 of 80 test users
  const pb::Manifest m = nn::read_checkpoint_manifest(model);
  EXPECT_TRUE(m.has_title_mode());
  EXPECT_FALSE(m.title_mode().has_tokenizer());
  EXPECT_EQ(m.pretrained().architecture(), "Qwen2ForCausalLM");
  EXPECT_EQ(m.config().hidden(), 32);  // the imported shape, not the recipe's (16)
  EXPECT_EQ(m.metadata().at("title.init"), base);
  const RunResult eval = run_prunerec({"eval", "--model", model, "--json", "--limit", "10", kThreads});
  EXPECT_EQ(eval.exit_code, 0) << eval.err;
  const RunResult vocab = run_prunerec({"train", "--mode", "title", "--init", base, "--vocab-size", "50", "--data", t.data,
                                        "--out", t.dir.path("x.prc")});
  EXPECT_EQ(vocab.exit_code, 2);
}

// Title-mode runs resume as item-token ones do (recsys/run_state.h): the state goes beside
// the model; a rerun of a finished run does nothing, a higher --epochs extends it,
// --no-resume starts over, and a rerun with another template or other data is refused
// naming the state file.
TEST(TitleCli, RerunResumesExtendsAndRefusesAnotherRun) {
  TitleRun t;
  const std::string model = t.dir.path("title.prc"), state = model + ".state";
  auto train = [&](std::vector<std::string> extra, const std::string& tmpl = "", const std::string& data = "") {
    std::vector<std::string> args = t.train_args(model);
    for (auto& a : args) {
      if (!tmpl.empty() && a == t.tmpl) a = tmpl;
      if (!data.empty() && a == t.data) a = data;
    }
    std::erase(args, std::string("--quiet"));  // the resume lines go to stderr
    args.insert(args.end(), {"--test-limit", "5", "--json"});
    args.insert(args.end(), extra.begin(), extra.end());
    return run_prunerec(args);
  };
  const RunResult first = train({"--epochs", "1"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_TRUE(std::filesystem::exists(state));
  const auto one = parse_json(first.out);
  const double per_epoch = one.at("steps").number;
  EXPECT_GT(per_epoch, 0);
  EXPECT_TRUE(nn::read_checkpoint_manifest(state).has_title_mode());  // the template and tokenizer it used

  const RunResult again = train({"--epochs", "1"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("nothing to do"), std::string::npos) << again.err;
  EXPECT_EQ(parse_json(again.out).at("steps").number, per_epoch);
  // The best validation comes back from the state (exact: the same stored doubles).
  EXPECT_EQ(parse_json(again.out).at("valid").at("NDCG@10").number, one.at("valid").at("NDCG@10").number);

  const RunResult longer = train({"--epochs", "2"});
  ASSERT_EQ(longer.exit_code, 0) << longer.err;
  EXPECT_NE(longer.err.find("extending the finished run"), std::string::npos) << longer.err;
  EXPECT_EQ(parse_json(longer.out).at("epochs_run").number, 2);
  EXPECT_EQ(parse_json(longer.out).at("steps").number, 2 * per_epoch);

  const RunResult over = train({"--epochs", "1", "--no-resume"});
  ASSERT_EQ(over.exit_code, 0) << over.err;
  EXPECT_EQ(over.err.find("resum"), std::string::npos) << over.err;
  EXPECT_EQ(parse_json(over.out).at("steps").number, per_epoch);
  // The same seed and threads from scratch: the first run's validation, exactly.
  EXPECT_EQ(parse_json(over.out).at("valid").at("NDCG@10").number, one.at("valid").at("NDCG@10").number);

  const std::string other_template = t.dir.write("prompt2.txt", "history: {history}\nnext: ");
  const RunResult templ = train({"--epochs", "2"}, other_template);
  EXPECT_EQ(templ.exit_code, 2) << templ.err;
  for (const std::string& part : {state, std::string("prompt template"), std::string("--no-resume")})
    EXPECT_NE(templ.err.find(part), std::string::npos) << templ.err;

  // Other data with the same users, items and titles: the last item of user 1 changed.
  std::string seq = synthetic_user_seq(80, 40);
  const std::size_t eol = seq.find('\n'), last = seq.rfind(' ', eol);
  seq.replace(last + 1, eol - last - 1, seq.substr(last + 1, eol - last - 1) == "139" ? "100" : "139");
  const RunResult data = train({"--epochs", "2"}, "", t.dir.write("seq2.txt", seq));
  EXPECT_EQ(data.exit_code, 2) << data.err;
  for (const std::string& part : {state, std::string("other data"), std::string("--no-resume")})
    EXPECT_NE(data.err.find(part), std::string::npos) << data.err;
}

// SIGINT mid-run (after the second state written, checkpoint every 5 steps): exit 130 naming
// the state, and the rerun ends with the best model and the state bit for bit those of an
// uninterrupted run (the state's wall-clock seconds aside: compare_checkpoints).
TEST(TitleCli, SigintSavesStateAndTheRerunEndsBitIdentical) {
  TitleRun t;
  const std::string recipe = t.dir.write("tiny5.pbtxt", tiny_recipe(3, 5));
  auto args = [&](const std::string& out) {
    std::vector<std::string> a = t.train_args(out);
    for (auto& x : a)
      if (x == t.recipe) x = recipe;
    a.insert(a.end(), {"--test-limit", "5"});
    return a;
  };
  std::filesystem::create_directories(t.dir.path("ref"));
  std::filesystem::create_directories(t.dir.path("run"));
  const RunResult ref = run_prunerec(args(t.dir.path("ref/m.prc")));
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  RunResult stopped;
  {
    FolderWatch watch(t.dir.path("run"));
    Process p(args(t.dir.path("run/m.prc")), "title_interrupted");
    ASSERT_TRUE(watch.wait_for(FolderWatch::Event::kRenamedInto, "m.prc.state", 2, std::chrono::milliseconds(60000),
                               [&] { return !p.finished(); }))
        << "no second state seen";
    p.signal(SIGINT);
    stopped = p.wait();
  }
  ASSERT_EQ(stopped.exit_code, 130) << "signal " << stopped.signal << "\n" << stopped.err;
  EXPECT_NE(stopped.err.find("state saved to " + t.dir.path("run/m.prc.state")), std::string::npos) << stopped.err;
  EXPECT_EQ(temp_files(t.dir.path("run")), std::vector<std::string>{});
  EXPECT_FALSE(nn::read_checkpoint_manifest(t.dir.path("run/m.prc.state")).state().finished());
  const RunResult resumed = run_prunerec(args(t.dir.path("run/m.prc")));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(compare_checkpoints(t.dir.path("ref/m.prc"), t.dir.path("run/m.prc")), "");
  EXPECT_EQ(compare_checkpoints(t.dir.path("ref/m.prc.state"), t.dir.path("run/m.prc.state")), "");
}

// prune on a title-mode teacher (docs/title-mode.md, "Pruning"): one stage with a recovery
// epoch; the report has title-generation rows with generation latency, the stage's model
// is a title-mode model `eval` reads, and the flags of item-token mode only are refused.
TEST(TitleCli, PruneRunsTheScheduleAndWritesAReport) {
  TitleRun t;
  const std::string model = t.dir.path("title.prc");
  const RunResult train = run_prunerec(t.train_args(model));
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const std::string schedule = t.dir.write("s.pbtxt", R"(seed: 3
    calibration { sequences: 24 seed: 7 batch_size: 8 }
    recovery_defaults { alpha: 0.5 temperature: 1.0 train { epochs: 1 batch_size: 16 optimizer { lr: 3e-3 } } }
    stages { name: "s1" kind: WIDTH_ATTENTION keep_heads: 1 keep_hidden: 12 })");
  const std::string out = t.dir.path("prune");
  const RunResult run = run_prunerec({"prune", "--teacher", model, "--schedule", schedule, "--out", out, "--beams", "5",
                                      "--valid-limit", "10", "--test-limit", "30", "--json", "--quiet", kThreads});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto j = parse_json(run.out);
  EXPECT_EQ(j.at("mode").string, "title");
  EXPECT_NE(j.at("protocol").string.find("title generation, 5 beams"), std::string::npos) << j.at("protocol").string;
  EXPECT_NE(j.at("protocol").string.find("the first 30 of 80 test examples"), std::string::npos) << j.at("protocol").string;
  const auto& stages = j.at("stages").array;
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[1].at("name").string, "s1");
  EXPECT_EQ(stages[1].at("config").at("hidden").number, 12);
  for (const auto& row : stages) {
    EXPECT_EQ(row.at("latency").at("measured").string, "title generation, 5 beams");
    EXPECT_GT(row.at("latency").at("one_user_ms").number, 0);
    EXPECT_TRUE(row.at("metrics").has("HR@3"));  // title mode's cut-offs
    EXPECT_FALSE(row.has("flops_per_recommendation"));
  }
  EXPECT_EQ(stages[1].at("recovery_epochs").number, 1);
  EXPECT_TRUE(stages[0].has("vs_final"));
  EXPECT_EQ(stages[0].at("vs_final").at("n").number, 30);  // the first 30 of 80 test users (--test-limit)
  for (const char* f : {"report.json", "report.md", "s1.prc", "s1.pruned.prc", "s1.plan.pbtxt", "s1.scores.json",
                        "final.prc"})
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(out) / f)) << f;
  const RunResult eval = run_prunerec({"eval", "--model", out + "/final.prc", "--limit", "5", "--json", kThreads});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_EQ(parse_json(eval.out).at("protocol").at("ranking").string, "title-generation");
  // Run again: every stage is done, nothing is recomputed.
  const RunResult again = run_prunerec({"prune", "--teacher", model, "--schedule", schedule, "--out", out, "--beams",
                                        "5", "--valid-limit", "10", "--test-limit", "30", kThreads});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("s1: done"), std::string::npos) << again.err;

  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--controls", "scratch"},
                                               std::vector<std::string>{"--seeds", "2"},
                                               std::vector<std::string>{"--budgets", "1"}}) {
    std::vector<std::string> args = {"prune", "--teacher", model, "--schedule", schedule, "--out", t.dir.path("x"),
                                     kThreads};
    args.insert(args.end(), extra.begin(), extra.end());
    const RunResult refused = run_prunerec(args);
    EXPECT_EQ(refused.exit_code, 2) << extra[0];
    EXPECT_NE(refused.err.find(extra[0] + " applies to item-token models only"), std::string::npos) << refused.err;
  }
}

}  // namespace
}  // namespace prunerec::apps_test
