// Fuzz target for tokenizer.json reading and byte-level BPE (text/tokenizer.h).
// The first input byte picks the mode:
//   even: the rest is a tokenizer file (tokenizer_from_bytes); if it loads, it encodes and
//         decodes a fixed mixed-script string;
//   odd:  the rest is text for a fixed small byte-level BPE (all 256 byte symbols, a few
//         merges, an added token): encode, then decode, which must give the text back for
//         valid UTF-8 (that tokenizer has no normaliser); invalid UTF-8 must be refused.
#include <string>

#include "base/json.h"
#include "tests/fuzz/fuzz_common.h"
#include "text/tokenizer.h"

namespace prunerec::fuzz {
namespace {

std::string byte_symbol(int b) {
  auto printable = [](int k) { return (k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || k >= 0xAE; };
  int cp = b;
  if (!printable(b)) {
    cp = 256;
    for (int k = 0; k < b; ++k) cp += !printable(k);
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

const text::Tokenizer& small_bpe() {
  static const std::unique_ptr<text::Tokenizer> tok = [] {
    Json vocab;
    vocab.begin_object();
    for (int b = 0; b < 256; ++b) vocab.key(byte_symbol(b)).value(b);
    vocab.key("he").value(256).key("ll").value(257).key("hell").value(258).key("Ġt").value(259);
    vocab.end_object();
    const std::string json =
        R"({"added_tokens": [{"id": 300, "content": "<|end|>", "special": true}], "normalizer": null,)"
        R"("pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},)"
        R"("decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": )" + vocab.str() +
        R"(, "merges": ["h e", "l l", "he ll", "Ġ t"]}})";
    return text::tokenizer_from_bytes("small.json", json);
  }();
  return *tok;
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static const std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace
}  // namespace prunerec::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prunerec;
  static const bool quiet = (fuzz::silence_protobuf_logging(), true);
  (void)quiet;
  if (size == 0) return 0;
  const std::string_view rest = fuzz::as_text(data + 1, size - 1);
  if (data[0] % 2 == 0) {
    fuzz::expect_errors("tokenizer_from_bytes", [&] {
      const auto tok = text::tokenizer_from_bytes("fuzz.json", rest);
      const std::vector<std::int32_t> ids = tok->encode("Super Mario 64 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
      (void)tok->decode(ids);
    });
    return 0;
  }
  const text::Tokenizer& tok = fuzz::small_bpe();
  const bool valid = fuzz::valid_utf8(rest);
  const bool ok = fuzz::expect_errors("encode", [&] {
    const std::vector<std::int32_t> ids = tok.encode(rest);
    fuzz::require(tok.decode(ids) == rest, "encode/decode", "decode(encode(s)) != s");
  });
  fuzz::require(ok == valid, "encode", valid ? "valid UTF-8 was refused" : "invalid UTF-8 was accepted");
  return 0;
}
