// Titles and item-id maps (Note [Item ids for titles]).
//   titles file  RecBole .item (typed header; id column item_id, title column movie_title,
//                title, or any *title*), or a TSV "raw id<TAB>title" whose optional header
//                is recognised by an id name (item_id, id, item, asin, ...) in the first
//                column or a *title* column.
//   item map     "id in the data<TAB>id in the titles file" (tabs, or spaces when a line
//                has no tab); a header line is harmless (its "id" matches no item), extra
//                columns are ignored, an id mapped twice is a bad line.
#include <algorithm>
#include <array>

#include "recsys/data/read_internal.h"

namespace prunerec::recsys::detail {

namespace {

bool is_id_name(std::string_view name) {
  static const std::array<std::string_view, 7> kNames = {"item_id", "id",     "item",  "raw_id",
                                                         "asin",    "itemid", "item id"};
  std::string n = lower(trim(name));
  return std::find(kNames.begin(), kNames.end(), n) != kNames.end();
}

bool names_title(std::string_view name) { return lower(name).find("title") != std::string::npos; }

}  // namespace

std::unordered_map<std::string, std::string> read_title_table(const std::string& path,
                                                              ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  std::string text = read_file(path);
  LineCursor cursor(text);
  std::string_view line;
  std::vector<std::string_view> fields;
  bool have_first = false;
  while (cursor.next(line))
    if (!is_blank(line)) {
      have_first = true;
      break;
    }
  if (!have_first) throw IoError(path + ": empty titles file");

  // Decide the columns from the first line.
  std::size_t id_col = 0, title_col = 1;
  bool first_is_header = false;
  split_on(line, "\t", fields);
  if (is_recbole_header(line)) {
    first_is_header = true;
    int title = -1, exact_title = -1, id = -1;
    for (std::size_t c = 0; c < fields.size(); ++c) {
      std::string_view name = trim(fields[c]);
      name = name.substr(0, name.rfind(':'));
      if (name == "item_id" && id < 0) id = static_cast<int>(c);
      if ((name == "movie_title" || name == "title") && exact_title < 0) exact_title = static_cast<int>(c);
      if (names_title(name) && title < 0) title = static_cast<int>(c);
    }
    if (exact_title >= 0) title = exact_title;
    if (title < 0) bad.fail(cursor.line_number(), "RecBole item header names no title column");
    id_col = id < 0 ? 0 : static_cast<std::size_t>(id);
    title_col = static_cast<std::size_t>(title);
  } else if (fields.size() >= 2 &&
             (is_id_name(fields[0]) ||
              std::any_of(fields.begin(), fields.end(), [](std::string_view f) { return names_title(f); }))) {
    first_is_header = true;
    for (std::size_t c = 0; c < fields.size(); ++c)
      if (names_title(fields[c])) {
        title_col = c;
        break;
      }
    if (title_col == 0) id_col = 1;
  }
  const std::size_t needed = std::max(id_col, title_col) + 1;

  std::unordered_map<std::string, std::string> titles;
  auto add_line = [&](std::string_view data_line) {
    split_on(data_line, "\t", fields);
    if (fields.size() < needed) {
      bad.bad(cursor.line_number(), str_cat("expected ", needed,
                                            " tab-separated fields (id and title), got ",
                                            fields.size()));
      return;
    }
    titles.emplace(std::string(trim(fields[id_col])), std::string(trim(fields[title_col])));
  };
  if (!first_is_header) add_line(line);
  while (cursor.next(line))
    if (!is_blank(line)) add_line(line);
  return titles;
}

std::unordered_map<std::string, std::string> read_item_map(const std::string& path,
                                                           ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  std::string text = read_file(path);
  std::unordered_map<std::string, std::string> map;
  std::unordered_map<std::string, std::int64_t> line_of;
  LineCursor cursor(text);
  std::string_view line;
  std::vector<std::string_view> fields;
  while (cursor.next(line)) {
    if (is_blank(line)) continue;
    if (line.find('\t') != std::string_view::npos) {
      split_on(line, "\t", fields);
      for (auto& field : fields) field = trim(field);
    } else {
      split_whitespace(line, fields);
    }
    if (fields.size() < 2 || fields[0].empty() || fields[1].empty()) {
      bad.bad(cursor.line_number(), "expected \"id in the data<TAB>id in the titles file\"");
      continue;
    }
    auto [it, inserted] = line_of.emplace(std::string(fields[0]), cursor.line_number());
    if (!inserted) {
      bad.bad(cursor.line_number(), str_cat("id ", quote_text(fields[0]), " is already mapped on line ", it->second));
      continue;
    }
    map.emplace(std::string(fields[0]), std::string(fields[1]));
  }
  if (map.empty()) throw IoError(path + ": empty item map");
  return map;
}

}  // namespace prunerec::recsys::detail
