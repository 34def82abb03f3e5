// Tokenizers (text/tokenizer.h): a small hand-made byte-level BPE whose ids are worked out
// by hand; the real Qwen2/Qwen3 and GPT-2 vocabularies against independent JavaScript
// encoders (expected ids in tests/fixtures/tokenizers/expected.json, written by
// tools/make_tokenizer_fixtures.sh; the tokenizer files are too large to commit, so those
// checks run where PRUNEREC_TOKENIZER_DIR points at them and skip, saying so, elsewhere);
// decode(encode(s)) == s; and refusals of what the reader does not support.
#include "text/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/crc32c.h"
#include "base/error.h"
#include "base/json.h"
#include "tests/api/json_reader.h"

namespace prunerec::testing {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// GPT-2's byte alphabet, written out independently of text/bpe.cc.
std::string byte_symbol(int b) {
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int k = 0; k < b; ++k)
      if (!((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE))) ++n;
    cp = 256 + n;
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

// Bytes 0..255 have ids 0..255; then merges h+e=256, l+l=257, he+ll=258, Ġ+w=259, hell+o=260;
// added tokens <|end|> (special) = 300 and <x> (not special) = 301.
std::string tiny_tokenizer_json(const std::string& pre_tokenizer = "", const std::string& model_type = "BPE") {
  Json vocab;
  vocab.begin_object();
  for (int b = 0; b < 256; ++b) vocab.key(byte_symbol(b)).value(b);
  vocab.key("he").value(256).key("ll").value(257).key("hell").value(258).key("Ġw").value(259).key("hello").value(260);
  vocab.end_object();
  const std::string pre = pre_tokenizer.empty()
                              ? R"({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})"
                              : pre_tokenizer;
  return R"({"version": "1.0", "added_tokens": [)"
         R"({"id": 300, "content": "<|end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},)"
         R"({"id": 301, "content": "<x>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}],)"
         R"("normalizer": null, "pre_tokenizer": )" + pre +
         R"(, "post_processor": null, "decoder": {"type": "ByteLevel"}, "model": {"type": ")" + model_type +
         R"(", "vocab": )" + vocab.str() + R"(, "merges": ["h e", "l l", ["he", "ll"], "Ġ w", "hell o"]}})";
}

TEST(ByteLevelBpeTest, HandWorkedIds) {
  const auto tok = text::tokenizer_from_bytes("tiny.json", tiny_tokenizer_json());
  EXPECT_EQ(tok->kind(), "byte-level-bpe");
  EXPECT_EQ(tok->vocab_size(), 302);
  // "hello" merges h+e, l+l, he+ll, hell+o; " world" splits as " world" (one piece): Ġ+w,
  // then o, r, l, d stay bytes.
  EXPECT_EQ(tok->encode("hello world"), (std::vector<std::int32_t>{260, 259, 'o', 'r', 'l', 'd'}));
  // Added tokens are matched first and never split; text around them is encoded alone.
  EXPECT_EQ(tok->encode("he<|end|>ll<x>"), (std::vector<std::int32_t>{256, 300, 257, 301}));
  EXPECT_EQ(tok->decode({260, 259, 300, 'o', 301}), "hello w<|end|>o<x>");
  const std::vector<text::SpecialToken> special = tok->special_tokens();
  ASSERT_EQ(special.size(), 1u);
  EXPECT_EQ(special[0].content, "<|end|>");
  EXPECT_EQ(special[0].id, 300);
  // Bytes outside ASCII: one id per byte when nothing merges; round trip.
  const std::string s = "h\xc3\xa9 \xf0\x9f\x98\x80\n\t";
  EXPECT_EQ(tok->encode(s).size(), 10u);
  EXPECT_EQ(tok->decode(tok->encode(s)), s);
  EXPECT_TRUE(tok->encode("").empty());
}

TEST(ByteLevelBpeTest, NfcKeepsNulBytesAndComposes) {
  std::string json = tiny_tokenizer_json();
  json.replace(json.find("\"normalizer\": null"), 18, "\"normalizer\": {\"type\": \"NFC\"}");
  const auto tok = text::tokenizer_from_bytes("tiny-nfc.json", json);
  const std::string with_nul("a\0b", 3);
  EXPECT_EQ(tok->decode(tok->encode(with_nul)), with_nul);
  EXPECT_EQ(tok->decode(tok->encode("e\xcc\x81")), "\xc3\xa9");  // e + U+0301 -> U+00E9
}

TEST(ByteLevelBpeTest, BadInputIsRefusedByName) {
  auto expect_error = [](auto fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected one mentioning " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  const auto tok = text::tokenizer_from_bytes("tiny.json", tiny_tokenizer_json());
  expect_error([&] { tok->encode("bad \xff utf-8"); }, "not valid UTF-8 at byte 4");
  expect_error([&] { tok->decode({302}); }, "token id 302 is outside the vocabulary");
  expect_error([&] { tok->decode({299}); }, "token id 299 has no token");
  expect_error([&] { text::tokenizer_from_bytes("t.json", tiny_tokenizer_json("", "WordPiece")); }, "model.type = 'WordPiece'");
  expect_error([&] { text::tokenizer_from_bytes("t.json", tiny_tokenizer_json(R"({"type": "Whitespace"})")); },
               "pre_tokenizer");
  expect_error([&] { text::tokenizer_from_bytes("t.json", "{\"model\": "); }, "not valid JSON");
  expect_error([&] { text::tokenizer_from_bytes("t.bin", std::string("\x01\x05hello", 7)); },
               "t.bin: neither a tokenizer.json (a JSON object) nor a SentencePiece model");
  std::string merges_bad = tiny_tokenizer_json();
  merges_bad.replace(merges_bad.find("\"hell o\""), 8, "\"hel lo\"");
  expect_error([&] { text::tokenizer_from_bytes("t.json", merges_bad); }, "model.merges[4]");
}

// The reference encoders' ids (expected.json) for the committed strings.
class ReferenceTest : public ::testing::TestWithParam<std::string> {};

const char* tokenizer_dir() { return std::getenv("PRUNEREC_TOKENIZER_DIR"); }

std::unique_ptr<text::Tokenizer> reference_tokenizer(const std::string& which) {
  const char* dir = tokenizer_dir();
  if (!dir) return nullptr;
  const fs::path p = fs::path(dir) / which / "tokenizer.json";
  if (!fs::exists(p)) return nullptr;
  return text::load_tokenizer(p.string());
}

std::string skip_message(const std::string& which) {
  return "the " + which + " tokenizer.json is not here (set PRUNEREC_TOKENIZER_DIR after running "
         "tools/make_tokenizer_fixtures.sh); the reference comparison did not run";
}

const JsonValue& expected() {
  static const JsonValue v = parse_json(slurp(fs::path(PRUNEREC_SOURCE_DIR) / "tests/fixtures/tokenizers/expected.json"));
  return v;
}

// The committed strings, as the tokenizer's normaliser leaves them: Qwen's tokenizer.json
// normalises to NFC, so its one non-NFC case ("e" + U+0301) decodes precomposed (U+00E9).
std::string after_normalizer(const std::string& which, std::string s) {
  if (which != "qwen") return s;
  for (std::size_t at; (at = s.find("e\xcc\x81")) != std::string::npos;) s.replace(at, 3, "\xc3\xa9");
  return s;
}

TEST_P(ReferenceTest, CommittedStrings) {
  const std::string which = GetParam();
  const auto tok = reference_tokenizer(which);
  if (!tok) GTEST_SKIP() << skip_message(which);
  int compared = 0;
  for (const JsonValue& c : expected().at("cases").array) {
    const std::string& s = c.at("text").string;
    std::vector<std::int32_t> want;
    for (long long v : c.at(which).ints()) want.push_back(static_cast<std::int32_t>(v));
    const std::vector<std::int32_t> got = tok->encode(s);
    EXPECT_EQ(got, want) << "text: " << Json::quote(s);
    EXPECT_EQ(tok->decode(got), after_normalizer(which, s)) << Json::quote(s);
    ++compared;
  }
  EXPECT_GE(compared, 25);
}

// Every title of the shared data sets (not committed: their terms forbid redistribution;
// expected.json holds digests of the titles and of the reference ids).
TEST_P(ReferenceTest, SharedDataTitles) {
  const std::string which = GetParam();
  const auto tok = reference_tokenizer(which);
  if (!tok) GTEST_SKIP() << skip_message(which);
  const char* data_env = std::getenv("PRUNEREC_DATA");
  const fs::path data = data_env ? data_env : "/work/shared/data";
  int checked = 0;
  std::string skipped;
  for (const JsonValue& src : expected().at("sources").array) {
    const fs::path file = data / src.at("file").string;
    if (!fs::exists(file)) {
      skipped += " " + src.at("file").string + " (absent)";
      continue;
    }
    std::istringstream in(slurp(file));
    std::string line;
    if (src.at("header").boolean) std::getline(in, line);
    std::uint32_t text_crc = 0, ids_crc = 0;
    long long count = 0;
    const auto column = static_cast<std::size_t>(src.at("column").number);
    while (std::getline(in, line)) {
      std::vector<std::string> cols;
      std::size_t from = 0;
      for (std::size_t tab; (tab = line.find('\t', from)) != std::string::npos; from = tab + 1)
        cols.push_back(line.substr(from, tab - from));
      cols.push_back(line.substr(from));
      if (cols.size() <= column || cols[column].empty()) continue;
      const std::string& title = cols[column];
      text_crc = crc32c("\0", 1, crc32c(title.data(), title.size(), text_crc));
      std::vector<std::int32_t> ids = tok->encode(title);
      EXPECT_EQ(tok->decode(ids), after_normalizer(which, title)) << Json::quote(title);
      ids.push_back(-1);
      ids_crc = crc32c(ids.data(), ids.size() * sizeof(std::int32_t), ids_crc);
      ++count;
    }
    if (count != static_cast<long long>(src.at("count").number) || text_crc != src.at("text_crc32c").number) {
      skipped += " " + src.at("file").string + " (differs from the copy expected.json was made from)";
      continue;
    }
    EXPECT_EQ(ids_crc, static_cast<std::uint32_t>(src.at(which + "_crc32c").number))
        << src.at("file").string << ": the ids of its " << count << " titles differ from the reference encoder's "
        << "(rerun tools/tokenizer_reference.mjs to see which)";
    checked += static_cast<int>(count);
  }
  if (!skipped.empty()) std::cout << "[ note ] not compared:" << skipped << "\n";
  if (checked == 0) GTEST_SKIP() << "no shared data set with titles is here";
  std::cout << "[ note ] " << which << ": " << checked << " titles compared\n";
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, ReferenceTest, ::testing::Values("qwen", "gpt2"));

}  // namespace
}  // namespace prunerec::testing
