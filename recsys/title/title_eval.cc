#include "recsys/title/title_eval.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"
#include "recsys/eval/evaluator.h"

namespace prunerec::recsys {

TitleTask::TitleTask(PromptTemplate tmpl_in, TitleCodec codec_in, const ItemCatalog& items, TitleDataOptions options_in)
    : tmpl(std::move(tmpl_in)),
      codec(std::move(codec_in)),
      options(options_in),
      table(tokenize_titles(items, codec, options.max_context)),
      trie(table) {}

namespace {
// Cut from the left so the longest title still fits the context.
void fit_prompt(std::vector<std::int32_t>& p, const TitleDataOptions& options, const TitleTable& table) {
  // Room for the longest title (the trie's height): the prompt is cut from the left.
  if (options.max_context > 0) {
    const auto room = std::max<std::int64_t>(1, options.max_context - static_cast<std::int64_t>(table.longest));
    if (static_cast<std::int64_t>(p.size()) > room) p.erase(p.begin(), p.end() - room);
  }
}
}  // namespace

std::vector<std::int32_t> TitleTask::prompt(const ItemCatalog& items, std::span<const std::int32_t> history,
                                            const std::string& who) const {
  std::vector<std::int32_t> p = encode_prompt(items, history, tmpl, codec, options, who);
  fit_prompt(p, options, table);
  return p;
}

std::vector<std::int32_t> TitleTask::prompt_from_titles(std::span<const std::string> titles) const {
  PR_CHECK_T(ConfigError, !titles.empty(), "title mode: no history titles");
  const std::size_t n = std::min<std::size_t>(titles.size(), static_cast<std::size_t>(options.history));
  for (const auto& t : titles) PR_CHECK_T(ConfigError, !t.empty(), "title mode: an empty history title");
  std::vector<std::int32_t> p = codec.encode(tmpl.render(titles.subspan(titles.size() - n)));
  fit_prompt(p, options, table);
  return p;
}

std::int64_t title_rank(std::span<const GeneratedTitle> beams, const TitleTrie& trie, std::int32_t target) {
  for (std::size_t b = 0; b < beams.size(); ++b) {
    const auto items = trie.items(beams[b].node);
    if (std::find(items.begin(), items.end(), target) != items.end()) return static_cast<std::int64_t>(b);
  }
  return kNotGenerated;
}

std::vector<int> title_ks() { return {1, 3, 5, 10, 20}; }

EvalResult evaluate_titles(const nn::Transformer& net, const SequenceDataset& data, const DataSplit& split,
                           const TitleTask& task, const TitleEvalOptions& options, Progress* progress) {
  const auto t0 = std::chrono::steady_clock::now();
  Protocol protocol;
  protocol.split = options.split;
  protocol.split_kind = split.kind;
  protocol.ranking = "title-generation";
  protocol.beams = options.beams.beams;
  protocol.exclude_history = false;
  validate(protocol);
  PR_CHECK_T(ConfigError, protocol.split == "valid" || protocol.split == "test",
             "evaluate_titles: split must be valid or test, got '", protocol.split, "'");
  const std::vector<EvalExample>& all = protocol.split == "valid" ? split.valid : split.test;
  const std::int64_t n = options.limit > 0 ? std::min<std::int64_t>(options.limit, all.size()) : all.size();
  PR_CHECK_T(ConfigError, n > 0, "evaluate_titles: the ", protocol.split, " split has no examples");

  std::vector<std::int64_t> ranks(static_cast<std::size_t>(n), kNotGenerated);
  // Chunks of users: the stop request and progress are checked between them.
  const std::int64_t chunk = std::max(1, options.beams.users_per_batch) * 4;
  for (std::int64_t c0 = 0; c0 < n; c0 += chunk) {
    if (options.stoppable) stop_point("title evaluation (" + protocol.split + " split)");
    const std::int64_t c1 = std::min(n, c0 + chunk);
    std::vector<std::vector<std::int32_t>> prompts;
    for (std::int64_t i = c0; i < c1; ++i) {
      const EvalExample& e = all[static_cast<std::size_t>(i)];
      const auto& seq = data.sequences[static_cast<std::size_t>(e.user)];
      prompts.push_back(task.prompt(data.items, std::span<const std::int32_t>(seq.data(), static_cast<std::size_t>(e.prefix_len)),
                                    "user " + data.users[static_cast<std::size_t>(e.user)]));
    }
    const auto generated = generate_titles(net, task.trie, prompts, options.beams);
    for (std::int64_t i = c0; i < c1; ++i)
      ranks[static_cast<std::size_t>(i)] =
          title_rank(generated[static_cast<std::size_t>(i - c0)], task.trie, all[static_cast<std::size_t>(i)].target);
    if (progress) progress->update(c1, "");
  }
  EvalResult result = result_from_ranks(protocol, std::move(ranks), all, title_ks());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace prunerec::recsys
