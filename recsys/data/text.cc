// Text scanning shared by the readers: files, lines, fields, numbers, CSV records and
// Python list literals. Nothing here recurses or sizes an allocation from the input's
// numbers.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "recsys/data/read_internal.h"
#include "base/error.h"

namespace prunerec::recsys::detail {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw IoError(path + ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot open for reading (missing or unreadable)");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw IoError(path + ": read error");
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  check_text(path, text);
  return text;
}

void check_text(const std::string& path, std::string_view text) {
  struct Magic {
    std::string_view bytes, name;
  };
  static constexpr Magic kCompressed[] = {{"\x1f\x8b", "gzip"}, {"PK\x03\x04", "zip"}, {"BZh", "bzip2"},
                                          {"\xfd" "7zXZ", "xz"}, {"\x28\xb5\x2f\xfd", "zstd"}};
  for (const auto& m : kCompressed)
    if (text.substr(0, m.bytes.size()) == m.bytes && (m.name != "bzip2" || text.find('\0') != std::string_view::npos))
      throw IoError(str_cat(path, ": a ", m.name, "-compressed file; decompress it first (the data formats are text: ",
                            "docs/data-formats.md)"));
  // Text formats hold no NUL byte; one in the first 64 KiB means a binary file (a checkpoint,
  // a NumPy array, a Parquet file ...), not a CSV with odd characters.
  const std::size_t nul = text.substr(0, 65536).find('\0');
  if (nul != std::string_view::npos)
    throw IoError(str_cat(path, ": a binary file (NUL byte at offset ", nul, "), not one of the text formats prunerec ",
                          "reads (docs/data-formats.md)"));
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

bool directory_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

bool LineCursor::next(std::string_view& line) {
  if (pos_ >= text_.size()) return false;
  std::size_t end = text_.find('\n', pos_);
  if (end == std::string_view::npos) end = text_.size();
  line = text_.substr(pos_, end - pos_);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  pos_ = end + 1;
  ++line_;
  return true;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool is_blank(std::string_view s) { return trim(s).empty(); }

void split_whitespace(std::string_view line, std::vector<std::string_view>& fields) {
  fields.clear();
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    std::size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
}

void split_on(std::string_view line, std::string_view separator,
              std::vector<std::string_view>& fields) {
  fields.clear();
  std::size_t start = 0;
  while (true) {
    std::size_t end = line.find(separator, start);
    if (end == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return;
    }
    fields.push_back(line.substr(start, end - start));
    start = end + separator.size();
  }
}

int find_control_byte(std::string_view line) {
  for (char ch : line) {
    auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && !is_space(ch)) || c == 0x7F) return c;
  }
  return -1;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string quote_text(std::string_view s) {
  constexpr std::size_t kMax = 40;
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < kMax; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += s[i];
    }
  }
  out += s.size() > kMax ? "...\"" : "\"";
  return out;
}

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool parse_double(std::string_view s, double& value) {
  if (s.empty()) return false;
  const char* begin = s.data();
  if (*begin == '+') ++begin;  // from_chars takes no '+'
  auto [end, ec] = std::from_chars(begin, s.data() + s.size(), value);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(value);
}

bool parse_timestamp(std::string_view s, std::int64_t& value) {
  constexpr double kLimit = 9e15;  // every integer below is exact in a double
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec == std::errc() && end == s.data() + s.size())
    return value > -kLimit && value < kLimit;
  double real = 0;
  if (!parse_double(s, real) || !(real > -kLimit && real < kLimit)) return false;
  value = static_cast<std::int64_t>(std::floor(real));
  return true;
}

void BadLines::bad(std::int64_t line, const std::string& what) {
  if (!skip_) fail(line, what);
  ++report_.bad_lines;
  if (report_.first_errors.size() < 10)
    report_.first_errors.push_back(str_cat(path_, ":", line, ": ", what));
}

void BadLines::fail(std::int64_t line, const std::string& what) const {
  throw IoError(str_cat(path_, ":", line, ": ", what));
}

// ---- CSV -----------------------------------------------------------------------------

CsvCursor::Status CsvCursor::next(std::vector<std::string>& fields) {
  fields.clear();
  const std::size_t n = text_.size();
  if (pos_ >= n) return Status::kEnd;
  record_line_ = line_;
  std::string field;
  while (true) {
    field.clear();
    if (pos_ < n && text_[pos_] == '"') {
      ++pos_;
      while (true) {
        if (pos_ >= n) return Status::kUnterminatedQuote;  // pos_ stays at the end
        char c = text_[pos_++];
        if (c == '"') {
          if (pos_ < n && text_[pos_] == '"') {
            field += '"';
            ++pos_;
            continue;
          }
          break;
        }
        if (c == '\n') ++line_;
        field += c;
      }
      fields.push_back(field);
      if (pos_ >= n) return Status::kRecord;
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == '\r' && (pos_ + 1 >= n || text_[pos_ + 1] == '\n')) ++pos_;
      if (pos_ >= n) return Status::kRecord;
      if (text_[pos_] == '\n') {
        ++pos_;
        ++line_;
        return Status::kRecord;
      }
      // Text after a closing quote: skip the rest of the physical line.
      std::size_t end = text_.find('\n', pos_);
      pos_ = end == std::string_view::npos ? n : end + 1;
      ++line_;
      return Status::kTextAfterQuote;
    }
    std::size_t end = text_.find_first_of(",\n", pos_);
    if (end == std::string_view::npos) end = n;
    std::string_view raw = text_.substr(pos_, end - pos_);
    if (end == n || text_[end] == '\n')
      if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    fields.emplace_back(raw);
    pos_ = end + 1;
    if (end == n) return Status::kRecord;
    if (text_[end] == '\n') {
      ++line_;
      return Status::kRecord;
    }
  }
}

// ---- Python list literals ------------------------------------------------------------

// cp <= 0x10FFFF (callers check); lone surrogates are encoded as they are.
void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads `digits` hex digits at s[i...]; false when they are not all there.
bool read_hex(std::string_view s, std::size_t i, int digits, std::uint32_t& value) {
  if (i + digits > s.size()) return false;
  value = 0;
  for (int k = 0; k < digits; ++k) {
    int h = hex_value(s[i + k]);
    if (h < 0) return false;
    value = value * 16 + static_cast<std::uint32_t>(h);
  }
  return true;
}

bool is_python_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

std::string parse_python_list(std::string_view s, std::vector<std::string>& elements) {
  elements.clear();
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < s.size() && is_python_space(s[i])) ++i;
  };
  skip_space();
  if (i >= s.size() || s[i] != '[') return "expected a list starting with '['";
  ++i;
  skip_space();
  bool closed = false;
  if (i < s.size() && s[i] == ']') {
    ++i;
    closed = true;
  }
  while (!closed) {
    skip_space();
    if (i >= s.size()) return "unterminated list";
    char c = s[i];
    if (c == '\'' || c == '"') {
      const char quote = c;
      ++i;
      std::string value;
      bool terminated = false;
      while (i < s.size()) {
        char d = s[i++];
        if (d == quote) {
          terminated = true;
          break;
        }
        if (d != '\\') {
          value += d;
          continue;
        }
        if (i >= s.size()) break;
        char e = s[i++];
        std::uint32_t cp = 0;
        switch (e) {
          case 'n': value += '\n'; break;
          case 't': value += '\t'; break;
          case 'r': value += '\r'; break;
          case '0': value += '\0'; break;
          case 'a': value += '\a'; break;
          case 'b': value += '\b'; break;
          case 'f': value += '\f'; break;
          case 'v': value += '\v'; break;
          case '\\': case '\'': case '"': value += e; break;
          case 'x':
          case 'u':
          case 'U': {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            if (!read_hex(s, i, digits, cp) || cp > 0x10FFFF)
              return std::string("bad \\") + e + " escape in a string";
            i += static_cast<std::size_t>(digits);
            append_utf8(value, cp);
            break;
          }
          default:  // Python keeps unknown escapes as written
            value += '\\';
            value += e;
        }
      }
      if (!terminated) return "unterminated string in list";
      elements.push_back(std::move(value));
    } else if ((c >= '0' && c <= '9') || c == '-') {
      std::size_t start = i++;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
      std::string_view number = s.substr(start, i - start);
      if (number == "-") return "expected a number after '-'";
      elements.emplace_back(number);
    } else {
      return "expected an integer or a quoted string in list, got " + quote_text(s.substr(i, 10));
    }
    skip_space();
    if (i >= s.size()) return "unterminated list";
    if (s[i] == ',') {
      ++i;
      skip_space();
      if (i < s.size() && s[i] == ']') {  // trailing comma
        ++i;
        closed = true;
      }
    } else if (s[i] == ']') {
      ++i;
      closed = true;
    } else {
      return "expected ',' or ']' in list, got " + quote_text(s.substr(i, 10));
    }
  }
  skip_space();
  if (i != s.size()) return "unexpected text after the list: " + quote_text(s.substr(i));
  return "";
}

// ---- dataset builders ----------------------------------------------------------------

std::int32_t DatasetBuilder::find_user(std::string_view raw_id) const {
  auto it = user_index_.find(raw_id);
  return it == user_index_.end() ? -1 : it->second;
}

std::int32_t DatasetBuilder::add_user(std::string_view raw_id) {
  auto it = user_index_.find(raw_id);
  if (it != user_index_.end()) return it->second;
  if (data_.users.size() >= static_cast<std::size_t>(INT32_MAX))
    throw IoError(path_ + ": more than 2^31-1 users");
  auto index = static_cast<std::int32_t>(data_.users.size());
  data_.users.emplace_back(raw_id);
  data_.sequences.emplace_back();
  user_index_.emplace(std::string(raw_id), index);
  return index;
}

std::int32_t DatasetBuilder::add_item(std::string_view raw_id) {
  if (data_.items.raw_ids.size() >= static_cast<std::size_t>(INT32_MAX) &&
      data_.items.find(raw_id) < 0)
    throw IoError(path_ + ": more than 2^31-1 items");
  return data_.items.add(raw_id);
}

SequenceDataset DatasetBuilder::finish() {
  SequenceDataset& d = data_;
  std::size_t kept = 0;
  for (std::size_t u = 0; u < d.users.size(); ++u) {
    if (d.sequences[u].empty()) continue;
    if (kept != u) {
      d.users[kept] = std::move(d.users[u]);
      d.sequences[kept] = std::move(d.sequences[u]);
      if (d.has_time()) d.times[kept] = std::move(d.times[u]);
    }
    ++kept;
  }
  d.users.resize(kept);
  d.sequences.resize(kept);
  if (d.has_time()) d.times.resize(kept);
  if (kept == 0) throw IoError(path_ + ": no usable users (no line held an interaction)");
  user_index_.clear();
  return std::move(data_);
}

void EventLog::add(std::string_view user, std::string_view item, std::int64_t time) {
  std::int32_t u = builder_.add_user(user);
  std::int32_t i = builder_.add_item(item);
  rows_.push_back({u, i, has_time_ ? time : 0});
}

SequenceDataset EventLog::finish(DuplicatePolicy duplicates, ReadReport& report) {
  SequenceDataset& d = builder_.data();
  const std::size_t num_users = d.users.size();
  // Counting sort by user keeps line order within each user.
  std::vector<std::size_t> start(num_users + 1, 0);
  for (const Row& r : rows_) ++start[static_cast<std::size_t>(r.user) + 1];
  for (std::size_t u = 0; u < num_users; ++u) start[u + 1] += start[u];
  std::vector<std::size_t> order(rows_.size());
  {
    std::vector<std::size_t> fill(start.begin(), start.end() - 1);
    for (std::size_t r = 0; r < rows_.size(); ++r) order[fill[static_cast<std::size_t>(rows_[r].user)]++] = r;
  }
  if (has_time_) d.times.assign(num_users, {});
  std::vector<std::size_t> events;
  std::vector<std::size_t> by_item_time;
  std::vector<char> keep;
  for (std::size_t u = 0; u < num_users; ++u) {
    events.assign(order.begin() + static_cast<std::ptrdiff_t>(start[u]),
                  order.begin() + static_cast<std::ptrdiff_t>(start[u + 1]));
    if (has_time_)  // (timestamp, line order): row indices grow with the line
      std::stable_sort(events.begin(), events.end(), [&](std::size_t a, std::size_t b) {
        return rows_[a].time < rows_[b].time;
      });
    keep.assign(events.size(), 1);
    if (duplicates == DuplicatePolicy::kDropExact) {
      if (has_time_) {
        by_item_time.resize(events.size());
        for (std::size_t k = 0; k < events.size(); ++k) by_item_time[k] = k;
        std::sort(by_item_time.begin(), by_item_time.end(), [&](std::size_t a, std::size_t b) {
          const Row& ra = rows_[events[a]];
          const Row& rb = rows_[events[b]];
          if (ra.time != rb.time) return ra.time < rb.time;
          if (ra.item != rb.item) return ra.item < rb.item;
          return a < b;
        });
        for (std::size_t k = 1; k < by_item_time.size(); ++k) {
          const Row& prev = rows_[events[by_item_time[k - 1]]];
          const Row& cur = rows_[events[by_item_time[k]]];
          if (prev.time == cur.time && prev.item == cur.item) keep[by_item_time[k]] = 0;
        }
      } else {
        for (std::size_t k = 1; k < events.size(); ++k)
          if (rows_[events[k]].item == rows_[events[k - 1]].item) keep[k] = 0;
      }
    }
    auto& seq = d.sequences[u];
    seq.reserve(events.size());
    for (std::size_t k = 0; k < events.size(); ++k) {
      if (!keep[k]) {
        ++report.duplicates_dropped;
        continue;
      }
      seq.push_back(rows_[events[k]].item);
      if (has_time_) d.times[u].push_back(rows_[events[k]].time);
    }
  }
  rows_.clear();
  return builder_.finish();
}

}  // namespace prunerec::recsys::detail
