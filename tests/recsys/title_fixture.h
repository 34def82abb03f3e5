// Title-mode test fixtures shared by tests/recsys/title_test.cc and
// tests/prune/title_prune_test.cc: a word-level tokenizer, a catalogue from titles, and
// the deterministic-successor catalogue (every user walks item k, k+1, k+2, ... around a
// ring of 24 titled items, so the next title is a function of the last one).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "nn/transformer.h"
#include "proto/train.pb.h"
#include "recsys/data/split.h"
#include "recsys/title/title_data.h"
#include "recsys/title/title_eval.h"
#include "tensor/rng.h"

namespace prunerec::recsys {

// A word-level tokenizer for tests: '"', ',', '\n' and ':' are tokens of their own,
// spaces separate words, every other run of characters is a word of a fixed dictionary.
// Id 0 is EOS. An unknown word is a test bug (thrown).
class WordCodec {
 public:
  explicit WordCodec(const std::vector<std::string>& texts) {
    add("<eos>");
    for (const char* p : {"\"", ",", "\n", ":"}) add(p);
    for (const auto& t : texts)
      for (const auto& w : split(t)) add(w);
  }
  TitleCodec codec() const {
    return {.encode = [this](std::string_view s) {
              std::vector<std::int32_t> ids;
              for (const auto& w : split(s)) {
                const auto it = ids_.find(w);
                if (it == ids_.end()) throw ConfigError("WordCodec: unknown word '" + w + "'");
                ids.push_back(it->second);
              }
              return ids;
            },
            .eos = 0};
  }
  std::int32_t size() const { return static_cast<std::int32_t>(ids_.size()); }

 private:
  static std::vector<std::string> split(std::string_view s) {
    std::vector<std::string> out;
    std::string word;
    auto flush = [&] {
      if (!word.empty()) out.push_back(word);
      word.clear();
    };
    for (char c : s) {
      if (c == ' ') {
        flush();
      } else if (c == '"' || c == ',' || c == '\n' || c == ':') {
        flush();
        out.emplace_back(1, c);
      } else {
        word += c;
      }
    }
    flush();
    return out;
  }
  void add(const std::string& w) { ids_.emplace(w, static_cast<std::int32_t>(ids_.size())); }
  std::map<std::string, std::int32_t> ids_;
};

inline ItemCatalog catalog_of(const std::vector<std::string>& titles) {
  ItemCatalog c;
  for (std::size_t i = 0; i < titles.size(); ++i) {
    std::string id = std::to_string(i);
    id.insert(id.begin(), 'i');  // (not "i" + ...: GCC 12's -Wrestrict false positive)
    c.add(id);
    c.set_title(static_cast<std::int32_t>(i), titles[i]);
  }
  return c;
}

// A small title-mode model: head_dim 8, 2 heads sharing 1 KV head per layer, MLP 2 x hidden,
// init_std 0.5 (far from uniform, so titles get clearly different scores).
inline std::unique_ptr<nn::Transformer> tiny_model(std::int32_t vocab, std::int64_t max_len, std::uint64_t seed,
                                            int hidden = 16, int layers = 2) {
  pb::ModelConfig c;
  c.set_name("tiny");
  c.set_vocab_size(vocab);
  c.set_hidden(hidden);
  c.set_head_dim(8);
  c.set_max_len(max_len);
  c.set_num_layers(layers);
  c.mutable_layer_defaults()->set_num_heads(2);
  c.mutable_layer_defaults()->set_num_kv_heads(1);
  c.mutable_layer_defaults()->set_mlp_width(2 * hidden);
  c.set_init_std(0.5);
  return std::make_unique<nn::Transformer>(c, DType::f32, seed);
}

// The recipe that teaches tiny_model(.., hidden 32, 2 layers) the successor catalogue below
// to HR@10 >= 0.9 (TitleTest's bar): 8 epochs of 32 sequences, no dropout, lr 3e-3, seed 3.
inline pb::TrainConfig successor_train_config() {
  pb::TrainConfig cfg;
  cfg.set_epochs(8);
  cfg.set_batch_size(32);
  cfg.set_dropout(0.0);
  cfg.set_seed(3);
  cfg.mutable_optimizer()->set_lr(3e-3);
  return cfg;
}

// 24 items titled "<colour> w<k>", 160 users each walking 5 to 10 consecutive items of the
// ring from a seeded start, leave-one-out split, prompts "{history}:" of the last 4 titles
// in a context of 64 tokens, every training target.
struct SuccessorCatalogue {
  SuccessorCatalogue() = default;
  SuccessorCatalogue(const SuccessorCatalogue&) = delete;  // task's codec points at words
  SuccessorCatalogue& operator=(const SuccessorCatalogue&) = delete;
  static constexpr std::int32_t kItems = 24;
  static std::vector<std::string> titles() {
    std::vector<std::string> t;
    const char* colours[] = {"red", "green", "blue", "grey"};
    for (std::int32_t k = 0; k < kItems; ++k) t.push_back(std::string(colours[k % 4]) + " w" + std::to_string(k));
    return t;
  }
  static SequenceDataset make_data() {
    SequenceDataset data;
    data.items = catalog_of(titles());
    Rng rng(5, 0);
    for (int u = 0; u < 160; ++u) {
      data.users.push_back(std::to_string(u));
      data.users.back().insert(data.users.back().begin(), 'u');
      const auto start = static_cast<std::int32_t>(rng.below(kItems));
      const auto len = static_cast<std::int32_t>(5 + rng.below(6));
      std::vector<std::int32_t> seq;
      for (std::int32_t k = 0; k < len; ++k) seq.push_back((start + k) % kItems);
      data.sequences.push_back(seq);
    }
    return data;
  }
  WordCodec words{titles()};
  SequenceDataset data = make_data();
  DataSplit split = leave_one_out(data);
  TitleTask task{PromptTemplate("{history}:", "test template"), words.codec(), data.items,
                 {.history = 4, .max_context = 64}};
  std::vector<TitleSequence> train = training_sequences(data, split, task.tmpl, task.codec, task.table, task.options);
};

}  // namespace prunerec::recsys
