// Byte-level BPE from a Hugging Face tokenizer.json.
//
// Note [byte-level BPE]
// ~~~~~~~~~~~~~~~~~~~~~
// What is read from tokenizer.json (everything else in it is refused by name, so a file
// this code would tokenize differently from the Hugging Face library is never used):
//   model          {"type": "BPE", "vocab": {token: id}, "merges": ["a b", ...] or
//                  [["a", "b"], ...], "ignore_merges"}; dropout, unk_token, a
//                  continuing_subword_prefix, end_of_word_suffix or byte_fallback must be
//                  absent, null, empty or false.
//   added_tokens   [{"id", "content", "special", ...}]: matched in the raw text first,
//                  leftmost and longest, and never split; lstrip, rstrip and single_word
//                  must be false.
//   normalizer     null or {"type": "NFC"} (utf8proc).
//   pre_tokenizer  {"type": "ByteLevel", "use_regex": true, ...} (GPT-2's split pattern),
//                  or {"type": "Sequence", [{"type": "Split", "pattern": {"Regex": P},
//                  "behavior": "Isolated", "invert": false}, {"type": "ByteLevel",
//                  "use_regex": false}]} (Qwen2's). add_prefix_space must be false.
//   decoder        null or ByteLevel; post_processor null, ByteLevel or
//                  TemplateProcessing (not applied: encode() adds no special tokens, as
//                  the Hugging Face library with add_special_tokens=False).
// The split pattern runs in PCRE2 with UTF and Unicode properties (PCRE2_UTF | PCRE2_UCP,
// JIT-compiled when available); Isolated means every match and every gap between matches
// is a piece. Each piece's bytes map to GPT-2's printable byte alphabet, start as one
// symbol per byte, and merge by rank (lowest first, all occurrences left to right) until
// no ranked pair is left. Decoding maps the alphabet back to bytes, so decode(encode(s))
// == s for NFC-normal text (NFC normalisation itself changes non-NFC text, as it does in
// the Hugging Face library).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <unordered_map>

#include "base/error.h"
#include "text/bpe.h"

namespace prunerec::text {
namespace {
namespace gpb = google::protobuf;

// GPT-2's split pattern (the ByteLevel pre-tokenizer with use_regex true).
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

template <class... Args>
[[noreturn]] void fail(const std::string& name, Args&&... args) {
  throw IoError(detail::str_cat(name, ": ", std::forward<Args>(args)...));
}

std::string json_text(const gpb::Value& v) {
  std::string out;
  (void)gpb::util::MessageToJsonString(v, &out);
  return out;
}

void append_utf8(std::string& s, std::int32_t cp) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(cp, buf);
  s.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n.
std::array<std::int32_t, 256> byte_alphabet() {
  std::array<std::int32_t, 256> cp{};
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  int n = 0;
  for (int b = 0; b < 256; ++b) cp[b] = direct[b] ? b : 256 + n++;
  return cp;
}

const gpb::Value* field(const gpb::Struct& s, const std::string& k) {
  auto it = s.fields().find(k);
  if (it == s.fields().end() || it->second.kind_case() == gpb::Value::kNullValue) return nullptr;
  return &it->second;
}

std::string string_field(const gpb::Struct& s, const std::string& k) {
  const gpb::Value* v = field(s, k);
  return v && v->kind_case() == gpb::Value::kStringValue ? v->string_value() : std::string();
}

bool true_field(const gpb::Struct& s, const std::string& k) {
  const gpb::Value* v = field(s, k);
  return v && v->kind_case() == gpb::Value::kBoolValue && v->bool_value();
}

}  // namespace

struct ByteLevelBpe::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

ByteLevelBpe::~ByteLevelBpe() = default;

ByteLevelBpe::ByteLevelBpe(const std::string& name, std::string_view json) : name_(name) {
  gpb::Struct root;
  const auto status = gpb::util::JsonStringToMessage(gpb::StringPiece(json.data(), json.size()), &root);
  if (!status.ok()) fail(name, "not valid JSON: ", status.ToString());

  // model
  const gpb::Value* model = field(root, "model");
  if (!model || model->kind_case() != gpb::Value::kStructValue) fail(name, "field 'model' must be an object");
  const gpb::Struct& m = model->struct_value();
  if (string_field(m, "type") != "BPE")
    fail(name, "model.type = '", string_field(m, "type"), "': only BPE tokenizers are read (Note [byte-level BPE])");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!string_field(m, k).empty()) fail(name, "model.", k, " = '", string_field(m, k), "' is not supported");
  if (true_field(m, "byte_fallback")) fail(name, "model.byte_fallback = true is not supported");
  if (const gpb::Value* d = field(m, "dropout"); d && !(d->kind_case() == gpb::Value::kNumberValue && d->number_value() == 0))
    fail(name, "model.dropout = ", json_text(*d), " is not supported");
  ignore_merges_ = true_field(m, "ignore_merges");
  const gpb::Value* vocab = field(m, "vocab");
  if (!vocab || vocab->kind_case() != gpb::Value::kStructValue) fail(name, "model.vocab must be an object");
  std::int32_t max_id = -1;
  vocab_.reserve(static_cast<std::size_t>(vocab->struct_value().fields().size()));
  for (const auto& [token, id] : vocab->struct_value().fields()) {
    if (id.kind_case() != gpb::Value::kNumberValue || id.number_value() < 0 || id.number_value() >= (1 << 30) ||
        id.number_value() != static_cast<std::int32_t>(id.number_value()))
      fail(name, "model.vocab['", token, "'] = ", json_text(id), " is not a token id");
    const auto i = static_cast<std::int32_t>(id.number_value());
    vocab_.emplace(token, i);
    max_id = std::max(max_id, i);
  }

  // added tokens
  if (const gpb::Value* added = field(root, "added_tokens")) {
    if (added->kind_case() != gpb::Value::kListValue) fail(name, "added_tokens must be a list");
    for (const auto& t : added->list_value().values()) {
      if (t.kind_case() != gpb::Value::kStructValue) fail(name, "added_tokens entries must be objects");
      const gpb::Struct& a = t.struct_value();
      const gpb::Value* id = field(a, "id");
      const std::string content = string_field(a, "content");
      if (!id || id->kind_case() != gpb::Value::kNumberValue || id->number_value() < 0 ||
          id->number_value() >= (1 << 30) || content.empty())
        fail(name, "added_tokens entry ", json_text(t), " needs an id and a non-empty content");
      for (const char* k : {"lstrip", "rstrip", "single_word"})
        if (true_field(a, k)) fail(name, "added token '", content, "': ", k, " = true is not supported");
      const auto i = static_cast<std::int32_t>(id->number_value());
      added_.push_back({content, i, true_field(a, "special")});
      max_id = std::max(max_id, i);
    }
    // Longest first, so the first match at a position is the longest.
    std::stable_sort(added_.begin(), added_.end(),
                     [](const Added& x, const Added& y) { return x.content.size() > y.content.size(); });
  }
  // Ids are dense in every real tokenizer; a file whose largest id is far beyond its number
  // of tokens would size the id tables from one number, so it is refused.
  const std::int64_t entries = static_cast<std::int64_t>(vocab_.size() + added_.size());
  if (max_id >= 2 * entries + 1024)
    fail(name, "the largest token id ", max_id, " is far beyond the ", entries, " tokens the file defines");
  vocab_size_ = max_id + 1;
  id_to_token_.assign(static_cast<std::size_t>(vocab_size_), std::string());
  has_token_.assign(static_cast<std::size_t>(vocab_size_), false);
  for (const auto& [token, id] : vocab_) {
    id_to_token_[static_cast<std::size_t>(id)] = token;
    has_token_[static_cast<std::size_t>(id)] = true;
  }
  added_by_id_.assign(static_cast<std::size_t>(vocab_size_), -1);
  for (std::size_t k = 0; k < added_.size(); ++k) added_by_id_[static_cast<std::size_t>(added_[k].id)] = static_cast<int>(k);

  // The byte alphabet must be in the vocabulary.
  const auto alphabet = byte_alphabet();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_utf8(s, alphabet[b]);
    auto it = vocab_.find(s);
    if (it == vocab_.end()) fail(name, "model.vocab lacks the byte-level symbol for byte ", b, " ('", s, "'): not a byte-level BPE");
    byte_ids_[b] = it->second;
    byte_of_codepoint_[alphabet[b]] = static_cast<std::uint8_t>(b);
  }

  // merges
  const gpb::Value* merges = field(m, "merges");
  if (!merges || merges->kind_case() != gpb::Value::kListValue) fail(name, "model.merges must be a list");
  std::int32_t rank = 0;
  merges_.reserve(static_cast<std::size_t>(merges->list_value().values_size()));
  for (const auto& e : merges->list_value().values()) {
    std::string a, b;
    if (e.kind_case() == gpb::Value::kStringValue) {
      const std::string& s = e.string_value();
      const std::size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() || s.find(' ', sp + 1) != std::string::npos)
        fail(name, "model.merges[", rank, "] = '", s, "' is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.kind_case() == gpb::Value::kListValue && e.list_value().values_size() == 2 &&
               e.list_value().values(0).kind_case() == gpb::Value::kStringValue &&
               e.list_value().values(1).kind_case() == gpb::Value::kStringValue) {
      a = e.list_value().values(0).string_value();
      b = e.list_value().values(1).string_value();
    } else {
      fail(name, "model.merges[", rank, "] = ", json_text(e), " is not a pair of tokens");
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || iab == vocab_.end())
      fail(name, "model.merges[", rank, "] ('", a, "', '", b, "'): a token or their merge is not in the vocabulary");
    merges_.emplace(pair_key(ia->second, ib->second), Merge{rank, iab->second});  // first rank wins
    ++rank;
  }

  // normalizer
  if (const gpb::Value* n = field(root, "normalizer")) {
    if (n->kind_case() != gpb::Value::kStructValue || string_field(n->struct_value(), "type") != "NFC")
      fail(name, "normalizer = ", json_text(*n), ": only null or NFC is supported");
    nfc_ = true;
  }

  // pre-tokenizer
  const gpb::Value* pre = field(root, "pre_tokenizer");
  if (!pre || pre->kind_case() != gpb::Value::kStructValue) fail(name, "pre_tokenizer must be an object (byte-level BPE)");
  auto byte_level = [&](const gpb::Struct& p) {
    if (string_field(p, "type") != "ByteLevel") return false;
    if (true_field(p, "add_prefix_space")) fail(name, "pre_tokenizer ByteLevel add_prefix_space = true is not supported");
    return true;
  };
  std::string pattern;
  const gpb::Struct& p = pre->struct_value();
  if (byte_level(p)) {
    const gpb::Value* use = field(p, "use_regex");
    if (use && !(use->kind_case() == gpb::Value::kBoolValue && use->bool_value()))
      fail(name, "pre_tokenizer ByteLevel without use_regex would not split the text; not supported");
    pattern = kGpt2Pattern;
  } else if (string_field(p, "type") == "Sequence" && field(p, "pretokenizers") &&
             field(p, "pretokenizers")->kind_case() == gpb::Value::kListValue &&
             field(p, "pretokenizers")->list_value().values_size() == 2) {
    const auto& list = field(p, "pretokenizers")->list_value();
    const gpb::Struct& split = list.values(0).struct_value();
    const gpb::Struct& bl = list.values(1).struct_value();
    const gpb::Value* pat = field(split, "pattern");
    const gpb::Value* regex = pat && pat->kind_case() == gpb::Value::kStructValue ? field(pat->struct_value(), "Regex") : nullptr;
    if (string_field(split, "type") != "Split" || !regex || regex->kind_case() != gpb::Value::kStringValue ||
        string_field(split, "behavior") != "Isolated" || true_field(split, "invert") || !byte_level(bl) ||
        true_field(bl, "use_regex"))
      fail(name, "pre_tokenizer = ", json_text(*pre), ": only Split(Regex, Isolated) then ByteLevel is supported");
    pattern = regex->string_value();
  } else {
    fail(name, "pre_tokenizer = ", json_text(*pre), ": not a byte-level pre-tokenizer this reader supports");
  }
  if (const gpb::Value* d = field(root, "decoder"))
    if (d->kind_case() != gpb::Value::kStructValue || string_field(d->struct_value(), "type") != "ByteLevel")
      fail(name, "decoder = ", json_text(*d), ": only ByteLevel is supported");
  if (const gpb::Value* pp = field(root, "post_processor")) {
    const std::string t = pp->kind_case() == gpb::Value::kStructValue ? string_field(pp->struct_value(), "type") : "";
    if (t != "ByteLevel" && t != "TemplateProcessing")
      fail(name, "post_processor = ", json_text(*pp), ": only ByteLevel or TemplateProcessing is supported");
  }

  int err = 0;
  PCRE2_SIZE at = 0;
  regex_ = std::make_unique<Regex>();
  regex_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                               &err, &at, nullptr);
  if (!regex_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail(name, "the pre-tokenizer's pattern does not compile at offset ", at, ": ", reinterpret_cast<const char*>(msg));
  }
  (void)pcre2_jit_compile(regex_->code, PCRE2_JIT_COMPLETE);  // the interpreter is the fallback
}

std::vector<SpecialToken> ByteLevelBpe::special_tokens() const {
  std::vector<SpecialToken> out;
  for (const Added& a : added_)
    if (a.special) out.push_back({a.content, a.id});
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.id < y.id; });
  return out;
}

void ByteLevelBpe::encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const {
  std::string mapped;
  for (unsigned char c : piece) append_utf8(mapped, byte_alphabet_cp(c));
  if (ignore_merges_) {
    if (auto it = vocab_.find(mapped); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<std::int32_t> syms;
  syms.reserve(piece.size());
  for (unsigned char c : piece) syms.push_back(byte_ids_[c]);
  for (;;) {
    std::int32_t best_rank = -1, best_id = -1, a = -1, b = -1;
    for (std::size_t i = 0; i + 1 < syms.size(); ++i) {
      auto it = merges_.find(pair_key(syms[i], syms[i + 1]));
      if (it != merges_.end() && (best_rank < 0 || it->second.rank < best_rank)) {
        best_rank = it->second.rank;
        best_id = it->second.id;
        a = syms[i];
        b = syms[i + 1];
      }
    }
    if (best_rank < 0) break;
    std::size_t w = 0;
    for (std::size_t i = 0; i < syms.size(); ++i) {
      if (i + 1 < syms.size() && syms[i] == a && syms[i + 1] == b) {
        syms[w++] = best_id;
        ++i;
      } else {
        syms[w++] = syms[i];
      }
    }
    syms.resize(w);
  }
  out.insert(out.end(), syms.begin(), syms.end());
}

std::int32_t ByteLevelBpe::byte_alphabet_cp(unsigned char c) {
  static const std::array<std::int32_t, 256> kAlphabet = byte_alphabet();
  return kAlphabet[c];
}

void ByteLevelBpe::encode_text(std::string_view raw, std::vector<std::int32_t>& out) const {
  if (raw.empty()) return;
  std::string normal;
  std::string_view s = raw;
  if (nfc_) {
    // utf8proc_NFC would stop at a NUL byte; the explicit length keeps NULs as text.
    utf8proc_uint8_t* n = nullptr;
    const utf8proc_ssize_t len =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(raw.data()), static_cast<utf8proc_ssize_t>(raw.size()),
                     &n, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (len < 0) throw ConfigError(detail::str_cat(name_, ": the text is not valid UTF-8"));
    normal.assign(reinterpret_cast<const char*>(n), static_cast<std::size_t>(len));
    std::free(n);
    s = normal;
  }
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(regex_->code, nullptr);
  if (!md) throw std::bad_alloc();
  PCRE2_SIZE start = 0;
  std::size_t gap = 0;  // start of the text not yet emitted
  std::uint32_t options = 0;
  while (start <= s.size()) {
    const int rc = pcre2_match(regex_->code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, options, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw ConfigError(detail::str_cat(name_, ": cannot split the text (", reinterpret_cast<const char*>(msg), ")"));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[0] > gap) encode_piece(s.substr(gap, ov[0] - gap), out);
    if (ov[1] > ov[0]) {
      encode_piece(s.substr(ov[0], ov[1] - ov[0]), out);
      gap = ov[1];
      start = ov[1];
    } else {
      // An empty match: step one character (UTF-8 lead byte to the next lead byte).
      if (start >= s.size()) break;
      ++start;
      while (start < s.size() && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) ++start;
    }
  }
  if (gap < s.size()) encode_piece(s.substr(gap), out);
  pcre2_match_data_free(md);
}

std::vector<std::int32_t> ByteLevelBpe::encode(std::string_view text) const {
  // Valid UTF-8 only (PCRE2 would refuse it anyway; say where).
  for (std::size_t i = 0; i < text.size();) {
    utf8proc_int32_t cp;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                                    static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
    if (n <= 0) throw ConfigError(detail::str_cat(name_, ": the text is not valid UTF-8 at byte ", i));
    i += static_cast<std::size_t>(n);
  }
  std::vector<std::int32_t> out;
  std::size_t from = 0, i = 0;
  while (i < text.size()) {
    const Added* hit = nullptr;
    for (const Added& a : added_)
      if (text.compare(i, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    encode_text(text.substr(from, i - from), out);
    out.push_back(hit->id);
    i += hit->content.size();
    from = i;
  }
  encode_text(text.substr(from), out);
  return out;
}

std::string ByteLevelBpe::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  for (std::int32_t id : ids) {
    if (id < 0 || id >= vocab_size_)
      throw ConfigError(detail::str_cat(name_, ": token id ", id, " is outside the vocabulary [0, ", vocab_size_, ")"));
    if (const int a = added_by_id_[static_cast<std::size_t>(id)]; a >= 0) {
      out += added_[static_cast<std::size_t>(a)].content;
      continue;
    }
    if (!has_token_[static_cast<std::size_t>(id)])
      throw ConfigError(detail::str_cat(name_, ": token id ", id, " has no token"));
    const std::string& tok = id_to_token_[static_cast<std::size_t>(id)];
    for (std::size_t i = 0; i < tok.size();) {
      utf8proc_int32_t cp;
      const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(tok.data() + i),
                                      static_cast<utf8proc_ssize_t>(tok.size() - i), &cp);
      auto it = n > 0 ? byte_of_codepoint_.find(cp) : byte_of_codepoint_.end();
      if (it == byte_of_codepoint_.end())
        throw ConfigError(detail::str_cat(name_, ": token ", id, " ('", tok, "') is not made of byte-level symbols"));
      out += static_cast<char>(it->second);
      i += static_cast<std::size_t>(n);
    }
  }
  return out;
}

}  // namespace prunerec::text
