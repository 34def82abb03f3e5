// compute_stats, format_stats and stats_json (see stats.h).
#include "recsys/data/stats.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "base/error.h"
#include "base/format.h"
#include "base/json.h"

namespace prunerec::recsys {

using ::prunerec::detail::str_cat;

namespace {

// Linear interpolation between sorted values (numpy's default percentile). Integer
// arithmetic for the position keeps p90 of 10 values at exactly 0.1 between two of them.
double percentile(const std::vector<std::int64_t>& sorted, std::int64_t q) {
  if (sorted.empty()) return 0;
  const auto scaled = q * static_cast<std::int64_t>(sorted.size() - 1);  // 100 * position
  const auto lo = static_cast<std::size_t>(scaled / 100);
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = static_cast<double>(scaled % 100) / 100.0;
  return static_cast<double>(sorted[lo]) + frac * static_cast<double>(sorted[hi] - sorted[lo]);
}

}  // namespace

DatasetStats compute_stats(const SequenceDataset& data) {
  DatasetStats s;
  s.source = data.source;
  s.format = data.format;
  s.users = data.num_users();
  s.items = data.items.size();
  s.interactions = data.num_interactions();
  s.titled_items = data.items.num_titled();
  s.predefined_split = data.predefined_cutoffs.has_value();

  std::vector<std::int64_t> lengths;
  lengths.reserve(data.sequences.size());
  std::vector<std::int64_t> item_count(static_cast<std::size_t>(s.items), 0);
  std::unordered_set<std::int32_t> seen;
  for (const auto& seq : data.sequences) {
    lengths.push_back(static_cast<std::int64_t>(seq.size()));
    if (seq.size() < 3) ++s.users_below_3;
    seen.clear();
    for (std::int32_t item : seq) {
      if (item >= 0 && item < data.items.size()) ++item_count[static_cast<std::size_t>(item)];
      if (!seen.insert(item).second) ++s.repeat_interactions;
    }
  }
  std::sort(lengths.begin(), lengths.end());
  if (!lengths.empty()) {
    s.min_length = lengths.front();
    s.max_length = lengths.back();
    s.mean_length = static_cast<double>(s.interactions) / static_cast<double>(s.users);
  }
  s.p10 = percentile(lengths, 10);
  s.p25 = percentile(lengths, 25);
  s.p50 = percentile(lengths, 50);
  s.p75 = percentile(lengths, 75);
  s.p90 = percentile(lengths, 90);
  s.p99 = percentile(lengths, 99);
  if (s.users > 0 && s.items > 0)
    s.density = static_cast<double>(s.interactions) /
                (static_cast<double>(s.users) * static_cast<double>(s.items));
  if (!item_count.empty()) {
    auto [lo, hi] = std::minmax_element(item_count.begin(), item_count.end());
    s.min_item_count = *lo;
    s.max_item_count = *hi;
    s.mean_item_count = static_cast<double>(s.interactions) / static_cast<double>(s.items);
  }
  s.has_time = data.has_time();
  s.time_is_ordinal = data.time_is_ordinal;
  if (s.has_time) {
    s.min_time = std::numeric_limits<std::int64_t>::max();
    s.max_time = std::numeric_limits<std::int64_t>::min();
    for (const auto& times : data.times)
      for (std::int64_t t : times) {
        s.min_time = std::min(s.min_time, t);
        s.max_time = std::max(s.max_time, t);
      }
    if (s.interactions == 0) s.min_time = s.max_time = 0;
  }
  return s;
}

void add_split_stats(DatasetStats& s, const DataSplit& split) {
  s.split_kind = split.kind;
  s.train_sequences = static_cast<std::int64_t>(split.train.size());
  s.valid_examples = static_cast<std::int64_t>(split.valid.size());
  s.test_examples = static_cast<std::int64_t>(split.test.size());
}

std::string format_stats(const DatasetStats& s) {
  auto row = [](const std::string& name, const std::string& value) {
    std::string label = name;
    label.resize(std::max<std::size_t>(label.size(), 18), ' ');
    return label + value + "\n";
  };
  std::string out;
  out += row("data", s.source + " (" + s.format + ")");
  out += row("users", format_grouped(s.users));
  out += row("items", format_grouped(s.items));
  out += row("interactions", format_grouped(s.interactions));
  out += row("density", format_fixed(s.density * 100, 4) + "%");
  out += row("sequence length", str_cat("min ", s.min_length, "  mean ", format_fixed(s.mean_length, 2),
                                        "  max ", s.max_length));
  out += row("length pct", str_cat("p10 ", format_significant(s.p10, 4), "  p25 ", format_significant(s.p25, 4),
                                   "  p50 ", format_significant(s.p50, 4), "  p75 ", format_significant(s.p75, 4),
                                   "  p90 ", format_significant(s.p90, 4), "  p99 ", format_significant(s.p99, 4)));
  out += row("per item", str_cat("min ", s.min_item_count, "  mean ", format_fixed(s.mean_item_count, 2),
                                 "  max ", s.max_item_count));
  out += row("users < 3 items", format_grouped(s.users_below_3));
  out += row("repeats", format_grouped(s.repeat_interactions));
  out += row("titles", format_grouped(s.titled_items) + " of " + format_grouped(s.items) + " items");
  if (!s.has_time)
    out += row("time", "none (order only)");
  else
    out += row("time", str_cat(s.min_time, " .. ", s.max_time,
                               s.time_is_ordinal ? " (event ordinals)" : " (seconds)"));
  const std::string origin = s.predefined_split ? "cut times predefined by the source" : "none predefined";
  if (s.split_kind.empty())
    out += row("split", origin);
  else
    out += row("split", str_cat(s.split_kind, " (", origin, "): ", format_grouped(s.train_sequences), " train sequences, ",
                                format_grouped(s.valid_examples), " valid, ", format_grouped(s.test_examples), " test examples"));
  return out;
}

std::string stats_json(const DatasetStats& s) {
  Json j;
  j.begin_object().key("source").value(s.source).key("format").value(s.format);
  j.key("users").value(s.users).key("items").value(s.items).key("interactions").value(s.interactions);
  j.key("density").value(s.density);
  j.key("min_length").value(s.min_length).key("max_length").value(s.max_length).key("mean_length").value(s.mean_length);
  j.key("p10_length").value(s.p10).key("p25_length").value(s.p25).key("p50_length").value(s.p50);
  j.key("p75_length").value(s.p75).key("p90_length").value(s.p90).key("p99_length").value(s.p99);
  j.key("min_item_count").value(s.min_item_count).key("max_item_count").value(s.max_item_count);
  j.key("mean_item_count").value(s.mean_item_count);
  j.key("users_below_3").value(s.users_below_3).key("repeat_interactions").value(s.repeat_interactions);
  j.key("titled_items").value(s.titled_items);
  j.key("has_time").value(s.has_time).key("time_is_ordinal").value(s.time_is_ordinal);
  if (s.has_time) j.key("min_time").value(s.min_time).key("max_time").value(s.max_time);
  j.key("predefined_split").value(s.predefined_split);
  if (!s.split_kind.empty()) {
    j.key("split_kind").value(s.split_kind).key("train_sequences").value(s.train_sequences);
    j.key("valid_examples").value(s.valid_examples).key("test_examples").value(s.test_examples);
  }
  j.end_object();
  return j.str();
}

}  // namespace prunerec::recsys
