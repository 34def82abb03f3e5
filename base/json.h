// A small JSON writer for command output (one object per command, keys in insertion
// order). Numbers round-trip; non-finite numbers become null.
//
//   Json j;
//   j.begin_object().key("users").value(22363).key("name").value("Beauty").end_object();
//   std::cout << j.str();
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace prunerec {

class Json {
 public:
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
  Json& value(bool v);
  Json& null();
  // Inserts already-serialised JSON (e.g. an EvalResult from recsys::to_json).
  Json& raw(const std::string& json);
  Json& object(const std::map<std::string, double>& m);
  const std::string& str() const { return out_; }

  static std::string quote(const std::string& s);

 private:
  void separator();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

}  // namespace prunerec
