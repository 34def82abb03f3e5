// The report's shared text helpers (see report_text.h).
#include "prune/report_text.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "base/format.h"

namespace prunerec::prune::report_text {

// "HR@5" < "HR@10" < "NDCG@5": digit runs compare as numbers, everything else bytewise.
bool natural_less(std::string_view a, std::string_view b) {
  std::size_t i = 0, j = 0;
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t i_end = i, j_end = j;
      while (i_end < a.size() && digit(a[i_end])) ++i_end;
      while (j_end < b.size() && digit(b[j_end])) ++j_end;
      std::string_view da = a.substr(i, i_end - i), db = b.substr(j, j_end - j);
      while (da.size() > 1 && da[0] == '0') da.remove_prefix(1);
      while (db.size() > 1 && db[0] == '0') db.remove_prefix(1);
      if (da.size() != db.size()) return da.size() < db.size();
      if (da != db) return da < db;
      i = i_end;
      j = j_end;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::vector<std::string> sorted_keys(const MetricMap& m) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : m) keys.push_back(k);
  std::sort(keys.begin(), keys.end(), [](const std::string& a, const std::string& b) { return natural_less(a, b); });
  return keys;
}

std::optional<double> lookup(const MetricMap& m, const std::string& key) {
  const auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  return it->second;
}



std::string fmt_count(std::int64_t v) { return format_grouped(v); }

std::string fmt_metric(std::optional<double> v) {
  if (!v) return kDash;
  return format_fixed(*v, 4);  // "n/a" for NaN
}

std::string fmt_signed_metric(std::optional<double> v) {
  if (!v || !std::isfinite(*v)) return kDash;
  std::string s = *v >= 0 ? "+" : "";  // not "+" + string&&: GCC 12 -Wrestrict false positive (bug 105329)
  return s.append(format_fixed(*v, 4));
}

std::string fmt_paired(const pb::PairedDifference& d, const std::string& row_word) {
  std::string out = fmt_signed_metric(d.diff()) + " [" + fmt_signed_metric(d.lo()) + ", " + fmt_signed_metric(d.hi()) + "]: ";
  // The rule of recsys::describe_difference (Note [paired bootstrap]).
  if (d.lo() <= 0 && d.hi() >= 0) return out + "no difference";
  return out + (d.diff() > 0 ? row_word : std::string("final")) + " better (p " + format_significant(d.p_value(), 2) + ")";
}

std::string fmt_percent(std::optional<double> fraction) {
  if (!fraction || !std::isfinite(*fraction)) return kDash;
  return format_percent(*fraction);
}

std::string fmt_ms(std::optional<double> ms) {
  if (!ms) return kDash;
  return format_significant(*ms, 3);
}

std::string fmt_duration(std::optional<double> seconds) {
  if (!seconds || !std::isfinite(*seconds) || *seconds < 0) return kDash;
  return format_duration(*seconds);
}

std::optional<double> fraction_of_teacher_params(const pb::StageRow& row, const pb::StageRow* teacher) {
  if (row.has_non_embedding_fraction()) return row.non_embedding_fraction();
  if (teacher && row.has_non_embedding_params() && teacher->non_embedding_params() > 0)
    return static_cast<double>(row.non_embedding_params()) / static_cast<double>(teacher->non_embedding_params());
  return std::nullopt;
}

std::string short_name(const std::string& path) {
  const std::filesystem::path p(path);
  const std::string stem = p.stem().string();
  return stem.empty() ? path : stem;
}

std::string report_title(const pb::Report& r, const std::string& what) {
  std::string t = what;
  if (!r.teacher().empty()) t += ": " + short_name(r.teacher());
  if (!r.data().empty()) t += " on " + short_name(r.data());
  return t;
}

std::string stage_name(const pb::Report& r, int k) {
  if (k < r.stages_size() && r.stages(k).has_name() && !r.stages(k).name().empty()) return r.stages(k).name();
  return k == 0 ? "teacher" : "stage " + std::to_string(k);
}

}  // namespace prunerec::prune::report_text
