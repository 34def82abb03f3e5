// lcrec-json: LC-Rec's {"user": [item, item, ...], ...}, items oldest first.
//
// The parser is strict JSON (RFC 8259 grammar: no trailing commas, no comments, escapes
// checked, no raw control characters in strings; bytes above 0x7F are kept as they are)
// but only accepts this one shape, so it needs no recursion: an object whose values are
// arrays of integers or strings. Grammar errors always stop the read; with
// skip_bad_lines, entries that parse but make no sense (a repeated user, an item id that
// is negative or fractional) are counted and skipped.
//
// Note [LC-Rec id files]: when <stem>.item2id ("ASIN<TAB>index") sits beside
// <stem>.inter.json (or it is the only *.item2id there), items take the ASIN as raw id;
// likewise users with <stem>.user2id. Title and item maps still see the index as written
// (Note [Item ids for titles]).
#include <algorithm>
#include <filesystem>

#include "recsys/data/read_internal.h"

namespace prunerec::recsys::detail {

namespace {

namespace fs = std::filesystem;

class JsonCursor {
 public:
  JsonCursor(std::string_view text, const BadLines& bad) : text_(text), bad_(bad) {}

  void skip_space() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '\n') {
        ++line_;
        line_start_ = pos_ + 1;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        return;
      }
      ++pos_;
    }
  }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  std::int64_t line() const { return line_; }

  void expect(char c, const char* what) {
    skip_space();
    if (peek() != c) fail(str_cat("expected ", what, ", got ", describe_here()));
    ++pos_;
  }

  [[noreturn]] void fail(const std::string& what) const {
    bad_.fail(line_, str_cat(what, " at column ", pos_ - line_start_ + 1));
  }

  // At '"': the unescaped string.
  std::string read_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated string");
      char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in a string");
      if (c != '\\') {
        out += c;
        ++pos_;
        continue;
      }
      if (pos_ + 1 >= text_.size()) fail("unterminated string");
      char e = text_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = read_hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // high surrogate: a low one must follow
            if (pos_ + 1 >= text_.size() || text_[pos_] != '\\' || text_[pos_ + 1] != 'u')
              fail("unpaired surrogate in \\u escape");
            pos_ += 2;
            std::uint32_t low = read_hex4();
            if (low < 0xDC00 || low >= 0xE000) fail("unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("unpaired surrogate in \\u escape");
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail(str_cat("bad escape \\", std::string(1, e), " in a string"));
      }
    }
  }

  // A JSON number, returned as written.
  std::string_view read_number() {
    std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++pos_;
    } else {
      fail("malformed number");
    }
    if (peek() == '.') {
      ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("malformed number");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("malformed number");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    return text_.substr(start, pos_ - start);
  }

  std::string describe_here() const {
    if (at_end()) return "the end of the file";
    return quote_text(text_.substr(pos_, 12));
  }

 private:
  std::uint32_t read_hex4() {
    if (pos_ + 4 > text_.size()) fail("short \\u escape");
    std::uint32_t value = 0;
    for (int k = 0; k < 4; ++k) {
      char c = text_[pos_ + static_cast<std::size_t>(k)];
      int h = (c >= '0' && c <= '9') ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (h < 0) fail("bad hex digit in \\u escape");
      value = value * 16 + static_cast<std::uint32_t>(h);
    }
    pos_ += 4;
    return value;
  }

  std::string_view text_;
  const BadLines& bad_;
  std::size_t pos_ = 0;
  std::size_t line_start_ = 0;
  std::int64_t line_ = 1;
};

// <dir>/<name up to the first '.'><ext>, else the only *<ext> file in dir, else "".
std::string find_side_file(const std::string& path, const std::string& ext) {
  fs::path p(path);
  std::string name = p.filename().string();
  std::string candidate = (p.parent_path() / (name.substr(0, name.find('.')) + ext)).string();
  if (file_exists(candidate)) return candidate;
  std::error_code ec;
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::vector<std::string> found;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string entry = it->path().filename().string();
    if (ends_with(entry, ext) && file_exists(it->path().string())) found.push_back(it->path().string());
  }
  return found.size() == 1 ? found[0] : "";
}

// index as written -> raw id, from "RAWID<TAB>index" lines.
std::unordered_map<std::string, std::string> read_id_file(const std::string& path, ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  std::string text = read_file(path);
  std::unordered_map<std::string, std::string> by_index;
  std::unordered_map<std::string, std::int64_t> raw_line;
  LineCursor cursor(text);
  std::string_view line;
  std::vector<std::string_view> fields;
  while (cursor.next(line)) {
    if (is_blank(line)) continue;
    split_whitespace(line, fields);
    if (fields.size() != 2) {
      bad.bad(cursor.line_number(), str_cat("expected \"raw_id<TAB>index\", got ", fields.size(), " fields"));
      continue;
    }
    auto [raw_it, raw_new] = raw_line.emplace(std::string(fields[0]), cursor.line_number());
    if (!raw_new) {
      bad.bad(cursor.line_number(), str_cat("raw id ", quote_text(fields[0]), " already on line ", raw_it->second));
      continue;
    }
    if (!by_index.emplace(std::string(fields[1]), std::string(fields[0])).second)
      bad.bad(cursor.line_number(), str_cat("index ", quote_text(fields[1]), " appears twice"));
  }
  return by_index;
}

}  // namespace

ParsedData read_lcrec_json(const std::string& path, std::string_view text, ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  JsonCursor json(text, bad);
  DatasetBuilder builder(path);
  std::vector<std::string> items;

  json.expect('{', "'{' (a JSON object of user -> item list)");
  json.skip_space();
  bool done = json.peek() == '}';
  if (done) json.expect('}', "'}'");
  while (!done) {
    json.skip_space();
    if (json.peek() != '"') json.fail("expected a user id in quotes, got " + json.describe_here());
    const std::int64_t entry_line = json.line();
    std::string user = json.read_string();
    json.expect(':', "':' after the user id");
    json.expect('[', "'[' (the user's item list)");
    items.clear();
    std::string problem;
    json.skip_space();
    bool list_done = json.peek() == ']';
    if (list_done) json.expect(']', "']'");
    while (!list_done) {
      json.skip_space();
      char c = json.peek();
      if (c == '"') {
        std::string item = json.read_string();
        if (item.empty() && problem.empty()) problem = str_cat("user ", quote_text(user), " has an empty item id");
        items.push_back(std::move(item));
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        std::string_view number = json.read_number();
        if (!is_digits(number) && problem.empty())
          problem = str_cat("user ", quote_text(user), ": item id ", quote_text(number),
                            " is not a non-negative integer");
        items.emplace_back(number);
      } else {
        json.fail("expected an item id (integer or string), got " + json.describe_here());
      }
      json.skip_space();
      if (json.peek() == ',') {
        json.expect(',', "','");
      } else if (json.peek() == ']') {
        json.expect(']', "']'");
        list_done = true;
      } else {
        json.fail("expected ',' or ']' after an item, got " + json.describe_here());
      }
    }
    ++ctx.report.lines;
    if (problem.empty() && builder.find_user(user) >= 0)
      problem = str_cat("user ", quote_text(user), " appears twice");
    if (!problem.empty()) {
      bad.bad(entry_line, problem);
    } else {
      std::int32_t u = builder.add_user(user);
      auto& seq = builder.data().sequences[static_cast<std::size_t>(u)];
      for (const std::string& item : items) seq.push_back(builder.add_item(item));
    }
    json.skip_space();
    if (json.peek() == ',') {
      json.expect(',', "','");
    } else if (json.peek() == '}') {
      json.expect('}', "'}'");
      done = true;
    } else {
      json.fail("expected ',' or '}' after a user's list, got " + json.describe_here());
    }
  }
  json.skip_space();
  if (!json.at_end()) json.fail("unexpected text after the JSON object: " + json.describe_here());

  ParsedData parsed;
  parsed.data = builder.finish();
  SequenceDataset& data = parsed.data;

  if (std::string item_file = find_side_file(path, ".item2id"); !item_file.empty()) {
    auto by_index = read_id_file(item_file, ctx);
    data.files_read.push_back(item_file);
    parsed.final_item_ids.reserve(data.items.raw_ids.size());
    for (const std::string& written : data.items.raw_ids) {
      auto it = by_index.find(written);
      if (it == by_index.end())
        throw IoError(str_cat(item_file, ": no line for item ", quote_text(written), " of ", path));
      parsed.final_item_ids.push_back(it->second);
    }
  }
  if (std::string user_file = find_side_file(path, ".user2id"); !user_file.empty()) {
    auto by_index = read_id_file(user_file, ctx);
    data.files_read.push_back(user_file);
    for (std::string& user : data.users) {
      auto it = by_index.find(user);
      if (it == by_index.end())
        throw IoError(str_cat(user_file, ": no line for user ", quote_text(user), " of ", path));
      user = it->second;
    }
  }
  return parsed;
}

}  // namespace prunerec::recsys::detail
