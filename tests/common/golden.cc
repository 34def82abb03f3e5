#include "tests/common/golden.h"

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <system_error>

#include "base/error.h"

namespace prunerec::testing {
namespace {

constexpr std::string_view kHeader = "# prunerec golden fixture v1";
constexpr std::int64_t kMaxElements = std::int64_t{1} << 30;

// Splits on runs of spaces and tabs.
std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

// Whole-word number parse: false unless every character is consumed.
template <class T>
bool parse_number(std::string_view word, T& value) {
  const char* end = word.data() + word.size();
  auto [ptr, ec] = std::from_chars(word.data(), end, value);
  return ec == std::errc() && ptr == end && !word.empty();
}

// A line shortened for error messages.
std::string shown(std::string_view line) {
  constexpr std::size_t kMax = 60;
  if (line.size() <= kMax) return detail::str_cat("'", line, "'");
  return detail::str_cat("'", line.substr(0, kMax), "...' (", line.size(), " chars)");
}

class Parser {
 public:
  Parser(std::string path, std::ifstream& in) : path_(std::move(path)), in_(in) {}

  Golden parse() {
    Golden golden;
    golden.path = path_;
    std::string line;
    if (!next_line(line) || !line.starts_with(kHeader))
      fail(detail::str_cat("expected the header '", kHeader, ": ...'",
                           line_no_ == 0 ? ", got an empty file" : ", got " + shown(line)));
    while (next_line(line)) {
      if (line.empty() || line.front() == '#') continue;
      if (line.starts_with("meta ") || line == "meta") {
        parse_meta(line, golden);
      } else if (line.starts_with("tensor ") || line == "tensor") {
        parse_tensor(line, golden);
      } else {
        fail("expected a 'meta', 'tensor' or '#' line, got " + shown(line));
      }
    }
    return golden;
  }

 private:
  bool next_line(std::string& line) {
    if (!std::getline(in_, line)) return false;
    ++line_no_;
    return true;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw IoError(detail::str_cat(path_, ":", line_no_, ": ", what));
  }

  void parse_meta(const std::string& line, Golden& golden) {
    // meta <key> <value...>: the value is everything after the key and one space.
    std::string_view rest = std::string_view(line).substr(4);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const std::size_t space = rest.find(' ');
    if (rest.empty() || space == std::string_view::npos || space + 1 == rest.size())
      fail("expected 'meta <key> <value>', got " + shown(line));
    std::string key(rest.substr(0, space));
    if (golden.meta.count(key)) fail("duplicate meta key '" + key + "'");
    golden.meta.emplace(std::move(key), std::string(rest.substr(space + 1)));
  }

  void parse_tensor(const std::string& line, Golden& golden) {
    const std::vector<std::string_view> words = split_words(line);
    constexpr const char* kForm = "'tensor <name> <f64|i64> <rank> <dims...>'";
    if (words.size() < 4) fail(detail::str_cat("expected ", kForm, ", got ", shown(line)));
    const std::string name(words[1]);
    if (golden.tensors.count(name)) fail("duplicate tensor '" + name + "'");

    DType dtype;
    if (words[2] == "f64") {
      dtype = DType::f64;
    } else if (words[2] == "i64") {
      dtype = DType::i64;
    } else {
      fail(detail::str_cat("tensor '", name, "': expected dtype f64 or i64, got '", words[2], "'"));
    }

    int rank = 0;
    if (!parse_number(words[3], rank) || rank < 0)
      fail(detail::str_cat("tensor '", name, "': expected a rank >= 0, got '", words[3], "'"));
    if (words.size() != 4 + static_cast<std::size_t>(rank))
      fail(detail::str_cat("tensor '", name, "': rank ", rank, " needs ", rank, " dims, got ",
                           words.size() - 4));
    Shape shape;
    std::int64_t numel = 1;
    for (int d = 0; d < rank; ++d) {
      std::int64_t size = -1;
      if (!parse_number(words[4 + d], size) || size < 0)
        fail(detail::str_cat("tensor '", name, "': expected dim ", d, " to be a size >= 0, got '",
                             words[4 + d], "'"));
      shape.push_back(size);
      numel = size == 0 ? 0 : numel * size;
      if (numel > kMaxElements)
        fail(detail::str_cat("tensor '", name, "': shape has more than ", kMaxElements,
                             " elements"));
    }

    std::string values_line;
    if (!next_line(values_line))
      fail(detail::str_cat("tensor '", name, "': expected a line of ", numel,
                           " values, got the end of the file"));
    if (values_line.starts_with("tensor ") || values_line.starts_with("meta "))
      fail(detail::str_cat("tensor '", name, "': expected a line of ", numel,
                           " values, got ", shown(values_line)));
    const std::vector<std::string_view> values = split_words(values_line);
    if (static_cast<std::int64_t>(values.size()) != numel)
      fail(detail::str_cat("tensor '", name, "' ", shape_str(shape), ": expected ", numel,
                           " values, got ", values.size()));

    Tensor tensor = Tensor::empty(shape, dtype);
    if (dtype == DType::f64) {
      double* out = tensor.data<double>();
      for (std::size_t i = 0; i < values.size(); ++i)
        if (!parse_number(values[i], out[i]))
          fail(detail::str_cat("tensor '", name, "': value ", i, ": expected a number, got '",
                               values[i], "'"));
    } else {
      std::int64_t* out = tensor.data<std::int64_t>();
      for (std::size_t i = 0; i < values.size(); ++i)
        if (!parse_number(values[i], out[i]))
          fail(detail::str_cat("tensor '", name, "': value ", i, ": expected an integer, got '",
                               values[i], "'"));
    }
    golden.tensors.emplace(name, std::move(tensor));
  }

  std::string path_;
  std::ifstream& in_;
  int line_no_ = 0;
};

}  // namespace

const Tensor& Golden::tensor(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end())
    throw IoError(detail::str_cat("golden fixture ", path, ": no tensor '", name, "'"));
  return it->second;
}

const std::string& Golden::meta_value(const std::string& key) const {
  auto it = meta.find(key);
  if (it == meta.end())
    throw IoError(detail::str_cat("golden fixture ", path, ": no meta key '", key, "'"));
  return it->second;
}

std::vector<double> Golden::meta_numbers(const std::string& key) const {
  const std::string& value = meta_value(key);
  std::vector<double> numbers;
  for (std::string_view word : split_words(value)) {
    double number = 0;
    if (!parse_number(word, number))
      throw IoError(detail::str_cat("golden fixture ", path, ": meta '", key,
                                    "': expected space-separated numbers, got '", value, "'"));
    numbers.push_back(number);
  }
  return numbers;
}

std::vector<std::string> Golden::names_with_prefix(const std::string& prefix) const {
  std::vector<std::string> names;
  for (auto it = tensors.lower_bound(prefix); it != tensors.end() && it->first.starts_with(prefix);
       ++it)
    names.push_back(it->first);
  return names;
}

Golden load_golden(const std::string& path) {
  const std::string resolved = std::filesystem::path(path).is_absolute()
                                   ? path
                                   : std::string(PRUNEREC_SOURCE_DIR "/tests/fixtures/") + path;
  std::ifstream in(resolved);
  if (!in) throw IoError("cannot open golden fixture " + resolved);
  return Parser(resolved, in).parse();
}

}  // namespace prunerec::testing
