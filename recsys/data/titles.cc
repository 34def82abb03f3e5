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
#include <cctype>
#include <cmath>
#include <unordered_set>

#include "recsys/data/read_internal.h"
#include "tensor/rng.h"

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

namespace prunerec::recsys {

TitleFit title_fit(const SequenceDataset& data, std::uint64_t seed) {
  constexpr std::int64_t kMaxPairs = 50000, kRandomPerPair = 4, kMinPairs = 1000, kMinShared = 30;
  constexpr double kMaxWordShare = 0.02;
  // Words per titled item: lower-case runs of letters and digits, 3+ characters, not numbers.
  const std::int32_t n_items = data.items.size();
  std::vector<std::vector<std::string>> words(static_cast<std::size_t>(n_items));
  std::unordered_map<std::string, std::int64_t> titles_with;
  std::int64_t titled = 0;
  for (std::int32_t i = 0; i < n_items; ++i) {
    const std::string& title = data.items.title(i);
    if (title.empty()) continue;
    ++titled;
    std::unordered_set<std::string> seen;
    std::string word;
    auto flush = [&] {
      if (word.size() >= 3 && !std::all_of(word.begin(), word.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) &&
          seen.insert(word).second)
        ++titles_with[word];
      word.clear();
    };
    for (char c : title) {
      if (std::isalnum(static_cast<unsigned char>(c))) word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      else flush();
    }
    flush();
    words[static_cast<std::size_t>(i)].assign(seen.begin(), seen.end());
  }
  // Common words say nothing about which item is which.
  for (auto& w : words) {
    std::erase_if(w, [&](const std::string& x) { return static_cast<double>(titles_with[x]) > kMaxWordShare * static_cast<double>(titled); });
    std::sort(w.begin(), w.end());
  }
  auto share_a_word = [&](std::int32_t a, std::int32_t b) {
    const auto& x = words[static_cast<std::size_t>(a)];
    const auto& y = words[static_cast<std::size_t>(b)];
    for (std::size_t i = 0, j = 0; i < x.size() && j < y.size();) {
      if (x[i] == y[j]) return true;
      x[i] < y[j] ? ++i : ++j;
    }
    return false;
  };
  auto has_title = [&](std::int32_t i) { return !data.items.title(i).empty(); };
  std::int64_t all_pairs = 0;
  std::vector<std::int32_t> interactions;  // titled items as consumed (popularity-weighted)
  for (const auto& seq : data.sequences)
    for (std::size_t p = 0; p < seq.size(); ++p) {
      if (has_title(seq[p])) interactions.push_back(seq[p]);
      if (p > 0 && seq[p] != seq[p - 1] && has_title(seq[p]) && has_title(seq[p - 1])) ++all_pairs;
    }
  TitleFit fit;
  if (all_pairs == 0) return fit;
  // Every k-th pair, so the sample spans the whole file.
  const std::int64_t stride = (all_pairs + kMaxPairs - 1) / kMaxPairs;
  std::int64_t index = 0, shared = 0;
  for (const auto& seq : data.sequences)
    for (std::size_t p = 1; p < seq.size(); ++p) {
      if (seq[p] == seq[p - 1] || !has_title(seq[p]) || !has_title(seq[p - 1])) continue;
      if (index++ % stride != 0) continue;
      ++fit.pairs;
      shared += share_a_word(seq[p - 1], seq[p]);
    }
  Rng rng(seed, /*stream=*/0x717e);
  const std::int64_t random_pairs = kRandomPerPair * fit.pairs;
  std::int64_t random_shared = 0, drawn = 0;
  const auto n = static_cast<std::uint64_t>(interactions.size());
  while (drawn < random_pairs) {
    const std::int32_t a = interactions[rng.below(n)], b = interactions[rng.below(n)];
    if (a == b) continue;
    ++drawn;
    random_shared += share_a_word(a, b);
  }
  fit.consecutive_share = static_cast<double>(shared) / static_cast<double>(fit.pairs);
  fit.random_share = static_cast<double>(random_shared) / static_cast<double>(random_pairs);
  const double s = fit.consecutive_share, r = fit.random_share;
  const double se = std::sqrt(s * (1 - s) / static_cast<double>(fit.pairs) + r * (1 - r) / static_cast<double>(random_pairs));
  fit.z = se > 0 ? (s - r) / se : 0.0;
  fit.conclusive = fit.pairs >= kMinPairs && shared + random_shared >= kMinShared && se > 0;
  return fit;
}

}  // namespace prunerec::recsys
