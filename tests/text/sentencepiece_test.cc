// SentencePiece (text/sentencepiece.h) through the isolated shim (Note [SentencePiece
// isolation]): models trained by train_sentencepiece on strings generated here, loaded
// through tokenizer_from_bytes; encode/decode round trips, the special pieces, the
// refusals; and Protobuf used in the same process before and after (a checkpoint carrying
// the model is written and read back, and a tokenizer.json, parsed with Protobuf's JSON
// reader, is loaded beside it), which is what crashed when libsentencepiece was linked.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <algorithm>

#include <filesystem>
#include <unistd.h>

#include "base/error.h"
#include "nn/checkpoint_file.h"
#include "text/sentencepiece.h"
#include "text/tokenizer.h"

namespace prunerec::testing {
namespace {


// 360 item-title-like strings from a fixed grammar (no randomness).
std::vector<std::string> titles() {
  const char* first[] = {"Super", "Legend of", "Final", "Mega", "Dark", "Tiny", "Grand", "Crystal", "Sonic", "Metal"};
  const char* second[] = {"Mario", "Zelda", "Fantasy", "Man", "Souls", "Tina", "Theft", "Quest", "Racing", "Gear"};
  const char* third[] = {"Odyssey", "Deluxe Edition", "Remastered", "II", "for Nintendo Switch", "(PS4)"};
  std::vector<std::string> out;
  for (int a = 0; a < 10; ++a)
    for (int b = 0; b < 6; ++b)
      for (int c = 0; c < 6; ++c)
        if ((a + b + c) % 10 < 6) out.push_back(std::string(first[a]) + " " + second[(a + b) % 10] + " " + third[c]);
  return out;
}

std::unique_ptr<text::Tokenizer> trained(const text::SentencePieceTrainOptions& o) {
  return text::tokenizer_from_bytes("titles.model", text::train_sentencepiece(titles(), o));
}

TEST(SentencePiece, TrainsLoadsAndRoundTrips) {
  text::SentencePieceTrainOptions o;
  o.vocab_size = 64;
  const auto tok = trained(o);
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_EQ(tok->vocab_size(), 64);
  for (const std::string s : {"Super Mario Odyssey", "Grand Theft Gear II (PS4)", "Mario", "  two  spaces",
                              "Zelda Souls Remastered for Nintendo Switch", ""}) {
    const std::vector<std::int32_t> ids = tok->encode(s);
    for (std::int32_t id : ids) {
      EXPECT_GE(id, 3) << s;  // no <unk>, <s>, </s>: every character was in the titles
      EXPECT_LT(id, 64) << s;
    }
    // SentencePiece's default normalizer (nmt_nfkc) folds runs of spaces and strips the
    // ends, as transformers' slow tokenizer does; text without such runs comes back as is.
    const std::string expected = s == "  two  spaces" ? "two spaces" : s;
    EXPECT_EQ(tok->decode(ids), expected) << s;
  }
  // Pieces longer than one character were learned: fewer ids than the 19 characters (with
  // a vocabulary of 64, most pieces are still single letters).
  EXPECT_LT(tok->encode("Super Mario Odyssey").size(), 19u);
}

TEST(SentencePiece, SpecialTokens) {
  text::SentencePieceTrainOptions o;
  o.vocab_size = 64;
  const auto tok = trained(o);
  const auto& spm = dynamic_cast<const text::SentencePiece&>(*tok);
  EXPECT_EQ(spm.unk_id(), 0);
  EXPECT_EQ(spm.bos_id(), 1);
  EXPECT_EQ(spm.eos_id(), 2);
  EXPECT_EQ(spm.pad_id(), -1);
  const std::vector<text::SpecialToken> special = tok->special_tokens();
  ASSERT_EQ(special.size(), 3u);
  EXPECT_EQ(special[0].content, "<unk>");
  EXPECT_EQ(special[0].id, 0);
  EXPECT_EQ(special[1].content, "<s>");
  EXPECT_EQ(special[1].id, 1);
  EXPECT_EQ(special[2].content, "</s>");
  EXPECT_EQ(special[2].id, 2);

  // Control pieces written in the text are recognised (Note [SentencePiece special tokens]).
  const std::vector<std::int32_t> ids = tok->encode("<s>Super Mario</s>");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 1);
  EXPECT_EQ(tok->decode(ids), "<s>Super Mario</s>");
  EXPECT_EQ(tok->decode({1, 2}), "<s></s>");

  // A character never seen in training is <unk> (id 0) and decodes as SentencePiece's
  // " ⁇ " (U+2047).
  const std::vector<std::int32_t> unk = tok->encode("Mario \xe6\x97\xa5");  // U+65E5
  EXPECT_NE(std::find(unk.begin(), unk.end(), 0), unk.end());
  const std::string back = tok->decode(unk);
  EXPECT_EQ(back.rfind("Mario ", 0), 0u) << back;
  EXPECT_NE(back.find("\xe2\x81\x87"), std::string::npos) << back;
}

TEST(SentencePiece, ByteFallbackAndBpe) {
  text::SentencePieceTrainOptions o;
  o.vocab_size = 400;  // 3 special + 256 byte pieces + learned pieces
  o.byte_fallback = true;
  o.model_type = "bpe";
  const auto tok = trained(o);
  const std::string s = "Mario \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\xae";  // 日本 🎮: unseen, as bytes
  const std::vector<std::int32_t> ids = tok->encode(s);
  EXPECT_EQ(std::find(ids.begin(), ids.end(), 0), ids.end());
  EXPECT_EQ(tok->decode(ids), s);
  EXPECT_EQ(tok->decode(tok->encode("Crystal Quest Deluxe Edition")), "Crystal Quest Deluxe Edition");
}

TEST(SentencePiece, TrainingIsDeterministic) {
  text::SentencePieceTrainOptions o;
  o.vocab_size = 60;
  EXPECT_EQ(text::train_sentencepiece(titles(), o), text::train_sentencepiece(titles(), o));
}

TEST(SentencePiece, Refusals) {
  auto expect_error = [](auto fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected one mentioning " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  text::SentencePieceTrainOptions o;
  o.vocab_size = 64;
  const auto tok = trained(o);
  expect_error([&] { tok->encode("bad \xff utf-8"); }, "titles.model: the text is not valid UTF-8 at byte 4");
  expect_error([&] { tok->decode({64}); }, "titles.model: token id 64 is outside the vocabulary [0, 64)");
  expect_error([&] { tok->decode({-1}); }, "token id -1 is outside");
  expect_error([&] { text::tokenizer_from_bytes("t.model", std::string("\x0a\x05hello", 7)); },
               "t.model: not a SentencePiece model");
  o.vocab_size = 5000;  // far more pieces than 360 short titles support
  expect_error([&] { text::train_sentencepiece(titles(), o); }, "Vocabulary size too high");
  o.vocab_size = 64;
  o.model_type = "wordpiece";
  expect_error([&] { text::train_sentencepiece(titles(), o); }, "model_type 'wordpiece'");
  expect_error([&] { text::train_sentencepiece({}, text::SentencePieceTrainOptions{}); }, "no sentences");
}

// Protobuf (the system libprotobuf) and SentencePiece (with its bundled protobuf-lite) in
// one process: a checkpoint carrying the model is written and read back, before and after
// SentencePiece is used, and the model read back encodes the same.
TEST(SentencePiece, SharesTheProcessWithProtobuf) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("prunerec_spm_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "m.prc").string();
  text::SentencePieceTrainOptions o;
  o.vocab_size = 64;
  const std::string model = text::train_sentencepiece(titles(), o);
  pb::Manifest m;
  auto* f = m.mutable_pretrained()->add_tokenizer_files();
  f->set_name("tokenizer.model");
  f->set_data(model);
  nn::write_checkpoint(path, m, {{"w", Tensor::zeros({2, 3}, DType::f32)}});
  const nn::LoadedCheckpoint back = nn::read_checkpoint(path);
  ASSERT_EQ(back.manifest.pretrained().tokenizer_files_size(), 1);
  const auto a = text::tokenizer_from_bytes("direct", model);
  const auto b = text::tokenizer_from_bytes("stored", back.manifest.pretrained().tokenizer_files(0).data());
  EXPECT_EQ(a->encode("Super Mario Odyssey"), b->encode("Super Mario Odyssey"));
  // Protobuf's JSON parser into google.protobuf.Struct (how tokenizer.json is read) after
  // SentencePiece ran.
  google::protobuf::Struct st;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(R"({"a": [1, "b", {"c": null}]})", &st).ok());
  EXPECT_EQ(st.fields().at("a").list_value().values(1).string_value(), "b");
  EXPECT_EQ(nn::read_checkpoint_manifest(path).pretrained().tokenizer_files(0).data(), model);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prunerec::testing
