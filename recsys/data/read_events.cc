// Event logs with named or fixed columns:
//   movielens-dat  user::item::rating::timestamp
//   recbole        RecBole atomic .inter: typed header, tab-separated; one event a row
//                  (user_id, item_id[, timestamp][, rating]) or one sequence a row
//                  (user_id, item_id_list, item_id: the history then its target)
//   csv            user,item[,timestamp][,rating] with or without a header
// Event rows go through EventLog (Note [Chronological order and duplicates]).
#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>

#include "recsys/data/read_internal.h"

namespace prunerec::recsys::detail {

namespace {

namespace fs = std::filesystem;

std::string control_byte_problem(std::string_view line) {
  int control = find_control_byte(line);
  if (control < 0) return "";
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%02X", control);
  return str_cat("unexpected control byte ", hex, " (not a text file?)");
}

}  // namespace

// ---- movielens-dat -------------------------------------------------------------------

ParsedData read_movielens_dat(const std::string& path, std::string_view text,
                              ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  EventLog log(path, /*has_time=*/true);
  LineCursor cursor(text);
  std::string_view line;
  std::vector<std::string_view> fields;
  while (cursor.next(line)) {
    if (is_blank(line)) continue;
    ++ctx.report.lines;
    std::string problem = control_byte_problem(line);
    std::int64_t time = 0;
    double rating = 0;
    if (problem.empty()) {
      split_on(line, "::", fields);
      for (auto& field : fields) field = trim(field);
      if (fields.size() != 4)
        problem = str_cat("expected \"user::item::rating::timestamp\", got ", fields.size(),
                          " fields");
      else if (fields[0].empty() || fields[1].empty())
        problem = "empty user or item id";
      else if (!parse_double(fields[2], rating))
        problem = "expected a numeric rating, got " + quote_text(fields[2]);
      else if (!parse_timestamp(fields[3], time))
        problem = "expected an integer timestamp, got " + quote_text(fields[3]);
    }
    if (!problem.empty()) {
      bad.bad(cursor.line_number(), problem);
      continue;
    }
    log.add(fields[0], fields[1], time);
  }
  return {log.finish(ctx.opts.duplicates, ctx.report), {}, {}};
}

// ---- recbole -------------------------------------------------------------------------

bool is_recbole_header(std::string_view line) {
  static const std::array<std::string_view, 4> kTypes = {"token", "token_seq", "float",
                                                         "float_seq"};
  std::vector<std::string_view> fields;
  split_on(line, "\t", fields);
  if (fields.size() < 2) return false;
  for (std::string_view field : fields) {
    field = trim(field);
    std::size_t colon = field.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    std::string_view type = field.substr(colon + 1);
    if (std::find(kTypes.begin(), kTypes.end(), type) == kTypes.end()) return false;
    for (char c : field.substr(0, colon))
      if (is_space(c)) return false;
  }
  return true;
}

namespace {

struct RecboleColumn {
  std::string name;
  std::string type;
};

std::vector<RecboleColumn> parse_recbole_header(std::string_view line) {
  std::vector<std::string_view> fields;
  split_on(line, "\t", fields);
  std::vector<RecboleColumn> columns;
  for (std::string_view field : fields) {
    field = trim(field);
    std::size_t colon = field.rfind(':');
    columns.push_back({std::string(field.substr(0, colon)), std::string(field.substr(colon + 1))});
  }
  return columns;
}

// Index of the column named `exact`, else of the first that `fallback` accepts, else -1.
template <class Pred>
int find_column(const std::vector<RecboleColumn>& columns, std::string_view exact, Pred fallback) {
  for (std::size_t c = 0; c < columns.size(); ++c)
    if (columns[c].name == exact) return static_cast<int>(c);
  for (std::size_t c = 0; c < columns.size(); ++c)
    if (fallback(columns[c])) return static_cast<int>(c);
  return -1;
}

bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// A RecBole .item file beside the .inter: <stem>.item, <name up to the first '.'>.item,
// then <name up to the first '-' or '.'>.item (Games-6k.test.inter -> Games.item).
std::string find_recbole_item_file(const std::string& path) {
  fs::path p(path);
  std::string name = p.filename().string();
  std::vector<std::string> stems;
  stems.push_back(p.stem().string());
  stems.push_back(name.substr(0, name.find('.')));
  stems.push_back(name.substr(0, name.find_first_of("-.")));
  for (const std::string& stem : stems) {
    if (stem.empty()) continue;
    std::string candidate = (p.parent_path() / (stem + ".item")).string();
    if (file_exists(candidate)) return candidate;
  }
  return "";
}

}  // namespace

ParsedData read_recbole(const std::string& path, std::string_view text, ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  LineCursor cursor(text);
  std::string_view line;
  bool have_header = false;
  while (cursor.next(line))
    if (!is_blank(line)) {
      have_header = true;
      break;
    }
  if (!have_header) throw IoError(path + ": empty file, expected a RecBole .inter file");
  const std::int64_t header_line = cursor.line_number();
  if (!is_recbole_header(line))
    bad.fail(header_line, "expected a RecBole header of name:type fields (user_id:token\\t"
                          "item_id:token...), got " + quote_text(line));
  const std::vector<RecboleColumn> columns = parse_recbole_header(line);
  const int user_col = find_column(columns, "user_id", [](const RecboleColumn& c) {
    return contains(c.name, "user") && c.type == "token";
  });
  const int list_col = find_column(columns, "item_id_list", [](const RecboleColumn& c) {
    return contains(c.name, "item") && ends_with(c.name, "_list") && c.type == "token_seq";
  });
  const int item_col = find_column(columns, "item_id", [](const RecboleColumn& c) {
    return contains(c.name, "item") && !ends_with(c.name, "_list") && c.type == "token";
  });
  const int time_col = list_col >= 0 ? -1 : find_column(columns, "timestamp", [](const RecboleColumn& c) {
    return contains(c.name, "time") && c.type == "float";
  });
  const int rating_col = find_column(columns, "rating", [](const RecboleColumn&) { return false; });
  if (user_col < 0) bad.fail(header_line, "header names no user_id column");
  if (item_col < 0) bad.fail(header_line, "header names no item_id column");

  ParsedData parsed;
  parsed.auto_titles_path = find_recbole_item_file(path);
  const std::size_t num_columns = columns.size();
  std::vector<std::string_view> fields;
  std::vector<std::string_view> history;

  if (list_col >= 0) {
    // One (history, target) row per user, or several rows continuing the same user.
    DatasetBuilder builder(path);
    while (cursor.next(line)) {
      if (is_blank(line)) continue;
      ++ctx.report.lines;
      std::string problem = control_byte_problem(line);
      if (problem.empty()) {
        split_on(line, "\t", fields);
        for (auto& field : fields) field = trim(field);
        if (fields.size() != num_columns)
          problem = str_cat("expected ", num_columns, " tab-separated fields as in the header, got ",
                            fields.size());
        else if (fields[user_col].empty() || fields[item_col].empty())
          problem = "empty user or item id";
      }
      std::int32_t known_user = -1;
      if (problem.empty()) {
        split_whitespace(fields[list_col], history);
        known_user = builder.find_user(fields[user_col]);
        if (known_user >= 0 &&
            !continues_sequence(builder.data().items,
                                builder.data().sequences[static_cast<std::size_t>(known_user)], history))
          problem = str_cat("history of user ", quote_text(fields[user_col]),
                            " does not continue that user's earlier rows");
      }
      if (!problem.empty()) {
        bad.bad(cursor.line_number(), problem);
        continue;
      }
      std::int32_t user = builder.add_user(fields[user_col]);
      auto& seq = builder.data().sequences[static_cast<std::size_t>(user)];
      if (known_user < 0)
        for (std::string_view item : history) seq.push_back(builder.add_item(item));
      seq.push_back(builder.add_item(fields[item_col]));
    }
    parsed.data = builder.finish();
    return parsed;
  }

  EventLog log(path, /*has_time=*/time_col >= 0);
  while (cursor.next(line)) {
    if (is_blank(line)) continue;
    ++ctx.report.lines;
    std::string problem = control_byte_problem(line);
    std::int64_t time = 0;
    double rating = 0;
    if (problem.empty()) {
      split_on(line, "\t", fields);
      for (auto& field : fields) field = trim(field);
      if (fields.size() != num_columns)
        problem = str_cat("expected ", num_columns, " tab-separated fields as in the header, got ",
                          fields.size());
      else if (fields[user_col].empty() || fields[item_col].empty())
        problem = "empty user or item id";
      else if (time_col >= 0 && !parse_timestamp(fields[time_col], time))
        problem = "expected a numeric timestamp, got " + quote_text(fields[time_col]);
      else if (rating_col >= 0 && !parse_double(fields[rating_col], rating))
        problem = "expected a numeric rating, got " + quote_text(fields[rating_col]);
    }
    if (!problem.empty()) {
      bad.bad(cursor.line_number(), problem);
      continue;
    }
    log.add(fields[user_col], fields[item_col], time);
  }
  parsed.data = log.finish(ctx.opts.duplicates, ctx.report);
  return parsed;
}

// ---- csv -----------------------------------------------------------------------------

namespace {

// Column name without case, '_', '-' or spaces: "User_ID" -> "userid".
std::string normalized_name(std::string_view name) {
  std::string out;
  for (char c : lower(trim(name)))
    if (c != '_' && c != '-' && c != ' ') out += c;
  return out;
}

enum class CsvRole { kNone, kUser, kItem, kTime, kRating };

CsvRole role_of(std::string_view name) {
  static const std::array<std::string_view, 7> kUser = {"user", "userid", "uid", "reviewerid",
                                                        "customerid", "visitorid", "users"};
  static const std::array<std::string_view, 8> kItem = {"item", "itemid", "iid", "movieid",
                                                        "productid", "asin", "parentasin", "items"};
  static const std::array<std::string_view, 6> kTime = {"timestamp", "time", "ts",
                                                        "unixreviewtime", "unixtime", "datetime"};
  static const std::array<std::string_view, 4> kRating = {"rating", "score", "overall", "stars"};
  std::string n = normalized_name(name);
  auto in = [&](const auto& names) { return std::find(names.begin(), names.end(), n) != names.end(); };
  if (in(kUser)) return CsvRole::kUser;
  if (in(kItem)) return CsvRole::kItem;
  if (in(kTime)) return CsvRole::kTime;
  if (in(kRating)) return CsvRole::kRating;
  return CsvRole::kNone;
}

bool is_number(std::string_view s) {
  double unused = 0;
  return parse_double(trim(s), unused);
}

bool is_blank_record(const std::vector<std::string>& fields) {
  return fields.size() == 1 && is_blank(fields[0]);
}

// Next non-blank record; false at the end. Malformed quoting is reported through `bad`.
bool next_record(CsvCursor& cursor, BadLines& bad, std::vector<std::string>& fields, bool& ok) {
  while (true) {
    CsvCursor::Status status = cursor.next(fields);
    ok = true;
    switch (status) {
      case CsvCursor::Status::kEnd:
        return false;
      case CsvCursor::Status::kUnterminatedQuote:
        bad.bad(cursor.record_line(), "unterminated quoted field (a '\"' is never closed)");
        ok = false;
        return true;
      case CsvCursor::Status::kTextAfterQuote:
        bad.bad(cursor.record_line(), "text after a closing quote (quotes inside a field must be doubled)");
        ok = false;
        return true;
      case CsvCursor::Status::kRecord:
        if (is_blank_record(fields)) continue;
        return true;
    }
  }
}

// Note: without a header (or with one of unknown names) the columns are user,item,
// user,item,timestamp or, with four, user,item,rating,timestamp (MovieLens ratings.csv).
bool positional_columns(std::size_t num_columns, int& user, int& item, int& time, int& rating) {
  if (num_columns < 2 || num_columns > 4) return false;
  user = 0;
  item = 1;
  if (num_columns == 3) time = 2;
  if (num_columns == 4) {
    rating = 2;
    time = 3;
  }
  return true;
}

}  // namespace

ParsedData read_csv(const std::string& path, std::string_view text, ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  CsvCursor cursor(text);
  std::vector<std::string> first;
  bool ok = true;
  // The first record decides the layout, so malformed quoting there always stops.
  BadLines strict(path, false, ctx.report);
  if (!next_record(cursor, strict, first, ok)) throw IoError(path + ": empty file, expected CSV rows");
  const std::int64_t first_line = cursor.record_line();

  // Note: a header is a first row naming a known column (user, user_id, item, item_id,
  // timestamp, rating, ...), or one with a non-numeric value where the second row has a
  // number (so "A1,B00X,1500000000" is data, "u,i,t" over "1,2,3" a header).
  bool header = false;
  for (const std::string& name : first)
    if (role_of(name) != CsvRole::kNone) header = true;
  if (!header) {
    CsvCursor peek = cursor;
    std::vector<std::string> second;
    ReadReport scratch;
    BadLines scratch_bad(path, true, scratch);
    bool second_ok = true;
    if (next_record(peek, scratch_bad, second, second_ok) && second_ok && second.size() == first.size())
      for (std::size_t c = 0; c < first.size(); ++c)
        if (!is_number(first[c]) && is_number(second[c])) header = true;
  }

  int user_col = -1, item_col = -1, time_col = -1, rating_col = -1;
  const std::size_t num_columns = first.size();
  if (header) {
    for (std::size_t c = 0; c < first.size(); ++c) {
      int* slot = nullptr;
      switch (role_of(first[c])) {
        case CsvRole::kUser: slot = &user_col; break;
        case CsvRole::kItem: slot = &item_col; break;
        case CsvRole::kTime: slot = &time_col; break;
        case CsvRole::kRating: slot = &rating_col; break;
        case CsvRole::kNone: break;
      }
      if (slot != nullptr && *slot < 0) *slot = static_cast<int>(c);
    }
    // A header of unknown names: the columns are taken by position, as without one.
    if (user_col < 0 && item_col < 0 && time_col < 0 && rating_col < 0 &&
        !positional_columns(num_columns, user_col, item_col, time_col, rating_col))
      bad.fail(first_line, str_cat("CSV header names no known column and has ", num_columns,
                                   " fields; name them user, item[, timestamp][, rating]"));
    if (user_col < 0) bad.fail(first_line, "CSV header names no user column (user or user_id)");
    if (item_col < 0) bad.fail(first_line, "CSV header names no item column (item or item_id)");
  } else {
    if (!positional_columns(num_columns, user_col, item_col, time_col, rating_col))
      bad.fail(first_line, str_cat("expected CSV columns user,item[,timestamp] or a header naming "
                                   "them, got ", num_columns, " fields"));
  }

  EventLog log(path, /*has_time=*/time_col >= 0);
  auto add_row = [&](const std::vector<std::string>& fields, std::int64_t line) {
    ++ctx.report.lines;
    std::string problem;
    std::int64_t time = 0;
    double rating = 0;
    std::string_view user = fields.size() > static_cast<std::size_t>(user_col) ? trim(fields[user_col]) : "";
    std::string_view item = fields.size() > static_cast<std::size_t>(item_col) ? trim(fields[item_col]) : "";
    if (fields.size() != num_columns)
      problem = str_cat("expected ", num_columns, " comma-separated fields, got ", fields.size());
    else if (user.empty() || item.empty())
      problem = "empty user or item id";
    else if (time_col >= 0 && !parse_timestamp(trim(fields[time_col]), time))
      problem = "expected a numeric timestamp, got " + quote_text(fields[time_col]);
    else if (rating_col >= 0 && !parse_double(trim(fields[rating_col]), rating))
      problem = "expected a numeric rating, got " + quote_text(fields[rating_col]);
    if (!problem.empty()) {
      bad.bad(line, problem);
      return;
    }
    log.add(user, item, time);
  };
  if (!header) add_row(first, first_line);
  std::vector<std::string> fields;
  while (next_record(cursor, bad, fields, ok)) {
    if (!ok) {
      ++ctx.report.lines;
      continue;
    }
    add_row(fields, cursor.record_line());
  }
  return {log.finish(ctx.opts.duplicates, ctx.report), {}, {}};
}

}  // namespace prunerec::recsys::detail
