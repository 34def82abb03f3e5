// From a path to a format and the files to read; see Note [Formats and their detection]
// in dataset.h.
#include <algorithm>
#include <array>
#include <filesystem>
#include <set>
#include <unordered_set>

#include "recsys/data/read_internal.h"

namespace prunerec::recsys::detail {

namespace {

namespace fs = std::filesystem;

constexpr std::array<std::string_view, 3> kSplitFolders = {"train", "valid", "test"};

// Regular files in dir, sorted by name (directory order is unspecified).
std::vector<fs::path> sorted_files(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code file_ec;
    if (it->is_regular_file(file_ec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// CSV names (without .csv) found in root/{train,valid,test}/, sorted.
std::vector<std::string> d3_categories(const fs::path& root) {
  std::set<std::string> names;
  for (std::string_view split : kSplitFolders)
    for (const fs::path& file : sorted_files(root / split))
      if (file.extension() == ".csv") names.insert(file.stem().string());
  return {names.begin(), names.end()};
}

D3Source d3_split_source(const fs::path& root, const std::string& name) {
  D3Source source;
  for (std::string_view split : kSplitFolders) {
    fs::path file = root / split / (name + ".csv");
    if (file_exists(file.string())) source.files.emplace_back(std::string(split), file.string());
  }
  fs::path info = root / "info" / (name + ".txt");
  if (file_exists(info.string())) source.info_path = info.string();
  return source;
}

std::string list_paths(const std::vector<std::string>& paths) {
  std::string out;
  for (const auto& p : paths) out += (out.empty() ? "" : ", ") + p;
  return out;
}

bool is_data_file_name(const std::string& name) {
  for (std::string_view ext : {".inter.json", ".inter", ".csv", ".dat", ".txt"})
    if (ends_with(name, ext)) return true;
  return false;
}

ResolvedSource d3_from_folders(const fs::path& root, const std::string& name) {
  ResolvedSource src;
  src.format = "d3-csv";
  src.d3 = d3_split_source(root, name);
  return src;
}

}  // namespace

ResolvedSource resolve_source(const std::string& path, const std::string& format) {
  const bool may_be_d3 = format == "auto" || format == "d3-csv";
  ResolvedSource src;
  if (directory_exists(path)) {
    if (may_be_d3) {
      std::vector<std::string> categories = d3_categories(path);
      if (categories.size() == 1) return d3_from_folders(path, categories[0]);
      if (categories.size() > 1) {
        std::vector<std::string> candidates;
        for (const auto& c : categories) candidates.push_back((fs::path(path) / (c + ".csv")).string());
        throw ConfigError(str_cat(path, ": the train/valid/test folders hold ", categories.size(),
                                  " data sets; name one: ", list_paths(candidates)));
      }
    }
    std::vector<std::string> candidates;
    for (const fs::path& file : sorted_files(path))
      if (is_data_file_name(file.filename().string())) candidates.push_back(file.string());
    if (candidates.size() != 1) {
      // Not one obvious file: name every candidate, one folder down too (a pre-split set
      // keeps its sequences in train/input.txt beside id maps at the top).
      std::vector<std::string> nested;
      std::error_code ec;
      std::vector<fs::path> subdirs;
      for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
        if (std::error_code sub_ec; it->is_directory(sub_ec)) subdirs.push_back(it->path());
      std::sort(subdirs.begin(), subdirs.end());
      for (const fs::path& dir : subdirs)
        for (const fs::path& file : sorted_files(dir))
          if (is_data_file_name(file.filename().string())) nested.push_back(file.string());
      const std::size_t total = candidates.size() + nested.size();
      candidates.insert(candidates.end(), nested.begin(), nested.end());
      if (total == 0)
        throw ConfigError(path + ": no data file in this directory or its subfolders (looked for *.inter.json, *.inter, "
                                 "*.csv, *.dat, *.txt)");
      throw ConfigError(str_cat(path, ": ", total == 1 ? "no data file in this directory, but one in a subfolder"
                                                       : str_cat(total, " possible data files here and in subfolders"),
                                "; name one with --data: ", list_paths(candidates)));
    }
    src.data_path = candidates[0];
  } else if (file_exists(path)) {
    src.data_path = path;
  } else {
    // A D3 category named by the file name: <root>/<name>[.csv] with <root>/valid/<name>.csv
    // etc., or a unique prefix of such a name.
    fs::path p(path);
    fs::path root = p.parent_path().empty() ? fs::path(".") : p.parent_path();
    std::string name = p.filename().string();
    if (ends_with(name, ".csv")) name.resize(name.size() - 4);
    if (may_be_d3 && !name.empty() && directory_exists(root.string())) {
      std::vector<std::string> categories = d3_categories(root);
      if (std::find(categories.begin(), categories.end(), name) != categories.end())
        return d3_from_folders(root, name);
      std::vector<std::string> matches;
      for (const auto& c : categories)
        if (c.compare(0, name.size(), name) == 0) matches.push_back(c);
      if (matches.size() == 1) return d3_from_folders(root, matches[0]);
      if (matches.size() > 1)
        throw ConfigError(str_cat(path, ": names ", matches.size(),
                                  " data sets of the train/valid/test folders: ", list_paths(matches)));
    }
    throw IoError(path + ": no such file or directory");
  }

  src.text = read_file(src.data_path);
  src.format = format == "auto" ? detect_text_format(src.data_path, src.text) : format;
  if (src.format == "d3-csv") {
    // One CSV: its item table is ../info/<name>.txt (split folder) or info/<name>.txt.
    fs::path file(src.data_path);
    std::string name = file.stem().string();
    src.d3.files = {{"", src.data_path}};
    for (const fs::path& info : {file.parent_path().parent_path() / "info" / (name + ".txt"),
                                 file.parent_path() / "info" / (name + ".txt")})
      if (file_exists(info.string())) {
        src.d3.info_path = info.string();
        break;
      }
    src.data_path.clear();
    src.text.clear();
  }
  return src;
}

std::string detect_text_format(const std::string& path, std::string_view text) {
  LineCursor cursor(text);
  std::string_view line;
  bool found = false;
  while (cursor.next(line))
    if (!is_blank(line)) {
      found = true;
      break;
    }
  if (!found) throw IoError(path + ": empty file (no data lines)");
  std::string_view first = trim(line);
  if (first.front() == '{') return "lcrec-json";
  if (is_recbole_header(line)) return "recbole";
  if (first.find("::") != std::string_view::npos) return "movielens-dat";
  if (ends_with(lower(path), ".csv") || first.find(',') != std::string_view::npos)
    return lower(first).find("history_item_id") != std::string::npos ? "d3-csv" : "csv";

  // Whitespace-separated ids: scan every line.
  bool all_two_fields = true;
  bool all_two_or_more = true;
  bool first_column_repeats = false;
  std::unordered_set<std::string_view> first_column;
  std::vector<std::string_view> fields;
  LineCursor scan(text);
  while (scan.next(line)) {
    split_whitespace(line, fields);
    if (fields.empty()) continue;
    if (fields.size() != 2) all_two_fields = false;
    if (fields.size() < 2) all_two_or_more = false;
    if (!first_column.insert(fields[0]).second) first_column_repeats = true;
  }
  if (all_two_fields && first_column_repeats) return "pairs";
  if (all_two_or_more && !first_column_repeats) return "user-seq";
  return "item-seq";
}

}  // namespace prunerec::recsys::detail
