// A small strict JSON reader for the tests: they parse what the exporter writes with code
// that shares nothing with the writer. Objects keep their keys in file order (tests check
// the order) and reject duplicate keys.
//
//   const JsonValue v = parse_json(R"({"a": [1, 2.5], "b": "x"})");
//   v.at("a").array[1].number;   // 2.5
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace prunerec::testing {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  // Object members in file order, as two parallel lists (a std::pair holding a JsonValue
  // would need the type complete here).
  std::vector<std::string> object_keys;
  std::vector<JsonValue> object_values;

  // (key, value) of every member, in file order.
  std::vector<std::pair<std::string, const JsonValue*>> members() const;
  bool has(const std::string& key) const;
  const JsonValue& at(const std::string& key) const;  // std::runtime_error when missing
  std::vector<std::string> keys() const;
  std::vector<long long> ints() const;                 // an array of integers
};

// Throws std::runtime_error "json: <offset>: <what>" on malformed input or trailing text.
JsonValue parse_json(const std::string& text);

}  // namespace prunerec::testing
