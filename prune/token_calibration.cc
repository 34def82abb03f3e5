#include "prune/token_calibration.h"

#include <charconv>
#include <sstream>

#include "base/atomic_file.h"

namespace prunerec::prune {

std::vector<std::vector<std::int32_t>> read_token_sequences(const std::string& path, std::int64_t vocab_size) {
  constexpr std::size_t kMaxBytes = std::size_t{1} << 30;
  const std::string text = read_file(path, kMaxBytes);
  std::vector<std::vector<std::int32_t>> out;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::vector<std::int32_t> seq;
    for (std::size_t at = first; at < line.size();) {
      const std::size_t end = std::min(line.find_first_of(" \t", at), line.size());
      const std::string_view word(line.data() + at, end - at);
      std::int64_t id = -1;
      const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
      if (ec != std::errc() || ptr != word.data() + word.size() || id < 0)
        throw IoError(detail::str_cat(path, ":", number, ": '", word, "' is not a token id (a non-negative integer)"));
      if (id >= vocab_size)
        throw IoError(detail::str_cat(path, ":", number, ": token id ", id, " is outside the model's vocabulary of ",
                                      vocab_size));
      seq.push_back(static_cast<std::int32_t>(id));
      at = line.find_first_not_of(" \t", end);
      if (at == std::string::npos) break;
    }
    if (seq.size() < 2)
      throw IoError(detail::str_cat(path, ":", number, ": a calibration sequence needs at least 2 tokens, got ",
                                    seq.size()));
    out.push_back(std::move(seq));
  }
  if (out.empty()) throw IoError(detail::str_cat(path, ": no token sequence (one per line, ids separated by spaces)"));
  return out;
}

Calibration token_calibration(const std::vector<std::vector<std::int32_t>>& sequences, int max_len,
                              const pb::CalibrationConfig& config) {
  return make_calibration(sequences, max_len, config);
}

}  // namespace prunerec::prune
