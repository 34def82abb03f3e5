// Title mode's evaluation: for every held-out example, the prompt of its history, B
// generated titles (recsys/title/generate.h), and the rank of the target among them; the
// same metrics (HR/NDCG/MRR, at 1, 3, 5, 10, 20) and JSON record as item-token mode, under
// the protocol "title-generation" with B beams.
//
//   TitleTask task(tmpl, codec, data.items, {.history = 10, .max_context = 256});
//   EvalResult r = evaluate_titles(net, data, split, task, {.split = "test"});
//
// Rank rule (spec 2.6, D3's calc.py): the 0-based index of the first beam whose title is
// the target's; with Note [title collisions], the first beam whose trie node lists the
// target among its items. A target no beam wrote gets kNotGenerated, which no cut-off K
// reaches (a miss at every K). History items are not excluded: the beams are what the
// model wrote, as in the paper.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>

#include "recsys/eval/metrics.h"
#include "recsys/progress.h"
#include "recsys/title/generate.h"
#include "recsys/title/title_data.h"
#include "recsys/title/trie.h"

namespace prunerec::recsys {

// Everything title mode needs besides the model: template, tokenizer, tokenised titles
// and their trie.
struct TitleTask {
  TitleTask(PromptTemplate tmpl, TitleCodec codec, const ItemCatalog& items, TitleDataOptions options);
  PromptTemplate tmpl;
  TitleCodec codec;
  TitleDataOptions options;
  TitleTable table;
  TitleTrie trie;
  // Prompt tokens of a history, cut from the left so the longest title still fits the
  // context.
  std::vector<std::int32_t> prompt(const ItemCatalog& items, std::span<const std::int32_t> history,
                                   const std::string& who) const;
  // The same from titles (oldest first; the last options.history are used), which need
  // not be catalogue titles. ConfigError for no titles or an empty one.
  std::vector<std::int32_t> prompt_from_titles(std::span<const std::string> titles) const;
};

constexpr std::int64_t kNotGenerated = std::numeric_limits<std::int32_t>::max();

// The rank rule above, on generated titles (best first).
std::int64_t title_rank(std::span<const GeneratedTitle> beams, const TitleTrie& trie, std::int32_t target);

// The cut-offs of title mode: 1, 3, 5, 10, 20 (the paper's, with item-token mode's 1, 5,
// 10, 20 among them).
std::vector<int> title_ks();

struct TitleEvalOptions {
  std::string split = "test";   // "valid" or "test"
  BeamOptions beams;
  std::int64_t limit = 0;       // evaluate only the first `limit` examples (0 = all)
  bool stoppable = true;        // check the stop request between batches
};

EvalResult evaluate_titles(const nn::Transformer& net, const SequenceDataset& data, const DataSplit& split,
                           const TitleTask& task, const TitleEvalOptions& options, Progress* progress = nullptr);

}  // namespace prunerec::recsys
