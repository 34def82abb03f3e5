// SentencePiece models (tokenizer.model) through Debian's libsentencepiece, isolated in
// its own symbol scope (Note [SentencePiece isolation] in text/sentencepiece.cc).
// Use through text/tokenizer.h; this header is for the area's own sources and tests.
#pragma once

#include <memory>

#include "text/tokenizer.h"

namespace prunerec::text {

struct SpmLibrary;  // the dlopen'ed shim (text/spm_shim.cc)

class SentencePiece : public Tokenizer {
 public:
  // Parses a serialized SentencePiece ModelProto; `name` names the file in errors (IoError).
  SentencePiece(const std::string& name, std::string_view bytes);
  ~SentencePiece() override;

  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override { return vocab_size_; }
  // The unknown piece and the control pieces (<s>, </s>, ...).
  std::vector<SpecialToken> special_tokens() const override;
  std::string kind() const override { return "sentencepiece"; }

  std::int32_t unk_id() const { return unk_id_; }
  std::int32_t bos_id() const { return bos_id_; }  // -1 when the model has none
  std::int32_t eos_id() const { return eos_id_; }
  std::int32_t pad_id() const { return pad_id_; }

 private:
  std::string name_;
  const SpmLibrary* lib_;
  void* handle_ = nullptr;
  std::vector<SpecialToken> specials_;  // unknown and control pieces, by id
  std::vector<SpecialToken> controls_;  // control pieces, longest first (Note [SentencePiece special tokens])
  std::vector<bool> is_control_;
  std::int32_t vocab_size_ = 0, unk_id_ = -1, bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
};

// True when a serialized ModelProto can start with this byte sequence (a tag of field 1,
// `pieces`, length-delimited): the check tokenizer_from_bytes uses to pick the kind.
bool looks_like_sentencepiece(std::string_view bytes);

}  // namespace prunerec::text
