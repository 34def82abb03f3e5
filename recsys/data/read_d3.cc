// d3-csv: the D3/BIGRec/MiniOneRec CSV, one next-item event a row:
//   user_id,history_item_title,item_title,history_item_id,item_id[,...]
//   A1228,"['Avery CD Labels, ...']","EXPO 86074 ...",[926],38,...
// Lists are Python literals; columns are found by name, extra columns are ignored, the
// title columns are optional.
//
// Note [D3 sequences and ordinal times]
// -------------------------------------
// Rows are in global time order, across the files in the order train, valid, test. A
// user's sequence is the history of their first row followed by the target of every row;
// each later row's history must be the tail of the sequence built so far (else the row is
// a bad line). Times are global ordinals: row r (counted over every file read) has time r,
// and the items known only from a user's first history get times -h, ..., -1, i.e. before
// every row, so a temporal split always puts them in train. When the splits come from
// folders, predefined_cutoffs = (time of the first valid row, time of the first test row),
// an absent split starting where the next one does.
// Titles come from the rows (the first non-empty title of an item wins), then
// info/<name>.txt ("semantic_id<TAB>title<TAB>item_id" or "title<TAB>item_id") fills items
// still without one. Items of the info table that no row mentions are not added.
#include "recsys/data/read_internal.h"

namespace prunerec::recsys::detail {

namespace {

struct D3Columns {
  int user = -1, history_ids = -1, item = -1, history_titles = -1, item_title = -1;
};

D3Columns find_d3_columns(const std::vector<std::string>& header) {
  D3Columns cols;
  for (std::size_t c = 0; c < header.size(); ++c) {
    std::string name = lower(trim(header[c]));
    int* slot = name == "user_id"              ? &cols.user
                : name == "history_item_id"    ? &cols.history_ids
                : name == "item_id"            ? &cols.item
                : name == "history_item_title" ? &cols.history_titles
                : name == "item_title"         ? &cols.item_title
                                               : nullptr;
    if (slot != nullptr && *slot < 0) *slot = static_cast<int>(c);
  }
  return cols;
}

void set_title_if_new(ItemCatalog& items, std::int32_t item, const std::string& title) {
  if (!title.empty() && items.title(item).empty()) items.set_title(item, title);
}

void read_info_table(const std::string& path, SequenceDataset& data, ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  std::string text = read_file(path);
  LineCursor cursor(text);
  std::string_view line;
  std::vector<std::string_view> fields;
  while (cursor.next(line)) {
    if (is_blank(line)) continue;
    split_on(line, "\t", fields);
    if (fields.size() < 2) {
      bad.bad(cursor.line_number(), "expected \"semantic_id<TAB>title<TAB>item_id\" or \"title<TAB>item_id\"");
      continue;
    }
    std::int32_t item = data.items.find(trim(fields.back()));
    if (item >= 0) set_title_if_new(data.items, item, std::string(fields[fields.size() - 2]));
  }
}

}  // namespace

ParsedData read_d3(const D3Source& source, ReaderContext ctx) {
  PR_ASSERT(!source.files.empty());
  DatasetBuilder builder(source.files.front().second);
  SequenceDataset& data = builder.data();
  data.time_is_ordinal = true;
  data.times.clear();
  std::vector<std::vector<std::int64_t>>& times = data.times;

  std::int64_t ordinal = 0;
  std::int64_t valid_start = -1, test_start = -1;
  std::vector<std::string> fields, history_ids, history_titles;
  for (const auto& [split, path] : source.files) {
    if (split == "valid") valid_start = ordinal;
    if (split == "test") test_start = ordinal;
    BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
    BadLines strict(path, false, ctx.report);
    std::string text = read_file(path);
    data.files_read.push_back(path);
    CsvCursor cursor(text);

    // Header.
    CsvCursor::Status status;
    do status = cursor.next(fields);
    while (status == CsvCursor::Status::kRecord && fields.size() == 1 && is_blank(fields[0]));
    if (status == CsvCursor::Status::kEnd) throw IoError(path + ": empty file, expected a D3 CSV header");
    if (status != CsvCursor::Status::kRecord) strict.fail(cursor.record_line(), "malformed CSV header");
    const D3Columns cols = find_d3_columns(fields);
    const std::size_t num_columns = fields.size();
    if (cols.user < 0 || cols.history_ids < 0 || cols.item < 0)
      strict.fail(cursor.record_line(),
                  "expected a D3 header naming user_id, history_item_id and item_id, got " +
                      quote_text(text.substr(0, text.find('\n'))));

    while ((status = cursor.next(fields)) != CsvCursor::Status::kEnd) {
      const std::int64_t line = cursor.record_line();
      if (status == CsvCursor::Status::kRecord && fields.size() == 1 && is_blank(fields[0])) continue;
      ++ctx.report.lines;
      if (status == CsvCursor::Status::kUnterminatedQuote) {
        bad.bad(line, "unterminated quoted field (a '\"' is never closed)");
        continue;
      }
      if (status == CsvCursor::Status::kTextAfterQuote) {
        bad.bad(line, "text after a closing quote (quotes inside a field must be doubled)");
        continue;
      }
      std::string problem;
      if (fields.size() != num_columns)
        problem = str_cat("expected ", num_columns, " fields as in the header, got ", fields.size());
      std::string_view user, item;
      if (problem.empty()) {
        user = trim(fields[cols.user]);
        item = trim(fields[cols.item]);
        if (user.empty()) problem = "empty user_id";
        else if (!is_digits(item)) problem = "expected an integer item_id, got " + quote_text(item);
      }
      if (problem.empty()) {
        std::string list_problem = parse_python_list(fields[cols.history_ids], history_ids);
        if (!list_problem.empty()) problem = "history_item_id: " + list_problem;
        for (const std::string& id : history_ids)
          if (problem.empty() && !is_digits(id)) problem = "history_item_id: expected integers, got " + quote_text(id);
      }
      history_titles.clear();
      if (problem.empty() && cols.history_titles >= 0) {
        std::string list_problem = parse_python_list(fields[cols.history_titles], history_titles);
        if (!list_problem.empty()) problem = "history_item_title: " + list_problem;
        else if (history_titles.size() != history_ids.size())
          problem = str_cat("history_item_title has ", history_titles.size(), " titles for ",
                            history_ids.size(), " ids");
      }
      std::int32_t known_user = -1;
      if (problem.empty()) {
        known_user = builder.find_user(user);
        if (known_user >= 0 &&
            !continues_sequence(data.items, data.sequences[static_cast<std::size_t>(known_user)],
                                history_ids))
          problem = str_cat("history of user ", quote_text(user),
                            " is not the end of that user's earlier items");
      }
      if (!problem.empty()) {
        bad.bad(line, problem);
        continue;
      }
      std::int32_t u = builder.add_user(user);
      if (times.size() < data.sequences.size()) times.resize(data.sequences.size());
      auto& seq = data.sequences[static_cast<std::size_t>(u)];
      auto& seq_times = times[static_cast<std::size_t>(u)];
      if (known_user < 0) {
        auto h = static_cast<std::int64_t>(history_ids.size());
        for (std::size_t k = 0; k < history_ids.size(); ++k) {
          std::int32_t i = builder.add_item(history_ids[k]);
          seq.push_back(i);
          seq_times.push_back(static_cast<std::int64_t>(k) - h);
          if (!history_titles.empty()) set_title_if_new(data.items, i, history_titles[k]);
        }
      }
      std::int32_t target = builder.add_item(item);
      seq.push_back(target);
      seq_times.push_back(ordinal++);
      if (cols.item_title >= 0) set_title_if_new(data.items, target, fields[cols.item_title]);
    }
  }
  if (times.size() < data.sequences.size()) times.resize(data.sequences.size());

  const bool from_folders = !source.files.front().first.empty();
  if (from_folders && (valid_start >= 0 || test_start >= 0)) {
    if (test_start < 0) test_start = ordinal;
    if (valid_start < 0) valid_start = test_start;
    data.predefined_cutoffs = std::make_pair(valid_start, test_start);
  }
  if (!source.info_path.empty()) {
    read_info_table(source.info_path, data, ctx);
    data.files_read.push_back(source.info_path);
  }
  ParsedData parsed;
  parsed.data = builder.finish();
  return parsed;
}

}  // namespace prunerec::recsys::detail
