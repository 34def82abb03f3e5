// ItemCatalog, SequenceDataset and read_dataset: resolve the source, run the reader for
// its format, then attach titles and final raw ids (Note [Item ids for titles]).
#include "recsys/data/dataset.h"

#include <cstdio>

#include <algorithm>

#include "recsys/data/read_internal.h"
#include "base/error.h"

namespace prunerec::recsys {

using ::prunerec::detail::str_cat;

std::int32_t ItemCatalog::find(std::string_view raw_id) const {
  PR_ASSERT(index_.size() == raw_ids.size());  // raw_ids edited without reindex()
  auto it = index_.find(raw_id);
  return it == index_.end() ? -1 : it->second;
}

std::int32_t ItemCatalog::add(std::string_view raw_id) {
  PR_ASSERT(index_.size() == raw_ids.size());
  auto it = index_.find(raw_id);
  if (it != index_.end()) return it->second;
  auto index = static_cast<std::int32_t>(raw_ids.size());
  raw_ids.emplace_back(raw_id);
  if (!titles.empty()) titles.emplace_back();
  index_.emplace(std::string(raw_id), index);
  return index;
}

const std::string& ItemCatalog::title(std::int32_t item) const {
  static const std::string kNone;
  if (titles.empty()) return kNone;
  PR_ASSERT(item >= 0 && static_cast<std::size_t>(item) < titles.size());
  return titles[static_cast<std::size_t>(item)];
}

void ItemCatalog::set_title(std::int32_t item, std::string title) {
  PR_ASSERT(item >= 0 && item < size());
  if (titles.empty()) titles.assign(raw_ids.size(), std::string());
  titles[static_cast<std::size_t>(item)] = std::move(title);
}

std::int32_t ItemCatalog::num_titled() const {
  return static_cast<std::int32_t>(
      std::count_if(titles.begin(), titles.end(), [](const std::string& t) { return !t.empty(); }));
}

void ItemCatalog::reindex() {
  index_.clear();
  index_.reserve(raw_ids.size());
  for (std::size_t i = 0; i < raw_ids.size(); ++i) {
    auto [it, inserted] = index_.emplace(raw_ids[i], static_cast<std::int32_t>(i));
    if (!inserted) {
      const std::int32_t first = it->second;
      index_.clear();  // find() asserts on the size mismatch until a good reindex()
      throw IoError(str_cat("item catalog: raw id ", detail::quote_text(raw_ids[i]),
                            " is used by items ", first, " and ", i));
    }
  }
}

std::int64_t SequenceDataset::num_interactions() const {
  std::int64_t total = 0;
  for (const auto& seq : sequences) total += static_cast<std::int64_t>(seq.size());
  return total;
}

void SequenceDataset::check_invariants() const {
  auto fail = [&](const std::string& what) {
    throw InternalError(str_cat("dataset ", source, ": ", what));
  };
  if (sequences.size() != users.size())
    fail(str_cat(users.size(), " users but ", sequences.size(), " sequences"));
  if (!times.empty() && times.size() != sequences.size())
    fail(str_cat(times.size(), " time rows for ", sequences.size(), " sequences"));
  if (!items.titles.empty() && items.titles.size() != items.raw_ids.size())
    fail(str_cat(items.titles.size(), " titles for ", items.raw_ids.size(), " items"));
  for (std::size_t u = 0; u < sequences.size(); ++u) {
    if (sequences[u].empty()) fail(str_cat("user ", u, " has no interactions"));
    for (std::int32_t item : sequences[u])
      if (item < 0 || item >= items.size())
        fail(str_cat("user ", u, " has item ", item, " outside [0, ", items.size(), ")"));
    if (times.empty()) continue;
    if (times[u].size() != sequences[u].size())
      fail(str_cat("user ", u, " has ", sequences[u].size(), " items but ", times[u].size(),
                   " times"));
    if (!std::is_sorted(times[u].begin(), times[u].end()))
      fail(str_cat("user ", u, " has times out of order"));
  }
}

const std::vector<std::string>& format_names() {
  static const std::vector<std::string> kNames = {"pairs",  "user-seq",   "item-seq",
                                                  "movielens-dat", "recbole", "lcrec-json",
                                                  "csv",    "d3-csv"};
  return kNames;
}

std::string detect_format(const std::string& path) {
  return detail::resolve_source(path, "auto").format;
}

namespace {

// Looks an item up by its id as written, then by its raw id.
template <class Map>
const std::string* lookup_item(const Map& map, const std::string& written,
                               const std::string& raw) {
  auto it = map.find(written);
  if (it == map.end() && raw != written) it = map.find(raw);
  return it == map.end() ? nullptr : &it->second;
}

void attach_titles(detail::ParsedData& parsed, const std::string& titles_path,
                   const ReadOptions& opts, detail::ReaderContext ctx) {
  SequenceDataset& data = parsed.data;
  std::unordered_map<std::string, std::string> item_map;
  if (!opts.item_map_path.empty()) {
    item_map = detail::read_item_map(opts.item_map_path, ctx);
    data.files_read.push_back(opts.item_map_path);
  }
  auto table = detail::read_title_table(titles_path, ctx);
  data.files_read.push_back(titles_path);
  std::int32_t matched = 0;
  for (std::int32_t i = 0; i < data.items.size(); ++i) {
    const std::string& written = data.items.raw_ids[static_cast<std::size_t>(i)];
    const std::string& raw =
        parsed.final_item_ids.empty() ? written : parsed.final_item_ids[static_cast<std::size_t>(i)];
    const std::string* title = nullptr;
    if (opts.item_map_path.empty()) {
      title = lookup_item(table, written, raw);
    } else if (const std::string* mapped = lookup_item(item_map, written, raw)) {
      auto it = table.find(*mapped);
      if (it != table.end()) title = &it->second;
    }
    if (title == nullptr || title->empty()) continue;  // an empty title is no title
    data.items.set_title(i, *title);
    ++matched;
  }
  if (matched == 0 && titles_path == opts.titles_path)
    throw ConfigError(str_cat(
        "titles file ", titles_path, " names none of the ", data.items.size(), " items of ",
        data.source,
        opts.item_map_path.empty() ? " (its ids differ from the data's: give item_map_path)"
                                   : str_cat(" through the item map ", opts.item_map_path)));
  // Note [Titles that fit].
  const TitleFit fit = title_fit(data);
  if (!fit.fits()) {
    char numbers[160];
    std::snprintf(numbers, sizeof numbers, "%.1f%% of %lld consecutive item pairs share a title word, %.1f%% of random pairs (z = %.1f)",
                  100 * fit.consecutive_share, static_cast<long long>(fit.pairs), 100 * fit.random_share, fit.z);
    ctx.report.warnings.push_back(str_cat(
        "titles from ", titles_path, " look unrelated to the items of ", data.source, ": ", numbers,
        "; titles that belong to their items give z > 10. ",
        opts.item_map_path.empty() ? "The data's ids are probably not the titles' ids: give the item map (--item-map) that links them"
                                   : str_cat("Check the item map ", opts.item_map_path),
        " (Note [Titles that fit], docs/data-formats.md)"));
  }
}

detail::ParsedData read_resolved(const detail::ResolvedSource& src, detail::ReaderContext ctx) {
  const std::string& path = src.data_path;
  const std::string& f = src.format;
  if (f == "pairs") return detail::read_pairs(path, src.text, ctx);
  if (f == "user-seq") return detail::read_user_seq(path, src.text, ctx);
  if (f == "item-seq") return detail::read_item_seq(path, src.text, ctx);
  if (f == "movielens-dat") return detail::read_movielens_dat(path, src.text, ctx);
  if (f == "recbole") return detail::read_recbole(path, src.text, ctx);
  if (f == "lcrec-json") return detail::read_lcrec_json(path, src.text, ctx);
  if (f == "csv") return detail::read_csv(path, src.text, ctx);
  if (f == "d3-csv") return detail::read_d3(src.d3, ctx);
  throw InternalError("read_dataset: no reader for format " + f);
}

}  // namespace

SequenceDataset read_dataset(const std::string& path, const ReadOptions& opts,
                             ReadReport* report_out) {
  const auto& names = format_names();
  if (opts.format != "auto" && std::find(names.begin(), names.end(), opts.format) == names.end()) {
    std::string known = "auto";
    for (const auto& name : names) known += ", " + name;
    throw ConfigError(str_cat("unknown data format ", detail::quote_text(opts.format),
                              " (known: ", known, ")"));
  }
  ReadReport report;
  detail::ReaderContext ctx{opts, report};
  detail::ResolvedSource src = detail::resolve_source(path, opts.format);
  detail::ParsedData parsed = read_resolved(src, ctx);
  SequenceDataset& data = parsed.data;
  data.source = path;
  data.format = src.format;
  if (!src.data_path.empty())
    data.files_read.insert(data.files_read.begin(), src.data_path);

  std::string titles_path = !opts.titles_path.empty() ? opts.titles_path : parsed.auto_titles_path;
  if (!titles_path.empty()) {
    attach_titles(parsed, titles_path, opts, ctx);
  } else if (!opts.item_map_path.empty()) {
    throw ConfigError(str_cat("item_map_path ", opts.item_map_path, " needs titles to map to: ",
                              "give titles_path (no titles file was found beside ", path, ")"));
  }
  if (!parsed.final_item_ids.empty()) {
    data.items.raw_ids = std::move(parsed.final_item_ids);
    data.items.reindex();
  }
  data.check_invariants();
  if (report_out != nullptr) *report_out = std::move(report);
  return std::move(data);
}

}  // namespace prunerec::recsys
