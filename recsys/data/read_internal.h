// Internals of the data readers: text scanning, malformed-line accounting, the dataset
// builders every reader shares, the readers themselves and source resolution. Only the
// recsys/data/*.cc files and their tests include this.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "recsys/data/dataset.h"
#include "base/error.h"

namespace prunerec::recsys::detail {

using ::prunerec::detail::str_cat;

// ---- files and text ------------------------------------------------------------------

// The whole file, without a leading UTF-8 byte-order mark. IoError when it cannot be read
// or is not text (check_text).
std::string read_file(const std::string& path);
// IoError for a compressed (gzip, zip, bzip2, xz, zstd) or binary (a NUL byte in the first
// 64 KiB) file: every data format is text, and sniffing a binary file as CSV helps no one.
void check_text(const std::string& path, std::string_view text);
bool file_exists(const std::string& path);       // a regular file
bool directory_exists(const std::string& path);

// Lines separated by '\n'; a trailing '\r' is dropped. Line numbers start at 1.
class LineCursor {
 public:
  explicit LineCursor(std::string_view text) : text_(text) {}
  bool next(std::string_view& line);  // false at the end
  std::int64_t line_number() const { return line_; }  // of the line last returned

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::int64_t line_ = 0;
};

bool is_space(char c);  // ' ', '\t', '\r', '\v', '\f'
std::string_view trim(std::string_view s);
bool is_blank(std::string_view s);
void split_whitespace(std::string_view line, std::vector<std::string_view>& fields);
void split_on(std::string_view line, std::string_view separator,
              std::vector<std::string_view>& fields);
// A byte that has no place in a text line (NUL, other C0 controls but the spaces, DEL),
// or -1.
int find_control_byte(std::string_view line);
std::string lower(std::string_view s);
bool ends_with(std::string_view s, std::string_view suffix);
// For messages: the text in double quotes, cut after 40 bytes.
std::string quote_text(std::string_view s);

void append_utf8(std::string& out, std::uint32_t code_point);
bool is_digits(std::string_view s);  // non-empty, 0-9 only: an integer id as written
bool parse_double(std::string_view s, double& value);  // finite decimal
// An integer, or a decimal (RecBole writes timestamp:float) rounded down; |value| < 9e15.
bool parse_timestamp(std::string_view s, std::int64_t& value);

// ---- malformed input -----------------------------------------------------------------

// Reports malformed lines of one file: throws IoError("path:line: what") unless
// skip_bad_lines, in which case the line is counted in the report.
class BadLines {
 public:
  BadLines(std::string path, bool skip, ReadReport& report)
      : path_(std::move(path)), skip_(skip), report_(report) {}
  void bad(std::int64_t line, const std::string& what);
  [[noreturn]] void fail(std::int64_t line, const std::string& what) const;  // always throws
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool skip_;
  ReadReport& report_;
};

// ---- CSV and Python literals ---------------------------------------------------------

// RFC 4180 records: ',' separated, '"' quoted with "" for a quote, newlines allowed inside
// quotes, LF or CRLF line ends.
class CsvCursor {
 public:
  enum class Status { kRecord, kEnd, kUnterminatedQuote, kTextAfterQuote };
  explicit CsvCursor(std::string_view text) : text_(text) {}
  Status next(std::vector<std::string>& fields);
  std::int64_t record_line() const { return record_line_; }  // where the last record began

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::int64_t line_ = 1;
  std::int64_t record_line_ = 0;
};

// A flat Python list literal of ints and str, e.g. "[1, 2]" or "['a', \"b's\"]", as
// produced by repr(). Elements come back as text (ints as written, strings unescaped).
// Returns "" on success, else what went wrong.
std::string parse_python_list(std::string_view text, std::vector<std::string>& elements);

// ---- building datasets ---------------------------------------------------------------

using StringIndex = std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>>;

// Users and items interned in order of first appearance, sequences per user.
class DatasetBuilder {
 public:
  explicit DatasetBuilder(std::string path) : path_(std::move(path)) {}
  std::int32_t find_user(std::string_view raw_id) const;
  std::int32_t add_user(std::string_view raw_id);  // existing index, or a new empty user
  std::int32_t add_item(std::string_view raw_id);
  SequenceDataset& data() { return data_; }
  // Drops users without interactions; IoError when no user is left.
  SequenceDataset finish();

 private:
  std::string path_;
  SequenceDataset data_;
  StringIndex user_index_;
};

// One event a row, grouped into sequences by finish(); see
// Note [Chronological order and duplicates].
class EventLog {
 public:
  EventLog(std::string path, bool has_time) : builder_(std::move(path)), has_time_(has_time) {}
  void add(std::string_view user, std::string_view item, std::int64_t time);
  SequenceDataset finish(DuplicatePolicy duplicates, ReadReport& report);

 private:
  struct Row {
    std::int32_t user;
    std::int32_t item;
    std::int64_t time;
  };
  DatasetBuilder builder_;
  bool has_time_;
  std::vector<Row> rows_;  // in line order
};

// True when the items written in `history` are the last history.size() items of `seq`:
// a row of a sliding-window or augmented sequence file that continues a known user.
template <class Strings>
bool continues_sequence(const ItemCatalog& items, const std::vector<std::int32_t>& seq,
                        const Strings& history) {
  if (history.size() > seq.size()) return false;
  std::size_t offset = seq.size() - history.size();
  for (std::size_t k = 0; k < history.size(); ++k)
    if (items.find(history[k]) != seq[offset + k]) return false;
  return true;
}

// ---- readers -------------------------------------------------------------------------

// What a reader hands back to read_dataset.
struct ParsedData {
  SequenceDataset data;                  // item raw ids as written in the file
  std::vector<std::string> final_item_ids;  // empty, or the raw id of each item (lcrec ASINs)
  std::string auto_titles_path;          // a titles file found beside the data, or ""
};

struct ReaderContext {
  const ReadOptions& opts;
  ReadReport& report;
};

ParsedData read_pairs(const std::string& path, std::string_view text, ReaderContext ctx);
ParsedData read_user_seq(const std::string& path, std::string_view text, ReaderContext ctx);
ParsedData read_item_seq(const std::string& path, std::string_view text, ReaderContext ctx);
ParsedData read_movielens_dat(const std::string& path, std::string_view text,
                              ReaderContext ctx);
ParsedData read_recbole(const std::string& path, std::string_view text, ReaderContext ctx);
ParsedData read_csv(const std::string& path, std::string_view text, ReaderContext ctx);
ParsedData read_lcrec_json(const std::string& path, std::string_view text, ReaderContext ctx);

struct D3Source {
  // (split name, CSV path), in the order train, valid, test; one entry with an empty
  // split name when a single CSV is read.
  std::vector<std::pair<std::string, std::string>> files;
  std::string info_path;  // info/<name>.txt item table, or ""
};
ParsedData read_d3(const D3Source& source, ReaderContext ctx);

// ---- titles --------------------------------------------------------------------------

bool is_recbole_header(std::string_view line);
// id -> title from a RecBole .item file or a TSV "raw id<TAB>title" (header optional).
std::unordered_map<std::string, std::string> read_title_table(const std::string& path,
                                                              ReaderContext ctx);
// id as written in the data -> id of the titles file, from a 2-column TSV (or
// whitespace-separated) map; header allowed, extra columns ignored.
std::unordered_map<std::string, std::string> read_item_map(const std::string& path,
                                                           ReaderContext ctx);

// ---- sources -------------------------------------------------------------------------

struct ResolvedSource {
  std::string format;     // never "auto"
  std::string data_path;  // the file to read ("" for d3-csv: see d3.files)
  std::string text;       // its content
  D3Source d3;            // for d3-csv
};
ResolvedSource resolve_source(const std::string& path, const std::string& format);
std::string detect_text_format(const std::string& path, std::string_view text);

}  // namespace prunerec::recsys::detail
