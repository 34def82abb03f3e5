// prunerec tokenize: encode text or decode ids with a tokenizer file (tokenizer.json,
// tokenizer.model) or the tokenizer an imported model carries (text/tokenizer.h).
#include <charconv>
#include <fstream>
#include <iostream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "base/json.h"
#include "nn/checkpoint_file.h"
#include "text/tokenizer.h"

namespace prunerec::apps {
namespace {

// The tokenizer of a model file (its stored tokenizer.json, else tokenizer.model), or of a
// tokenizer file.
std::unique_ptr<text::Tokenizer> open_tokenizer(const std::string& path) {
  char head[8] = {};
  std::ifstream in(path, std::ios::binary);
  in.read(head, sizeof head);
  if (std::string_view(head, sizeof head) != "PRUNEREC") return text::load_tokenizer(path);
  const pb::Manifest m = nn::read_checkpoint_manifest(path);
  if (m.title_mode().has_tokenizer())  // a title-mode model trained from scratch (docs/title-mode.md)
    return text::tokenizer_from_bytes(path + " (" + m.title_mode().tokenizer().name() + ")", m.title_mode().tokenizer().data());
  for (const char* name : {"tokenizer.json", "tokenizer.model"})
    for (const auto& f : m.pretrained().tokenizer_files())
      if (f.name() == name) return text::tokenizer_from_bytes(path + " (" + name + ")", f.data());
  throw IoError(path + ": the model carries no tokenizer (only models imported with a tokenizer file and title-mode models do)");
}

}  // namespace

int cmd_tokenize(const Args& args) {
  cli::Flags flags("tokenize",
                   "Encode text to token ids ({\"ids\": [...]}) or decode ids to text ({\"text\": ...}) with a "
                   "Hugging Face tokenizer.json (byte-level BPE), a SentencePiece tokenizer.model, or the tokenizer "
                   "stored in an imported model file.",
                   "prunerec tokenize --tokenizer models/Qwen2-0.5B/tokenizer.json --text \"Super Mario\" --json");
  std::string path, text_in, ids_text;
  bool json = false;
  flags.add("tokenizer", &path, "tokenizer.json, tokenizer.model or a model file", cli::Flags::kRequired);
  flags.add("text", &text_in, "text to encode (UTF-8)");
  flags.add("ids", &ids_text, "token ids to decode, separated by spaces or commas");
  flags.add_switch("json", &json, "print one JSON object");
  flags.parse(args);
  if (flags.given("text") == flags.given("ids")) throw cli::UsageError("tokenize: give exactly one of --text and --ids");

  const std::unique_ptr<text::Tokenizer> tok = open_tokenizer(path);
  Json j;
  j.begin_object();
  if (flags.given("text")) {
    const std::vector<std::int32_t> ids = tok->encode(text_in);
    if (!json) {
      for (std::size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
      std::cout << "\n";
      return 0;
    }
    j.key("ids").begin_array();
    for (std::int32_t id : ids) j.value(id);
    j.end_array();
  } else {
    std::vector<std::int32_t> ids;
    for (std::size_t i = 0; i < ids_text.size();) {
      if (ids_text[i] == ' ' || ids_text[i] == ',') {
        ++i;
        continue;
      }
      std::size_t k = i;
      while (k < ids_text.size() && ids_text[k] != ' ' && ids_text[k] != ',') ++k;
      std::int32_t v = 0;
      const auto [end, ec] = std::from_chars(ids_text.data() + i, ids_text.data() + k, v);
      if (ec != std::errc() || end != ids_text.data() + k)
        throw cli::UsageError("tokenize: --ids: '" + ids_text.substr(i, k - i) + "' is not a token id");
      ids.push_back(v);
      i = k;
    }
    const std::string out = tok->decode(ids);
    if (!json) {
      std::cout << out << "\n";
      return 0;
    }
    j.key("text").value(out);
  }
  j.end_object();
  std::cout << j.str() << "\n";
  return 0;
}

}  // namespace prunerec::apps
