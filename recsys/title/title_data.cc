#include "recsys/title/title_data.h"

#include <algorithm>

#include "base/error.h"

namespace prunerec::recsys {

PromptTemplate::PromptTemplate(std::string text, std::string source) : text_(std::move(text)), source_(std::move(source)) {
  const std::size_t at = text_.find(kHistorySlot);
  PR_CHECK_T(ConfigError, at != std::string::npos, source_, ": the prompt template has no ", kHistorySlot,
             " slot (where the titles of the user's last items go)");
  PR_CHECK_T(ConfigError, text_.find(kHistorySlot, at + 1) == std::string::npos, source_,
             ": the prompt template has more than one ", kHistorySlot, " slot");
  slot_ = at;
}

std::string PromptTemplate::render(std::span<const std::string> history_titles) const {
  std::string list;
  for (std::size_t i = 0; i < history_titles.size(); ++i) {
    if (i > 0) list += ", ";
    list += "\"";
    list += history_titles[i];
    list += "\"";
  }
  std::string out = text_.substr(0, slot_);
  out += list;
  out += text_.substr(slot_ + kHistorySlot.size());
  return out;
}

std::string target_text(std::string_view title) {
  std::string out;
  out.reserve(title.size() + 3);
  out.push_back('"');
  out.append(title.data(), title.size());
  out.append("\"\n");
  return out;
}

TitleTable tokenize_titles(const ItemCatalog& items, const TitleCodec& codec, std::int64_t max_context) {
  PR_CHECK_T(ConfigError, items.size() > 0, "title mode: the item catalogue is empty (no items to write titles of)");
  PR_CHECK_T(ConfigError, codec.eos >= 0, "title mode: the tokenizer has no end-of-sequence token");
  std::vector<std::string> untitled;
  std::int32_t num_untitled = 0;
  for (std::int32_t i = 0; i < items.size(); ++i)
    if (items.title(i).empty()) {
      if (untitled.size() < 5) untitled.push_back(items.raw_ids[static_cast<std::size_t>(i)]);
      ++num_untitled;
    }
  if (num_untitled > 0) {
    std::string list;
    for (const auto& u : untitled) list += (list.empty() ? "" : ", ") + u;
    throw ConfigError("title mode: " + std::to_string(num_untitled) + " of " + std::to_string(items.size()) +
                      " items have no title (first: " + list +
                      "); every item must have one (give --titles, or an item map that reaches them)");
  }
  TitleTable table;
  table.eos = codec.eos;
  table.tokens.resize(static_cast<std::size_t>(items.size()));
  for (std::int32_t i = 0; i < items.size(); ++i) {
    std::vector<std::int32_t> t = codec.encode(target_text(items.title(i)));
    PR_CHECK_T(ConfigError, std::find(t.begin(), t.end(), codec.eos) == t.end(), "title mode: the title of item ",
               items.raw_ids[static_cast<std::size_t>(i)], " encodes to the end-of-sequence token");
    t.push_back(codec.eos);
    PR_CHECK_T(ConfigError, max_context <= 0 || static_cast<std::int64_t>(t.size()) < max_context,
               "title mode: the title of item ", items.raw_ids[static_cast<std::size_t>(i)], " (\"", items.title(i),
               "\") is ", t.size(), " tokens with its quotes and end-of-sequence, longer than the model's context ",
               max_context, " leaves after a one-token prompt");
    table.longest = std::max(table.longest, t.size());
    table.tokens[static_cast<std::size_t>(i)] = std::move(t);
  }
  return table;
}

std::vector<std::int32_t> encode_prompt(const ItemCatalog& items, std::span<const std::int32_t> history,
                                        const PromptTemplate& tmpl, const TitleCodec& codec,
                                        const TitleDataOptions& options, const std::string& who) {
  PR_CHECK_T(ConfigError, !history.empty(), "title mode: ", who, " has an empty history (nothing to put in the prompt)");
  PR_CHECK_T(ConfigError, options.history > 0, "title mode: history length must be > 0, got ", options.history);
  const std::size_t n = std::min<std::size_t>(history.size(), static_cast<std::size_t>(options.history));
  std::vector<std::string> titles;
  titles.reserve(n);
  for (std::size_t k = history.size() - n; k < history.size(); ++k) {
    const std::int32_t item = history[k];
    PR_CHECK_T(ConfigError, item >= 0 && item < items.size(), "title mode: ", who, ": history item ", item,
               " is outside the catalogue of ", items.size());
    const std::string& title = items.title(item);
    PR_CHECK_T(ConfigError, !title.empty(), "title mode: ", who, ": history item ",
               items.raw_ids[static_cast<std::size_t>(item)], " has no title");
    titles.push_back(title);
  }
  return codec.encode(tmpl.render(titles));
}

TitleSequence make_sequence(std::vector<std::int32_t> prompt, std::int32_t target, const TitleTable& table,
                            std::int64_t max_context) {
  const auto& t = table.tokens[static_cast<std::size_t>(target)];
  TitleSequence s;
  s.item = target;
  std::size_t keep = prompt.size();
  if (max_context > 0 && static_cast<std::int64_t>(prompt.size() + t.size()) > max_context)
    keep = static_cast<std::size_t>(std::max<std::int64_t>(1, max_context - static_cast<std::int64_t>(t.size())));
  keep = std::min(keep, prompt.size());
  s.ids.assign(prompt.end() - static_cast<std::ptrdiff_t>(keep), prompt.end());
  s.prompt_len = static_cast<std::int32_t>(s.ids.size());
  s.ids.insert(s.ids.end(), t.begin(), t.end());
  return s;
}

std::vector<TitleSequence> training_sequences(const SequenceDataset& data, const DataSplit& split,
                                              const PromptTemplate& tmpl, const TitleCodec& codec,
                                              const TitleTable& table, const TitleDataOptions& options) {
  std::vector<TitleSequence> out;
  for (std::size_t s = 0; s < split.train.size(); ++s) {
    const auto& seq = split.train[s];
    const std::string who = "user " + data.users[static_cast<std::size_t>(split.train_users[s])];
    std::size_t first = 1;
    if (options.samples_per_user > 0 && seq.size() > static_cast<std::size_t>(options.samples_per_user))
      first = std::max<std::size_t>(1, seq.size() - static_cast<std::size_t>(options.samples_per_user));
    for (std::size_t i = first; i < seq.size(); ++i) {
      const std::span<const std::int32_t> history(seq.data(), i);
      out.push_back(make_sequence(encode_prompt(data.items, history, tmpl, codec, options, who), seq[i], table,
                                  options.max_context));
    }
  }
  return out;
}

TitleBatch make_title_batch(const std::vector<TitleSequence>& sequences, std::span<const std::int32_t> rows) {
  std::int64_t T = 1;
  for (std::int32_t r : rows) T = std::max<std::int64_t>(T, static_cast<std::int64_t>(sequences[r].ids.size()) - 1);
  const auto B = static_cast<std::int64_t>(rows.size());
  TitleBatch b;
  b.ids = Tensor::full({B, T}, -1, DType::i32);
  b.targets = Tensor::full({B, T}, -1, DType::i32);
  b.pads = Tensor::empty({B}, DType::i32);
  std::int32_t* ids = b.ids.data<std::int32_t>();
  std::int32_t* targets = b.targets.data<std::int32_t>();
  for (std::int64_t r = 0; r < B; ++r) {
    const TitleSequence& s = sequences[rows[static_cast<std::size_t>(r)]];
    const auto n = static_cast<std::int64_t>(s.ids.size()) - 1;  // inputs
    const std::int64_t pad = T - n;
    b.pads.data<std::int32_t>()[r] = static_cast<std::int32_t>(pad);
    for (std::int64_t t = 0; t < n; ++t) {
      ids[r * T + pad + t] = s.ids[static_cast<std::size_t>(t)];
      if (t + 1 >= s.prompt_len) {
        targets[r * T + pad + t] = s.ids[static_cast<std::size_t>(t + 1)];
        ++b.positions;
      }
    }
  }
  return b;
}

}  // namespace prunerec::recsys
