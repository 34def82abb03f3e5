// Tokenizers: text <-> token ids, behind one interface, for pretrained models (their own
// tokenizer files). This area depends on base/ only; PCRE2 and utf8proc stay inside it
// (the core libraries never see them).
//
//   std::unique_ptr<text::Tokenizer> tok = text::load_tokenizer("models/Qwen2-0.5B/tokenizer.json");
//   std::vector<std::int32_t> ids = tok->encode("Super Mario Odyssey");
//   std::string back = tok->decode(ids);                 // == the input for byte-level BPE
//
// Kinds (docs/import.md, "Tokenizers"):
//   Hugging Face tokenizer.json with a byte-level BPE model (GPT-2's, Qwen2's): Note
//     [byte-level BPE] in text/bpe.cc says exactly which parts of the format are read;
//     anything else (WordPiece, Unigram, other normalizers or pre-tokenizers) is refused
//     with the field's name and value.
//   SentencePiece model files (tokenizer.model, Llama's kind): through Debian's
//     libsentencepiece, loaded in its own symbol scope (Note [SentencePiece isolation] in
//     text/sentencepiece.cc); train_sentencepiece makes one from a list of strings.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace prunerec::text {

struct SpecialToken {
  std::string content;  // e.g. "<|endoftext|>"
  std::int32_t id = -1;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of UTF-8 text (ConfigError for text that is not valid UTF-8). No special
  // tokens are added (no BOS/EOS); special tokens written in the text are recognised.
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  // Text of token ids (ConfigError naming an id outside the vocabulary).
  virtual std::string decode(const std::vector<std::int32_t>& ids) const = 0;
  // One more than the largest id.
  virtual std::int32_t vocab_size() const = 0;
  // The tokens the file marks special (BPE: added tokens with "special": true), by id.
  virtual std::vector<SpecialToken> special_tokens() const = 0;
  // "byte-level-bpe" or "sentencepiece".
  virtual std::string kind() const = 0;
};

// A tokenizer from a file's bytes; `name` (a file name or path) is used in errors, and its
// content decides the kind: a JSON object is a tokenizer.json, a serialized SentencePiece
// ModelProto is a tokenizer.model. IoError naming `name` (and
// the field) for a file of another kind.
std::unique_ptr<Tokenizer> tokenizer_from_bytes(const std::string& name, std::string_view bytes);
// The same from a file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// Training a SentencePiece model on a list of strings (e.g. item titles).
struct SentencePieceTrainOptions {
  std::int32_t vocab_size = 8000;
  std::string model_type = "unigram";  // "unigram", "bpe", "char" or "word"
  double character_coverage = 1.0;    // share of characters the vocabulary must cover
  bool byte_fallback = false;          // unknown characters as <0xNN> byte pieces, not <unk>
  // false: vocab_size is an upper bound (small corpora may not support it).
  bool hard_vocab_limit = true;
};
// The serialized model (a tokenizer.model's bytes): ids 0, 1, 2 are <unk>, <s>, </s>.
// Deterministic: one training thread, every string used. ConfigError when SentencePiece
// refuses (e.g. vocab_size too large for the strings and hard_vocab_limit); IoError when
// the library is unavailable.
std::string train_sentencepiece(const std::vector<std::string>& sentences, const SentencePieceTrainOptions& options);

}  // namespace prunerec::text
