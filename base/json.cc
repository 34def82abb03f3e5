#include "base/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace prunerec {
namespace {

constexpr std::size_t kLineWidth = 100;  // pretty: arrays of scalars wrap here

}  // namespace

std::string Json::quote(std::string_view s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}

std::size_t Json::column() const {
  const std::size_t nl = out_.rfind('\n');
  return nl == std::string::npos ? out_.size() : out_.size() - nl - 1;
}

void Json::newline(std::size_t depth) {
  out_ += '\n';
  out_.append(2 * depth, ' ');
}

void Json::separator(std::size_t length, bool container) {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (frames_.empty()) return;
  Frame& f = frames_.back();
  const bool first = f.empty;
  f.empty = false;
  if (!pretty_) {
    if (!first) out_ += ", ";
    return;
  }
  // Pretty: object members and containers in arrays each on their own line; scalars in
  // arrays run on, wrapping before the line would pass kLineWidth.
  if (!first) out_ += ',';
  if (!f.array || container) {
    f.multiline = true;
    newline(frames_.size());
  } else if (!first) {
    if (column() + 1 + length + 2 > kLineWidth) {
      f.multiline = true;
      newline(frames_.size());
    } else {
      out_ += ' ';
    }
  }
}

Json& Json::begin_object() {
  separator(1, true);
  out_ += "{";
  frames_.push_back({});
  return *this;
}
Json& Json::end_object() {
  const bool multiline = frames_.back().multiline;
  frames_.pop_back();
  if (pretty_ && multiline) newline(frames_.size());
  out_ += "}";
  return *this;
}
Json& Json::begin_array() {
  separator(1, true);
  out_ += "[";
  frames_.push_back({.array = true});
  return *this;
}
Json& Json::end_array() {
  const bool multiline = frames_.back().multiline;
  frames_.pop_back();
  if (pretty_ && multiline) newline(frames_.size());
  out_ += "]";
  return *this;
}
Json& Json::key(const std::string& k) {
  const std::string q = quote(k);
  separator(q.size(), false);
  out_ += q + ": ";
  after_key_ = true;
  return *this;
}
Json& Json::value(const std::string& v) {
  const std::string q = quote(v);
  separator(q.size(), false);
  out_ += q;
  return *this;
}
Json& Json::value(double v) {
  if (!std::isfinite(v)) return null();
  char buf[64];
  const auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  separator(static_cast<std::size_t>(p - buf), false);
  out_.append(buf, p);
  return *this;
}
Json& Json::value(std::int64_t v) {
  const std::string s = std::to_string(v);
  separator(s.size(), false);
  out_ += s;
  return *this;
}
Json& Json::value(std::uint64_t v) {
  const std::string s = std::to_string(v);
  separator(s.size(), false);
  out_ += s;
  return *this;
}
Json& Json::value(bool v) {
  separator(v ? 4 : 5, false);
  out_ += v ? "true" : "false";
  return *this;
}
Json& Json::null() {
  separator(4, false);
  out_ += "null";
  return *this;
}
Json& Json::raw(const std::string& json) {
  separator(json.size(), false);
  out_ += json;
  return *this;
}
Json& Json::object(const std::map<std::string, double>& m) {
  begin_object();
  for (const auto& [k, v] : m) key(k).value(v);
  return end_object();
}

}  // namespace prunerec
