#include "tests/api/json_reader.h"

#include <cmath>
#include <cstdlib>
#include <set>
#include <stdexcept>

namespace prunerec::testing {
namespace {

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  JsonValue document() {
    JsonValue v = value();
    skip_ws();
    if (i_ != s_.size()) fail("trailing text");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("json: " + std::to_string(i_) + ": " + what);
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  bool literal(const char* word) {
    const std::string w(word);
    if (s_.compare(i_, w.size(), w) == 0) {
      i_ += w.size();
      return true;
    }
    return false;
  }

  JsonValue value() {
    skip_ws();
    if (i_ >= s_.size()) fail("unexpected end");
    JsonValue v;
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = JsonValue::Kind::kObject;
      std::set<std::string> seen;
      if (eat('}')) return v;
      do {
        skip_ws();
        std::string key = string();
        if (!seen.insert(key).second) fail("duplicate key '" + key + "'");
        expect(':');
        v.object_keys.push_back(std::move(key));
        v.object_values.push_back(value());
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      ++i_;
      v.kind = JsonValue::Kind::kArray;
      if (eat(']')) return v;
      do v.array.push_back(value());
      while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.kind = JsonValue::Kind::kString;
      v.string = string();
    } else if (literal("true")) {
      v.kind = JsonValue::Kind::kBool;
      v.boolean = true;
    } else if (literal("false")) {
      v.kind = JsonValue::Kind::kBool;
    } else if (literal("null")) {
      v.kind = JsonValue::Kind::kNull;
    } else {
      v.kind = JsonValue::Kind::kNumber;
      const char* begin = s_.c_str() + i_;
      char* end = nullptr;
      if (!(c == '-' || (c >= '0' && c <= '9'))) fail("unexpected character");
      v.number = std::strtod(begin, &end);
      if (end == begin) fail("bad number");
      i_ += static_cast<std::size_t>(end - begin);
    }
    return v;
  }

  std::string string() {
    if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string");
    ++i_;
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) fail("short \\u escape");
          const unsigned code = static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
          i_ += 4;
          if (code >= 0x80) fail("non-ASCII \\u escapes are not needed by the tests");
          out += static_cast<char>(code);
          break;
        }
        default: fail("bad escape");
      }
    }
  }

  const std::string& s_;
  std::size_t i_ = 0;
};

}  // namespace

std::vector<std::pair<std::string, const JsonValue*>> JsonValue::members() const {
  std::vector<std::pair<std::string, const JsonValue*>> out;
  for (std::size_t i = 0; i < object_keys.size(); ++i) out.emplace_back(object_keys[i], &object_values[i]);
  return out;
}

bool JsonValue::has(const std::string& key) const {
  for (const auto& k : object_keys)
    if (k == key) return true;
  return false;
}

const JsonValue& JsonValue::at(const std::string& key) const {
  for (std::size_t i = 0; i < object_keys.size(); ++i)
    if (object_keys[i] == key) return object_values[i];
  throw std::runtime_error("json: no key '" + key + "'");
}

std::vector<std::string> JsonValue::keys() const { return object_keys; }

std::vector<long long> JsonValue::ints() const {
  std::vector<long long> out;
  for (const auto& v : array) {
    if (v.kind != Kind::kNumber || v.number != std::floor(v.number)) throw std::runtime_error("json: not an integer");
    out.push_back(static_cast<long long>(v.number));
  }
  return out;
}

JsonValue parse_json(const std::string& text) { return Parser(text).document(); }

}  // namespace prunerec::testing
