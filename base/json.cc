#include "base/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace prunerec {

std::string Json::quote(const std::string& s) {
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

void Json::separator() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_ += ", ";
    first_.back() = false;
  }
}

Json& Json::begin_object() {
  separator();
  out_ += "{";
  first_.push_back(true);
  return *this;
}
Json& Json::end_object() {
  out_ += "}";
  first_.pop_back();
  return *this;
}
Json& Json::begin_array() {
  separator();
  out_ += "[";
  first_.push_back(true);
  return *this;
}
Json& Json::end_array() {
  out_ += "]";
  first_.pop_back();
  return *this;
}
Json& Json::key(const std::string& k) {
  separator();
  out_ += quote(k) + ": ";
  after_key_ = true;
  return *this;
}
Json& Json::value(const std::string& v) {
  separator();
  out_ += quote(v);
  return *this;
}
Json& Json::value(double v) {
  separator();
  if (!std::isfinite(v)) {
    out_ += "null";
    return *this;
  }
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out_.append(buf, p);
  return *this;
}
Json& Json::value(std::int64_t v) {
  separator();
  out_ += std::to_string(v);
  return *this;
}
Json& Json::value(bool v) {
  separator();
  out_ += v ? "true" : "false";
  return *this;
}
Json& Json::null() {
  separator();
  out_ += "null";
  return *this;
}
Json& Json::raw(const std::string& json) {
  separator();
  out_ += json;
  return *this;
}
Json& Json::object(const std::map<std::string, double>& m) {
  begin_object();
  for (const auto& [k, v] : m) key(k).value(v);
  return end_object();
}

}  // namespace prunerec
