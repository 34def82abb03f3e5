#include "text/tokenizer.h"

#include "base/atomic_file.h"
#include "base/error.h"
#include "text/bpe.h"
#include "text/sentencepiece.h"

namespace prunerec::text {

std::unique_ptr<Tokenizer> tokenizer_from_bytes(const std::string& name, std::string_view bytes) {
  const std::size_t first = bytes.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && bytes[first] == '{') return std::make_unique<ByteLevelBpe>(name, bytes);
  if (looks_like_sentencepiece(bytes)) return std::make_unique<SentencePiece>(name, bytes);
  throw IoError(detail::str_cat(
      name, ": neither a tokenizer.json (a JSON object) nor a SentencePiece model (a serialized ModelProto)"));
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  constexpr std::size_t kMaxBytes = std::size_t{256} << 20;
  return tokenizer_from_bytes(path, read_file(path, kMaxBytes));
}

}  // namespace prunerec::text
