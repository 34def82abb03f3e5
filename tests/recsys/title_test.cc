// Title mode (recsys/title/): prompts and targets, the trie, constrained beam search
// against exhaustive scoring, the KV cache against recomputation, the rank rule, and a
// small model that learns a deterministic-successor catalogue.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <sstream>
#include <iostream>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>

#include "base/error.h"
#include "nn/transformer.h"
#include "recsys/title/generate.h"
#include "recsys/title/title_data.h"
#include "recsys/title/title_eval.h"
#include "recsys/title/title_train.h"
#include "recsys/title/trie.h"
#include "tests/common/expect_error.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"
#include "tests/recsys/title_fixture.h"

namespace prunerec::recsys {
namespace {

// Sum of the target tokens' log-probabilities after the prompt, from one full forward pass
// over prompt ++ target (no cache, no trie).
double full_log_prob(const nn::Transformer& net, const std::vector<std::int32_t>& prompt,
                     const std::vector<std::int32_t>& target) {
  std::vector<std::int32_t> seq = prompt;
  seq.insert(seq.end(), target.begin(), target.end());
  const auto T = static_cast<std::int64_t>(seq.size());
  const Tensor ids = Tensor::from_vector(seq, {1, T});
  ag::NoGradGuard no_grad;
  const Tensor h = net.hidden(ids, Tensor::from_vector(std::vector<std::int32_t>{0})).value();  // [1, T, d]
  const Tensor lp = head_log_softmax(h.select(0, 0).contiguous(), net.output_weight().value());  // [T, V]
  double s = 0;
  for (std::size_t k = 0; k < target.size(); ++k) {
    const std::int64_t pos = static_cast<std::int64_t>(prompt.size() + k) - 1;
    s += lp.data<float>()[pos * lp.size(1) + target[k]];
  }
  return s;
}

const std::vector<std::string> kTitles = {"red apple", "red apple pie", "green apple", "red car",
                                          "blue car fast", "blue sky", "apple", "sky red blue"};

TEST(TitleData, TemplateNeedsExactlyOneHistorySlot) {
  EXPECT_THROW(PromptTemplate("no slot here", "t.txt"), ConfigError);
  EXPECT_THROW(PromptTemplate("{history} and {history}", "t.txt"), ConfigError);
  try {
    PromptTemplate("no slot", "my_template.txt");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("my_template.txt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("{history}"), std::string::npos) << e.what();
  }
  const PromptTemplate t("The user bought: {history}\nnext:", "t.txt");
  const std::vector<std::string> h = {"a b", "c"};
  EXPECT_EQ(t.render(h), "The user bought: \"a b\", \"c\"\nnext:");
  EXPECT_EQ(target_text("a b"), "\"a b\"\n");
}

TEST(TitleData, BadCataloguesAreNamedErrors) {
  WordCodec words(kTitles);
  EXPECT_THROW(tokenize_titles(ItemCatalog{}, words.codec(), 0), ConfigError);
  ItemCatalog c = catalog_of({"red apple", "", "blue sky"});
  try {
    tokenize_titles(c, words.codec(), 0);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("i1"), std::string::npos) << e.what();
  }
  // "blue car fast" is 7 tokens with quotes, newline and EOS: a context of 7 leaves no room
  // for a prompt.
  try {
    tokenize_titles(catalog_of({"red", "blue car fast"}), words.codec(), 7);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("i1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("context"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(tokenize_titles(catalog_of({"red", "blue car fast"}), words.codec(), 8));
}

TEST(TitleData, HistoryItemWithoutTitleIsNamed) {
  WordCodec words(kTitles);
  ItemCatalog c = catalog_of({"red apple", "", "blue sky"});
  const PromptTemplate t("{history}", "t");
  const std::vector<std::int32_t> history = {0, 1};
  try {
    encode_prompt(c, history, t, words.codec(), {}, "user u7");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("user u7"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("item i1"), std::string::npos) << e.what();
  }
}

TEST(TitleData, PromptUsesTheLastItemsAndLossIsOnTargetTokensOnly) {
  WordCodec words(kTitles);
  const TitleCodec codec = words.codec();
  const ItemCatalog c = catalog_of(kTitles);
  const PromptTemplate t("{history}:", "t");
  const std::vector<std::int32_t> history = {0, 1, 2, 3};
  const auto p = encode_prompt(c, history, t, codec, {.history = 2}, "u");
  EXPECT_EQ(p, codec.encode("\"green apple\", \"red car\":"));
  const TitleTable table = tokenize_titles(c, codec, 0);
  EXPECT_EQ(table.tokens[5], (std::vector<std::int32_t>{codec.encode("\"blue sky\"\n").front(),
                                                         codec.encode("blue").front(), codec.encode("sky").front(),
                                                         codec.encode("\"").front(), codec.encode("\n").front(), 0}));
  const std::vector<TitleSequence> seqs = {make_sequence(p, 5, table, 0), make_sequence({7}, 6, table, 0)};
  const std::vector<std::int32_t> rows = {0, 1};
  const TitleBatch b = make_title_batch(seqs, rows);
  const std::int64_t T = b.ids.size(1);
  ASSERT_EQ(T, static_cast<std::int64_t>(seqs[0].ids.size()) - 1);
  // Row 0: the last 6 inputs predict the 6 target tokens; prompt positions before are -1.
  std::int64_t supervised = 0;
  for (std::int64_t t2 = 0; t2 < T; ++t2) {
    const std::int32_t target = b.targets.data<std::int32_t>()[t2];
    const bool in_target = t2 + 1 >= seqs[0].prompt_len;
    if (in_target) {
      EXPECT_EQ(target, seqs[0].ids[static_cast<std::size_t>(t2 + 1)]);
      ++supervised;
    } else {
      EXPECT_EQ(target, -1);
    }
  }
  EXPECT_EQ(supervised, 6);
  EXPECT_EQ(b.positions, 6 + 5);  // row 1: "apple" = quote, apple, quote, newline, EOS after a 1-token prompt
  EXPECT_EQ(b.pads.data<std::int32_t>()[1], T - 5);
  // Left truncation keeps the prompt's end and the whole target.
  const TitleSequence cut = make_sequence(p, 5, table, 8);
  EXPECT_EQ(cut.ids.size(), 8u);
  EXPECT_EQ(cut.prompt_len, 2);
  EXPECT_EQ(cut.ids[1], p.back());
}

TEST(TitleTrie, CollidingTitlesShareOneNodeThatListsEveryItem) {
  WordCodec words(kTitles);
  const ItemCatalog c = catalog_of({"red apple", "blue sky", "red apple", "red car"});
  const TitleTable table = tokenize_titles(c, words.codec(), 0);
  const TitleTrie trie(table);
  EXPECT_EQ(trie.num_titles(), 3);
  // Follow item 0's tokens.
  std::int32_t node = trie.root();
  for (std::int32_t tok : table.tokens[0]) {
    const auto ch = trie.children(node);
    EXPECT_TRUE(std::is_sorted(ch.begin(), ch.end(), [](auto a, auto b) { return a.token < b.token; }));
    const auto it = std::find_if(ch.begin(), ch.end(), [&](auto e) { return e.token == tok; });
    ASSERT_NE(it, ch.end());
    node = it->node;
  }
  const auto items = trie.items(node);
  EXPECT_EQ(std::vector<std::int32_t>(items.begin(), items.end()), (std::vector<std::int32_t>{0, 2}));
  EXPECT_EQ(trie.height(trie.root()), 6);  // quote, red, apple, quote, newline, EOS
  EXPECT_EQ(trie.height(node), 0);
}

// Hand-made beams: the rank is the first beam whose node lists the target.
TEST(TitleEval, RankRuleOnHandMadeBeams) {
  WordCodec words(kTitles);
  const ItemCatalog c = catalog_of({"red apple", "blue sky", "red apple", "red car"});
  const TitleTable table = tokenize_titles(c, words.codec(), 0);
  const TitleTrie trie(table);
  auto terminal_of = [&](std::int32_t item) {
    std::int32_t node = trie.root();
    for (std::int32_t tok : table.tokens[static_cast<std::size_t>(item)])
      for (const auto& e : trie.children(node))
        if (e.token == tok) {
          node = e.node;
          break;
        }
    return node;
  };
  std::vector<GeneratedTitle> beams(3);
  beams[0].node = terminal_of(3);  // red car
  beams[1].node = terminal_of(0);  // red apple (items 0 and 2)
  beams[2].node = terminal_of(1);  // blue sky
  EXPECT_EQ(title_rank(beams, trie, 3), 0);
  EXPECT_EQ(title_rank(beams, trie, 0), 1);
  EXPECT_EQ(title_rank(beams, trie, 2), 1);  // the collision rule: a hit for either item
  EXPECT_EQ(title_rank(beams, trie, 1), 2);
  const std::vector<GeneratedTitle> two(beams.begin(), beams.begin() + 2);
  EXPECT_EQ(title_rank(two, trie, 1), kNotGenerated);
  MetricAccumulator acc(title_ks());
  acc.add(title_rank(beams, trie, 2));   // rank 1
  acc.add(title_rank(two, trie, 1));     // miss
  const auto m = acc.result();
  EXPECT_DOUBLE_EQ(m.at("HR@1"), 0.0);
  EXPECT_DOUBLE_EQ(m.at("HR@3"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("HR@20"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("NDCG@3"), 0.5 / std::log2(3.0));
  EXPECT_DOUBLE_EQ(m.at("MRR@5"), 0.25);
}

struct Fixture {
  WordCodec words{kTitles};
  ItemCatalog catalog = catalog_of(kTitles);
  TitleTable table = tokenize_titles(catalog, words.codec(), 0);
  TitleTrie trie{table};
  std::unique_ptr<nn::Transformer> net = tiny_model(words.size(), 64, 7);
  std::vector<std::vector<std::int32_t>> prompts = {
      words.codec().encode("\"red apple\", \"blue sky\":"), words.codec().encode("\"apple\":"),
      words.codec().encode("\"sky red blue\", \"red car\", \"green apple\":")};
};

// With B >= the number of titles the search is exhaustive (Note [constrained beam
// search]): the same titles in the same order as scoring each with a full forward pass.
TEST(TitleGenerate, BeamSearchEqualsExhaustiveScoringWhenBeamsCoverTheCatalogue) {
  Fixture f;
  for (int beams : {8, 12}) {
    const auto out = generate_titles(*f.net, f.trie, f.prompts, {.beams = beams, .users_per_batch = 2});
    for (std::size_t p = 0; p < f.prompts.size(); ++p) {
      std::vector<std::pair<double, std::int32_t>> expected;  // (score, item)
      for (std::int32_t i = 0; i < f.catalog.size(); ++i) {
        const auto& t = f.table.tokens[static_cast<std::size_t>(i)];
        expected.emplace_back(full_log_prob(*f.net, f.prompts[p], t) / static_cast<double>(t.size()), i);
      }
      std::stable_sort(expected.begin(), expected.end(), [](auto a, auto b) { return a.first > b.first; });
      ASSERT_EQ(out[p].size(), f.catalog.size()) << "beams " << beams;
      for (std::size_t k = 0; k < expected.size(); ++k) {
        const auto items = f.trie.items(out[p][k].node);
        ASSERT_EQ(items.size(), 1u);
        EXPECT_EQ(items[0], expected[k].second) << "prompt " << p << " rank " << k;
        // f32 logits summed over <= 7 tokens; the cached and full paths differ in GEMM
        // summation order (~1e-6 relative per logit), far below 1e-4.
        EXPECT_NEAR(out[p][k].score, expected[k].first, 1e-4) << "prompt " << p << " rank " << k;
        EXPECT_EQ(out[p][k].tokens, f.table.tokens[static_cast<std::size_t>(items[0])]);
      }
      // Scores are apart enough here that the order is not decided by float noise.
      for (std::size_t k = 1; k < expected.size(); ++k) EXPECT_GT(expected[k - 1].first - expected[k].first, 1e-3);
    }
  }
}

TEST(TitleGenerate, EveryAnswerIsACatalogueTitleAndDistinct) {
  Fixture f;
  for (int beams : {1, 3, 5}) {
    const auto out = generate_titles(*f.net, f.trie, f.prompts, {.beams = beams});
    for (const auto& user : out) {
      EXPECT_EQ(user.size(), static_cast<std::size_t>(beams));
      std::vector<std::int32_t> nodes;
      for (const auto& g : user) {
        ASSERT_TRUE(f.trie.terminal(g.node));
        const auto items = f.trie.items(g.node);
        EXPECT_EQ(g.tokens, f.table.tokens[static_cast<std::size_t>(items[0])]);
        nodes.push_back(g.node);
      }
      std::sort(nodes.begin(), nodes.end());
      EXPECT_EQ(std::unique(nodes.begin(), nodes.end()), nodes.end());
      EXPECT_TRUE(std::is_sorted(user.begin(), user.end(), [](auto& a, auto& b) { return a.score > b.score; }));
    }
  }
}

TEST(TitleGenerate, CachedDecodingEqualsRecomputationFromScratch) {
  Fixture f;
  for (int beams : {2, 8}) {
    const auto cached = generate_titles(*f.net, f.trie, f.prompts, {.beams = beams, .use_cache = true});
    const auto fresh = generate_titles(*f.net, f.trie, f.prompts, {.beams = beams, .use_cache = false});
    for (std::size_t p = 0; p < f.prompts.size(); ++p) {
      ASSERT_EQ(cached[p].size(), fresh[p].size());
      for (std::size_t k = 0; k < cached[p].size(); ++k) {
        EXPECT_EQ(cached[p][k].tokens, fresh[p][k].tokens);
        // Same tolerance and reason as above (attention over the cache vs the whole sequence).
        EXPECT_NEAR(cached[p][k].log_prob, fresh[p][k].log_prob, 1e-4);
      }
    }
  }
}

TEST(TitleGenerate, PromptTooLongForTheContextIsAnError) {
  Fixture f;
  auto small = tiny_model(f.words.size(), 8, 1);
  EXPECT_THROW(generate_titles(*small, f.trie, {f.prompts[0]}, {}), ConfigError);
}

// The fused head (Note [fused head logsumexp]) against the materialised log-softmax, on a
// vocabulary that spans several blocks and ends in a partial one.
TEST(TitleGenerate, FusedHeadLogsumexpMatchesTheFullHead) {
  const std::int64_t R = 5, V = 2 * 1024 + 37, d = 24;
  Tensor h = Tensor::empty({R, d}), W = Tensor::empty({V, d});
  fill_normal(h, 0, 1, 3, 0);
  fill_normal(W, 0, 1, 3, 1);
  const Tensor lse = head_logsumexp(h, W);
  const Tensor lp = head_log_softmax(h, W);
  for (std::int64_t r = 0; r < R; ++r) {
    // log-softmax + lse = logit; check lse through logsumexp of lp being 0.
    double s = 0;
    for (std::int64_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(lp.data<float>()[r * V + v]));
    EXPECT_NEAR(s, 1.0, 1e-4);  // f32 log-probabilities of ~2,000 terms
    double dot0 = 0;
    for (std::int64_t k = 0; k < d; ++k) dot0 += static_cast<double>(h.data<float>()[r * d + k]) * W.data<float>()[k];
    // logit - lse from the fused pass equals the full head's log-probability (f32 values
    // of size ~10: 1e-4 absolute).
    EXPECT_NEAR(dot0 - lse.data<float>()[r], lp.data<float>()[r * V], 1e-4);
  }
}

// A catalogue whose next item is always the successor of the last one (item k -> k+1),
// with two-word titles: a small model must learn to write the successor's title.
TEST(TitleTrain, LearnsADeterministicSuccessorCatalogue) {
  const SuccessorCatalogue f;
  const SequenceDataset& data = f.data;
  const DataSplit& split = f.split;
  const TitleTask& task = f.task;
  const auto& train = f.train;
  const WordCodec& words = f.words;
  auto net = tiny_model(words.size(), 64, 11, /*hidden=*/32, /*layers=*/2);
  // Before training the same evaluation is far from the bar (it is not met by construction).
  const EvalResult untrained = evaluate_titles(*net, data, split, task, {.split = "test", .beams = {.beams = 20}});
  EXPECT_LT(untrained.metrics.at("HR@10"), 0.7) << to_json(untrained);
  TitleTrainSpec spec;
  spec.train = &train;
  spec.config = successor_train_config();
  const TitleTrainResult r = train_title_model(*net, spec);
  ASSERT_EQ(r.loss_curve.size(), 8u);
  EXPECT_LT(r.loss_curve.back(), r.loss_curve.front());
  const EvalResult test = evaluate_titles(*net, data, split, task, {.split = "test", .beams = {.beams = 20}});
  EXPECT_EQ(test.protocol.ranking, "title-generation");
  EXPECT_EQ(test.protocol.beams, 20);
  EXPECT_NE(describe(test.protocol).find("title generation, 20 beams"), std::string::npos);
  // A model that ignores the history ranks the target at random among 24 titles: HR@10
  // about 10/24.
  EXPECT_GE(test.metrics.at("HR@10"), 0.9) << to_json(test);
  std::cout << "successor catalogue, title mode: " << to_json(test) << "\n";
  for (const char* key : {"HR@1", "HR@3", "HR@5", "HR@10", "HR@20", "NDCG@3", "MRR@20"}) EXPECT_TRUE(test.metrics.count(key)) << key;
}

// Same seed and thread count: the same weights, bit for bit (shuffles by Rng(seed, epoch),
// dropout masks by (seed, step)).
TEST(TitleTrain, SameSeedGivesTheSameBits) {
  WordCodec words(kTitles);
  SequenceDataset data;
  data.items = catalog_of(kTitles);
  for (int u = 0; u < 12; ++u) {
    data.users.push_back(std::to_string(u));
    data.sequences.push_back({u % 8, (u + 1) % 8, (u + 3) % 8, (u + 2) % 8});
  }
  const DataSplit split = leave_one_out(data);
  const TitleTask task(PromptTemplate("{history}:", "t"), words.codec(), data.items, {.history = 3, .max_context = 64});
  const auto train = training_sequences(data, split, task.tmpl, task.codec, task.table, task.options);
  pb::TrainConfig cfg;
  cfg.set_epochs(2);
  cfg.set_batch_size(5);
  cfg.set_dropout(0.1);
  cfg.set_seed(9);
  std::vector<std::unique_ptr<nn::Transformer>> nets;
  for (int run = 0; run < 2; ++run) {
    nets.push_back(tiny_model(words.size(), 64, 4));
    TitleTrainSpec spec;
    spec.train = &train;
    spec.config = cfg;
    train_title_model(*nets.back(), spec);
  }
  const auto a = nets[0]->named_parameters(), b = nets[1]->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Tensor x = a[i].second.value().contiguous(), y = b[i].second.value().contiguous();
    EXPECT_EQ(std::memcmp(x.data<float>(), y.data<float>(), static_cast<std::size_t>(x.numel()) * sizeof(float)), 0)
        << a[i].first;
  }
}

// The small catalogue of SameSeedGivesTheSameBits: 12 users, 8 titles, 3 epochs of 2
// batches (dropout on, so the masks must follow the step), validated after every epoch.
struct SmallTitleRun {
  WordCodec words{kTitles};
  SequenceDataset data = [] {
    SequenceDataset d;
    d.items = catalog_of(kTitles);
    for (int u = 0; u < 12; ++u) {
      d.users.push_back(std::to_string(u));
      d.sequences.push_back({u % 8, (u + 1) % 8, (u + 3) % 8, (u + 2) % 8});
    }
    return d;
  }();
  DataSplit split = leave_one_out(data);
  TitleTask task{PromptTemplate("{history}:", "t"), words.codec(), data.items, {.history = 3, .max_context = 64}};
  std::vector<TitleSequence> train = training_sequences(data, split, task.tmpl, task.codec, task.table, task.options);
  std::filesystem::path dir;

  explicit SmallTitleRun(const std::string& name) : dir(std::filesystem::path(::testing::TempDir()) / name) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  TitleTrainSpec spec(const std::string& state_name, int epochs) const {
    TitleTrainSpec s;
    s.train = &train;
    s.config.set_epochs(epochs);
    s.config.set_batch_size(5);
    s.config.set_dropout(0.1);
    s.config.set_seed(9);
    s.config.set_checkpoint_every_steps(3);  // a state mid-epoch 2, besides the epoch ends
    s.validate = [this](const nn::Transformer& m) {
      return evaluate_titles(m, data, split, task, {.split = "valid", .beams = {.beams = 4}, .stoppable = false});
    };
    s.state_path = (dir / state_name).string();
    return s;
  }
};

void expect_same_weights(const nn::Transformer& x, const nn::Transformer& y) {
  const auto a = x.named_parameters(), b = y.named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Tensor u = a[i].second.value().contiguous(), v = b[i].second.value().contiguous();
    EXPECT_EQ(std::memcmp(u.data<float>(), v.data<float>(), static_cast<std::size_t>(u.numel()) * sizeof(float)), 0)
        << a[i].first;
  }
}

// Note [resumable training] for title mode: a run stopped mid-epoch 2 (one step into it,
// past the mid-epoch checkpoint) or at the end of epoch 1 (the stop is taken before epoch 2's first step), each resumed
// by a fresh process-like call on a freshly built model, ends with the same weights and
// curves, bit for bit, as the run never stopped. Exact equality, no tolerance: nothing a
// step computes depends on the past except through the saved state.
TEST(TitleTrain, StoppedAndResumedRunEndsBitIdentical) {
  const SmallTitleRun f("prunerec_title_resume_test");
  const auto per_epoch = static_cast<std::int64_t>((f.train.size() + 4) / 5);
  ASSERT_GE(per_epoch, 3);  // so that epoch 2 has a middle and a checkpoint (every 3 steps) in it
  auto reference = tiny_model(f.words.size(), 64, 4);
  const TitleTrainResult ref = train_title_model(*reference, f.spec("ref.state", 3));
  ASSERT_EQ(ref.valid_curve.size(), 3u);
  ASSERT_EQ(ref.steps, 3 * per_epoch);
  for (const std::int64_t stop_after : {per_epoch + 1, per_epoch - 1}) {  // mid-epoch 2; the end of epoch 1
    SCOPED_TRACE("stopped after step " + std::to_string(stop_after + 1));
    const std::string state = "stop" + std::to_string(stop_after) + ".state";
    std::atomic<bool> stop{false};
    {
      auto net = tiny_model(f.words.size(), 64, 4);
      TitleTrainSpec spec = f.spec(state, 3);
      spec.stop = &stop;
      spec.on_step = [&](std::int64_t step, double) {
        if (step == stop_after) stop = true;
      };
      const std::string msg = testing::error_message<Interrupted>([&] { train_title_model(*net, spec); });
      EXPECT_NE(msg.find(spec.state_path), std::string::npos) << msg;
    }
    auto net = tiny_model(f.words.size(), 64, 4);
    std::ostringstream log;
    TitleTrainSpec spec = f.spec(state, 3);
    spec.log = &log;
    spec.progress = Progress::Mode::kSilent;
    const TitleTrainResult r = train_title_model(*net, spec);
    EXPECT_TRUE(r.resumed);
    EXPECT_NE(log.str().find("resuming from"), std::string::npos) << log.str();
    EXPECT_EQ(r.steps, ref.steps);
    EXPECT_EQ(r.best_epoch, ref.best_epoch);
    EXPECT_EQ(r.loss_curve, ref.loss_curve);
    EXPECT_EQ(r.valid_curve, ref.valid_curve);
    EXPECT_EQ(r.best_valid.metrics, ref.best_valid.metrics);
    expect_same_weights(*net, *reference);
  }
}

// A finished run rerun with more epochs continues (Note [extending a run]); with the same
// epochs it does nothing; other training sequences or another recipe are refused, naming
// the state file; resume = false starts over.
TEST(TitleTrain, ResumeExtendsAndRefusesAnotherRun) {
  SmallTitleRun f("prunerec_title_extend_test");
  auto net = tiny_model(f.words.size(), 64, 4);
  train_title_model(*net, f.spec("run.state", 2));
  std::ostringstream log;
  TitleTrainSpec same = f.spec("run.state", 2);
  same.log = &log;
  same.progress = Progress::Mode::kSilent;
  const TitleTrainResult done = train_title_model(*net, same);
  const auto per_epoch = static_cast<std::int64_t>((f.train.size() + 4) / 5);
  EXPECT_EQ(done.steps, 2 * per_epoch);
  EXPECT_NE(log.str().find("nothing to do"), std::string::npos) << log.str();
  const TitleTrainResult longer = train_title_model(*net, f.spec("run.state", 3));
  EXPECT_TRUE(longer.resumed);
  EXPECT_EQ(longer.epochs_run, 3);
  EXPECT_EQ(longer.steps, 3 * per_epoch);
  EXPECT_EQ(longer.valid_curve.size(), 3u);

  const std::string state = f.spec("run.state", 3).state_path;
  std::vector<TitleSequence> fewer(f.train.begin() + 1, f.train.end());
  ASSERT_EQ((fewer.size() + 4) / 5, (f.train.size() + 4) / 5);  // other data, the same batch count
  TitleTrainSpec other_data = f.spec("run.state", 4);
  other_data.train = &fewer;
  testing::expect_error_with<ConfigError>([&] { train_title_model(*net, other_data); },
                                          {state, "other data", "--no-resume"});
  TitleTrainSpec other_recipe = f.spec("run.state", 4);
  other_recipe.config.mutable_optimizer()->set_lr(1e-2);
  testing::expect_error_with<ConfigError>([&] { train_title_model(*net, other_recipe); },
                                          {state, "another training recipe", "--no-resume"});
  TitleTrainSpec over = f.spec("run.state", 2);
  over.resume = false;
  const TitleTrainResult fresh = train_title_model(*net, over);
  EXPECT_FALSE(fresh.resumed);
  EXPECT_EQ(fresh.steps, 2 * per_epoch);
}


// --samples-per-user N keeps each user's last N targets, with their full histories.
TEST(TitleData, SamplesPerUserKeepsEachUsersLastTargets) {
  WordCodec words(kTitles);
  SequenceDataset data;
  data.items = catalog_of(kTitles);
  data.users = {"a", "b"};
  data.sequences = {{0, 1, 2, 3, 4, 5, 6}, {7, 6, 5}};  // training parts: 5 items and 1 item
  const DataSplit split = leave_one_out(data);
  const PromptTemplate t("{history}:", "t");
  TitleDataOptions all{.history = 3, .max_context = 64};
  const TitleTable table = tokenize_titles(data.items, words.codec(), 64);
  const auto every = training_sequences(data, split, t, words.codec(), table, all);
  ASSERT_EQ(every.size(), 4u);  // targets 1..4 of user a; user b's one training item has none
  TitleDataOptions last2 = all;
  last2.samples_per_user = 2;
  const auto kept = training_sequences(data, split, t, words.codec(), table, last2);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].item, 3);
  EXPECT_EQ(kept[1].item, 4);
  EXPECT_EQ(kept[0].ids, every[2].ids);  // the same sequence as with every target kept
  EXPECT_EQ(kept[1].ids, every[3].ids);
}

// Note [length-grouped batches]: every sequence exactly once per epoch, the seed fixes the
// batches, and batches are far more uniform in length than random ones.
TEST(TitleTrain, LengthGroupedBatchesCoverEverySequenceOnce) {
  std::vector<TitleSequence> seqs(1000);
  Rng lengths(7);
  for (auto& s : seqs) s.ids.assign(static_cast<std::size_t>(2 + lengths.below(300)), 1);
  Rng a(3, 1), b(3, 1);
  const auto batches = length_grouped_batches(seqs, 8, a);
  EXPECT_EQ(batches, length_grouped_batches(seqs, 8, b));
  std::vector<int> seen(seqs.size(), 0);
  std::int64_t padded = 0, real = 0;
  for (const auto& batch : batches) {
    EXPECT_LE(batch.size(), 8u);
    std::size_t longest = 0;
    for (std::int32_t r : batch) {
      ++seen[static_cast<std::size_t>(r)];
      longest = std::max(longest, seqs[static_cast<std::size_t>(r)].ids.size());
      real += static_cast<std::int64_t>(seqs[static_cast<std::size_t>(r)].ids.size());
    }
    padded += static_cast<std::int64_t>(longest * batch.size());
  }
  for (int s : seen) EXPECT_EQ(s, 1);
  // Random batches of 8 lengths uniform on [2, 302) pad to about 8/9 of 300 on average
  // (about 1.75x the real tokens); windows of 512 sorted sequences leave gaps of about
  // 300/512 between neighbours, so padding stays within a few percent.
  EXPECT_LT(static_cast<double>(padded), 1.05 * static_cast<double>(real));
}

}  // namespace
}  // namespace prunerec::recsys
