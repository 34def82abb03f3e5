// Interaction data for sequential recommendation: one chronological item sequence per user.
//
//   recsys::ReadReport report;
//   recsys::SequenceDataset data = recsys::read_dataset("data/Beauty.txt", {}, &report);
//   // data.users[u] is user u's raw id; data.sequences[u] its items, oldest first, as dense
//   // indices into data.items (data.items.raw_ids[i] is the id exactly as in the file).
//   recsys::kcore_filter(data, 5);                      // recsys/data/filter.h
//   recsys::DataSplit split = recsys::leave_one_out(data);  // recsys/data/split.h
//
// Users and items get dense indices in order of first appearance in the file (for the
// split layout of D3, in the order train, valid, test). Every reader is deterministic and
// never trusts a number in its input to size an allocation.
//
// Note [Formats and their detection]
// ----------------------------------
// Names accepted by ReadOptions::format ("auto" detects; the rules are tried in order):
//   d3-csv         a directory holding train/, valid/ and/or test/ folders of CSVs, or
//                  <root>/<name>[.csv] naming one category of such a layout (a unique
//                  prefix of the CSV name is enough); or a .csv whose header names
//                  history_item_id. D3/BIGRec rows: user_id, history_item_title, item_title,
//                  history_item_id, item_id, ... (Python-literal lists, standard quoting).
//   (directory)    any other directory: the single file in it named *.inter.json, *.inter,
//                  *.csv, *.dat or *.txt is read by the rules below; none or several is a
//                  ConfigError that lists the candidates there and one subfolder down.
//   (not text)     a compressed file or one with a NUL byte in its first 64 KiB is an
//                  IoError whatever the format (every format is text).
//   lcrec-json     the first non-blank character is '{': {"user": [item, ...], ...}.
//   recbole        the first line is a RecBole typed header: every tab-separated field is
//                  name:type with type token, token_seq, float or float_seq.
//   movielens-dat  the first line contains "::" (user::item::rating::timestamp).
//   csv            the name ends in .csv or the first line contains a comma
//                  (d3-csv instead when that first line names history_item_id).
//   pairs / user-seq / item-seq   whitespace-separated integer ids; the whole file is
//                  scanned: pairs when every line has exactly 2 fields and some first-column
//                  value occurs on more than one line; else user-seq when every line has at
//                  least 2 fields and the first column differs on every line; else item-seq
//                  (user = line number, starting at 1).
// Empty files, files with no usable user, unknown format names and missing files are
// errors (IoError, or ConfigError for options).
//
// Note [Chronological order and duplicates]
// -----------------------------------------
// Sequence formats (user-seq, item-seq, lcrec-json, recbole item_id_list, d3-csv) are in
// time order as written and are kept as they are. Event logs (pairs, movielens-dat,
// recbole and csv with one event a row) are grouped by user; with timestamps each user's
// events are sorted by (timestamp, line order), without them line order is time order.
// DuplicatePolicy::kDropExact (the default) drops a row that repeats one of the same
// user's events exactly: same item and same timestamp, or, for logs without timestamps,
// same item as the user's previous event. Repeat consumption at another time is kept.
// ReadReport::duplicates_dropped counts the dropped rows.
//
// Note [Item ids for titles]
// --------------------------
// Each item has the id written in the interaction file and its raw id (raw_ids); they are
// the same except for lcrec-json with a *.item2id file beside it, where the raw id becomes
// the ASIN. item_map_path keys are the ids as written in the interaction file (so the
// LC-Rec -> LLMRank map, keyed by LC-Rec index, works on Games.inter.json); when an id is
// not a key, the raw id is tried. Without a map, titles keys are looked up the same way
// (written id, then raw id). titles_path takes precedence over titles found automatically
// (a RecBole .item beside the .inter, D3 titles and info/*.txt); an empty title is no
// title. A titles_path that names none of the items is a ConfigError (wrong file or
// missing map), and so is an item_map_path with no titles to map to.
//
// Note [Titles that fit]
// ----------------------
// Ids that match are not titles that fit: two data sets re-indexed 1..N (SASRec's ML-1M
// against MovieLens ids, S3Rec's Beauty against TransRec's) match almost every id and
// attach the wrong titles. Titles that belong to the items show it in the sequences:
// items consumed one after the other share title words (a brand, a series) far more often
// than random items do. attach_titles measures it (title_fit): over up to 50,000
// consecutive pairs of titled items, the share that have a title word in common, against
// 4x as many pairs drawn at random from the same interactions; words of fewer than 3
// characters, numbers, and words in more than 2% of the titles ("the", "nail") do not
// count. On the real sets without their item maps (S3-Rec Beauty with TransRec titles,
// SASRec ML-1M with ml-1m.item) this code measures z = 1.3 for both; with the maps a
// prototype of the same measure gave z = 100 and 23. Below z = 4, with at least 1,000
// pairs and 30 pairs sharing a word, ReadReport::warnings gets a warning naming the
// numbers and the item map; too few pairs or shared words (synthetic titles) say nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace prunerec::recsys {

namespace detail {
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
}  // namespace detail

// Dense item index <-> raw id, plus optional titles.
struct ItemCatalog {
  std::vector<std::string> raw_ids;  // dense item index -> raw id exactly as in the file
  std::vector<std::string> titles;   // empty, or one per item ("" when unknown)

  std::int32_t size() const { return static_cast<std::int32_t>(raw_ids.size()); }
  std::int32_t find(std::string_view raw_id) const;  // dense index, or -1 when unknown
  std::int32_t add(std::string_view raw_id);         // index of raw_id, appended when new
  bool has_titles() const { return !titles.empty(); }
  const std::string& title(std::int32_t item) const;  // "" when there are no titles
  void set_title(std::int32_t item, std::string title);  // makes titles one per item
  std::int32_t num_titled() const;                        // items with a non-empty title
  // Rebuilds the lookup after raw_ids was edited directly; IoError on a repeated raw id.
  void reindex();

 private:
  std::unordered_map<std::string, std::int32_t, detail::StringHash, std::equal_to<>> index_;
};

struct SequenceDataset {
  std::string source;  // the path read, as given (read_dataset accepts it again)
  std::string format;  // format name actually used
  std::vector<std::string> files_read;  // every file opened: data, id maps, titles
  ItemCatalog items;
  std::vector<std::string> users;                     // dense user index -> raw user id
  std::vector<std::vector<std::int32_t>> sequences;  // per user, chronological item indices
  std::vector<std::vector<std::int64_t>> times;  // empty, or parallel to sequences
  bool time_is_ordinal = false;  // times are a global event order, not seconds
  // Set when the source is pre-split by time (D3 folders): valid events have times in
  // [first, second), test events times >= second.
  std::optional<std::pair<std::int64_t, std::int64_t>> predefined_cutoffs;

  bool has_time() const { return !times.empty(); }
  std::int32_t num_users() const { return static_cast<std::int32_t>(users.size()); }
  std::int64_t num_interactions() const;
  // Sizes agree, item indices are in range, times are parallel and non-decreasing per
  // user, no user is empty. Throws InternalError naming the first violation.
  void check_invariants() const;
};

enum class DuplicatePolicy {
  kDropExact,  // drop exact repeats of an event (see Note [Chronological order and duplicates])
  kKeepAll,
};

struct ReadOptions {
  std::string format = "auto";  // auto, pairs, user-seq, item-seq, movielens-dat, recbole,
                                // lcrec-json, csv, d3-csv
  bool skip_bad_lines = false;  // count and skip malformed lines instead of stopping
  std::string titles_path;      // optional TSV (raw id<TAB>title) or RecBole .item file
  std::string item_map_path;    // optional TSV: item id as written in the data -> titles id
  DuplicatePolicy duplicates = DuplicatePolicy::kDropExact;  // event logs only
};

struct ReadReport {
  std::int64_t lines = 0;      // data lines (rows, JSON entries) read, headers excluded
  std::int64_t bad_lines = 0;  // malformed lines skipped (skip_bad_lines)
  std::int64_t duplicates_dropped = 0;
  std::vector<std::string> first_errors;  // the first 10 messages of skipped lines
  std::vector<std::string> warnings;      // doubts that do not stop the read (Note [Titles that fit])
};

// Reads a data set; see Note [Formats and their detection]. Throws IoError for a missing,
// unreadable or malformed file ("path:17: expected ...") and ConfigError for bad options.
SequenceDataset read_dataset(const std::string& path, const ReadOptions& opts = {},
                             ReadReport* report = nullptr);

// The format "auto" would pick for path (a file or directory).
std::string detect_format(const std::string& path);

// Note [Titles that fit]: whether consecutive items' titles share words more often than
// random items' do.
struct TitleFit {
  std::int64_t pairs = 0;              // consecutive pairs of titled, different items
  double consecutive_share = 0;        // of them sharing a title word
  double random_share = 0;             // of random pairs sharing a title word
  double z = 0;                        // (consecutive - random) / standard error
  bool conclusive = false;             // enough pairs and shared words to judge
  bool fits() const { return !conclusive || z >= 4; }
};
TitleFit title_fit(const SequenceDataset& data, std::uint64_t seed = 1);

// Every name ReadOptions::format accepts besides "auto".
const std::vector<std::string>& format_names();

}  // namespace prunerec::recsys
