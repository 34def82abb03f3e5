// Byte-level BPE from a Hugging Face tokenizer.json (Note [byte-level BPE] in bpe.cc).
// Use through text/tokenizer.h; this header is for the area's own sources and tests.
#pragma once

#include <array>
#include <memory>
#include <unordered_map>

#include "text/tokenizer.h"

namespace prunerec::text {

class ByteLevelBpe : public Tokenizer {
 public:
  // Parses tokenizer.json text; `name` names the file in errors (IoError).
  ByteLevelBpe(const std::string& name, std::string_view json);
  ~ByteLevelBpe() override;

  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override { return vocab_size_; }
  std::vector<SpecialToken> special_tokens() const override;
  std::string kind() const override { return "byte-level-bpe"; }

 private:
  struct Regex;
  struct Added {
    std::string content;
    std::int32_t id;
    bool special;
  };
  struct Merge {
    std::int32_t rank, id;
  };
  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  static std::int32_t byte_alphabet_cp(unsigned char c);
  void encode_text(std::string_view text, std::vector<std::int32_t>& out) const;  // no added tokens inside
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const;

  std::string name_;
  std::unordered_map<std::string, std::int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_token_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  std::vector<Added> added_;      // longest content first
  std::vector<int> added_by_id_;  // id -> index in added_, or -1
  std::array<std::int32_t, 256> byte_ids_{};
  std::unordered_map<std::int32_t, std::uint8_t> byte_of_codepoint_;
  std::unique_ptr<Regex> regex_;
  std::int32_t vocab_size_ = 0;
  bool nfc_ = false, ignore_merges_ = false;
};

}  // namespace prunerec::text
