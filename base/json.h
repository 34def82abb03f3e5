// The JSON writer of the project (one of each, STYLE.md): command output, report.json,
// exports. Keys in insertion order; numbers round-trip (shortest form that reads back to
// the same double, every digit of an integer); non-finite numbers become null.
//
//   Json j;
//   j.begin_object().key("users").value(22363).key("name").value("Beauty").end_object();
//   std::cout << j.str();                     // {"users": 22363, "name": "Beauty"}
//
//   Json pretty(Json::kPretty);               // one member per line, indented by two;
//                                             // arrays of numbers filled to 100 columns
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace prunerec {

class Json {
 public:
  enum Style { kCompact, kPretty };
  explicit Json(Style style = kCompact) : pretty_(style == kPretty) {}

  Json& begin_object();
  Json& end_object();
  Json& begin_array();
  Json& end_array();
  Json& key(const std::string& k);
  Json& value(const std::string& v);
  Json& value(const char* v) { return value(std::string(v)); }
  Json& value(double v);
  Json& value(std::int64_t v);
  Json& value(int v) { return value(static_cast<std::int64_t>(v)); }
  Json& value(std::uint64_t v);
  Json& value(bool v);
  Json& null();
  // Inserts already-serialised JSON (e.g. an EvalResult from recsys::to_json).
  Json& raw(const std::string& json);
  Json& object(const std::map<std::string, double>& m);
  const std::string& str() const { return out_; }

  // s as a JSON string literal, quotes included: the project's one JSON string escaper.
  static std::string quote(std::string_view s);

 private:
  struct Frame {
    bool array = false;
    bool empty = true;      // no element written yet
    bool multiline = false; // pretty: an element started on its own line
  };
  // Before an element of `length` characters (a container's opening bracket counts 1).
  void separator(std::size_t length, bool container);
  void newline(std::size_t depth);
  std::size_t column() const;

  bool pretty_;
  std::string out_;
  std::vector<Frame> frames_;
  bool after_key_ = false;
};

}  // namespace prunerec
