// compute_stats, format_stats and stats_json (see stats.h).
#include "recsys/data/stats.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "base/error.h"

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

// Shortest text that reads back to the same double; deterministic.
std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "null";
}

// 1234567 -> "1,234,567"
std::string grouped(std::int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
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
  out += row("users", grouped(s.users));
  out += row("items", grouped(s.items));
  out += row("interactions", grouped(s.interactions));
  out += row("density", fixed(s.density * 100, 4) + "%");
  out += row("sequence length", str_cat("min ", s.min_length, "  mean ", fixed(s.mean_length, 2),
                                        "  max ", s.max_length));
  out += row("length pct", str_cat("p10 ", number(s.p10), "  p25 ", number(s.p25), "  p50 ",
                                   number(s.p50), "  p75 ", number(s.p75), "  p90 ",
                                   number(s.p90), "  p99 ", number(s.p99)));
  out += row("per item", str_cat("min ", s.min_item_count, "  mean ", fixed(s.mean_item_count, 2),
                                 "  max ", s.max_item_count));
  out += row("users < 3 items", grouped(s.users_below_3));
  out += row("repeats", grouped(s.repeat_interactions));
  out += row("titles", grouped(s.titled_items) + " of " + grouped(s.items) + " items");
  if (!s.has_time)
    out += row("time", "none (order only)");
  else
    out += row("time", str_cat(s.min_time, " .. ", s.max_time,
                               s.time_is_ordinal ? " (event ordinals)" : " (seconds)"));
  const std::string origin = s.predefined_split ? "cut times predefined by the source" : "none predefined";
  if (s.split_kind.empty())
    out += row("split", origin);
  else
    out += row("split", str_cat(s.split_kind, " (", origin, "): ", grouped(s.train_sequences), " train sequences, ",
                                grouped(s.valid_examples), " valid, ", grouped(s.test_examples), " test examples"));
  return out;
}

std::string stats_json(const DatasetStats& s) {
  std::string out = "{";
  auto field = [&](const char* name, const std::string& value) {
    if (out.size() > 1) out += ", ";
    out += json_string(name) + ": " + value;
  };
  auto integer = [](std::int64_t v) { return std::to_string(v); };
  auto boolean = [](bool v) { return std::string(v ? "true" : "false"); };
  field("source", json_string(s.source));
  field("format", json_string(s.format));
  field("users", integer(s.users));
  field("items", integer(s.items));
  field("interactions", integer(s.interactions));
  field("density", number(s.density));
  field("min_length", integer(s.min_length));
  field("max_length", integer(s.max_length));
  field("mean_length", number(s.mean_length));
  field("p10_length", number(s.p10));
  field("p25_length", number(s.p25));
  field("p50_length", number(s.p50));
  field("p75_length", number(s.p75));
  field("p90_length", number(s.p90));
  field("p99_length", number(s.p99));
  field("min_item_count", integer(s.min_item_count));
  field("max_item_count", integer(s.max_item_count));
  field("mean_item_count", number(s.mean_item_count));
  field("users_below_3", integer(s.users_below_3));
  field("repeat_interactions", integer(s.repeat_interactions));
  field("titled_items", integer(s.titled_items));
  field("has_time", boolean(s.has_time));
  field("time_is_ordinal", boolean(s.time_is_ordinal));
  if (s.has_time) {
    field("min_time", integer(s.min_time));
    field("max_time", integer(s.max_time));
  }
  field("predefined_split", boolean(s.predefined_split));
  if (!s.split_kind.empty()) {
    field("split_kind", json_string(s.split_kind));
    field("train_sequences", integer(s.train_sequences));
    field("valid_examples", integer(s.valid_examples));
    field("test_examples", integer(s.test_examples));
  }
  return out + "}";
}

}  // namespace prunerec::recsys
