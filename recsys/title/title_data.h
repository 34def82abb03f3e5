// Title mode's data (issue 15; docs/title-mode.md): prompts that list the titles of a
// user's last items, the next item's title as the target, and the token sequences the
// model trains on.
//
//   TitleCodec codec{.encode = [&](std::string_view s) { return tok.encode(s); }, .eos = 2};
//   PromptTemplate tmpl(read_file("title_prompt.txt"), "title_prompt.txt");   // needs {history}
//   TitleTable table = tokenize_titles(data.items, codec, /*max_context=*/512);
//   std::vector<TitleSequence> train = training_sequences(data, split, tmpl, codec, table, {});
//
//   sequence  = prompt tokens ++ target tokens
//   prompt    = encode(template with {history} = "t1", "t2", ..., the last 10 titles quoted)
//   target    = encode("\"" + title + "\"\n") ++ [EOS]          (the paper's spec 2.4)
//   loss      = next-token cross-entropy on the target tokens only (prompt positions -1)
//
// The tokenizer lives in text/, which this area does not link (docs/architecture.md): the
// caller hands in its encode function and end-of-sequence id as a TitleCodec. Prompt and
// target are encoded separately and concatenated, so a target's tokens are the same
// whatever the prompt before it, and the trie (recsys/title/trie.h) built from the same
// target encodings matches what the model was trained to write.
//
// Note [title collisions]: several items may carry the same title (editions, platforms
// listed apart). Their targets are the same token sequence, so no model can tell them
// apart from the title alone. The rule: the trie maps a title's token sequence to ALL the
// items that have it; one generated title stands for all of them; in metrics a beam is a
// hit when the target is any of its items (title_rank in recsys/title/title_eval.h).
// Items whose titles differ only in ways the tokenizer normalises away (SentencePiece's
// NFKC, whitespace) collide the same way, since the rule is on token sequences.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "recsys/data/dataset.h"
#include "recsys/data/split.h"
#include "tensor/tensor.h"

namespace prunerec::recsys {

// Text to token ids, and the id that ends a target.
struct TitleCodec {
  std::function<std::vector<std::int32_t>(std::string_view)> encode;
  std::int32_t eos = -1;
};

// The prompt's text with one slot, {history}, for the history's titles: each title in
// double quotes, joined by ", " (the paper's `"t1", "t2", ...`). The text is the user's to
// change (a file); the shipped default is apps/presets/template/title_prompt.txt.
class PromptTemplate {
 public:
  static constexpr std::string_view kHistorySlot = "{history}";
  // ConfigError naming `source` when the slot is missing or appears more than once.
  PromptTemplate(std::string text, std::string source);
  std::string render(std::span<const std::string> history_titles) const;
  const std::string& text() const { return text_; }
  const std::string& source() const { return source_; }

 private:
  std::string text_, source_;
  std::size_t slot_ = 0;  // offset of {history} in text_
};

// "\"" + title + "\"\n": what the model writes before EOS.
std::string target_text(std::string_view title);

// Every item's target tokens, target_text(title) encoded, then EOS.
struct TitleTable {
  std::vector<std::vector<std::int32_t>> tokens;  // per item
  std::int32_t eos = -1;
  std::size_t longest = 0;                        // tokens of the longest target
};
// ConfigError for an empty catalogue, for items without a title (naming the first few raw
// ids and the count), for a target whose encoding holds EOS, and for a target longer than
// max_context - 1 (the prompt needs at least one position), naming the item.
TitleTable tokenize_titles(const ItemCatalog& items, const TitleCodec& codec, std::int64_t max_context);

struct TitleDataOptions {
  int history = 10;               // the last `history` items go into the prompt
  std::int64_t max_context = 0;   // the model's context (its max_len); sequences must fit
  // Training samples per user: the last N targets of each training sequence (0 = every
  // target, the paper's samples). A cost knob: a user's later samples repeat the earlier
  // ones' prompts shifted by one item, so most of the signal survives a small N.
  int samples_per_user = 0;
};

// Prompt tokens for a history of dense items (oldest first; the last options.history are
// used). ConfigError naming the item's raw id (and `who`, e.g. "user u17") when one has no
// title; an empty history is a ConfigError.
std::vector<std::int32_t> encode_prompt(const ItemCatalog& items, std::span<const std::int32_t> history,
                                        const PromptTemplate& tmpl, const TitleCodec& codec,
                                        const TitleDataOptions& options, const std::string& who);

// One training sequence: prompt ++ target (the target's EOS last).
struct TitleSequence {
  std::vector<std::int32_t> ids;
  std::int32_t prompt_len = 0;   // ids[prompt_len:] are the target tokens
  std::int32_t item = -1;        // the target item
};

// prompt ++ table.tokens[target]; when longer than max_context, the prompt is cut from the
// left (the paper truncates from the left), so the target and the prompt's end stay.
TitleSequence make_sequence(std::vector<std::int32_t> prompt, std::int32_t target, const TitleTable& table,
                            std::int64_t max_context);

// The paper's samples (spec 2.3): every item after the first of each training sequence is
// a target, its history the items before it (up to options.history); with
// options.samples_per_user = N only the last N of them per user. In split's order.
std::vector<TitleSequence> training_sequences(const SequenceDataset& data, const DataSplit& split,
                                              const PromptTemplate& tmpl, const TitleCodec& codec,
                                              const TitleTable& table, const TitleDataOptions& options);

// A batch for the model's loss: ids = seq[:-1], targets[t] = seq[t+1] where t+1 is a
// target position, -1 elsewhere; rows left-padded with -1.
struct TitleBatch {
  Tensor ids, targets, pads;  // i32 [B, T], [B, T], [B]
  std::int64_t positions = 0; // supervised positions
};
TitleBatch make_title_batch(const std::vector<TitleSequence>& sequences, std::span<const std::int32_t> rows);

}  // namespace prunerec::recsys
