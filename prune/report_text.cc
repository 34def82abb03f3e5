// The report's shared text helpers (see report_text.h).
#include "prune/report_text.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
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

std::string printf_str(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}


std::string fmt_count(std::int64_t v) {
  std::string digits = std::to_string(v < 0 ? -static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v));
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string fmt_metric(std::optional<double> v) {
  if (!v) return kDash;
  if (std::isnan(*v)) return "NaN";
  return printf_str("%.4f", *v);
}

std::string fmt_signed_metric(std::optional<double> v) {
  if (!v || !std::isfinite(*v)) return kDash;
  return printf_str("%+.4f", *v);
}

std::string fmt_percent(std::optional<double> fraction) {
  if (!fraction || !std::isfinite(*fraction)) return kDash;
  return printf_str("%.1f%%", 100.0 * *fraction);
}

// 1.23 G, 456 M, 12.3 k
std::string fmt_si(double v, int significant) {
  if (!std::isfinite(v)) return kDash;
  static constexpr std::pair<double, const char*> kUnits[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
  for (const auto& [scale, unit] : kUnits) {
    if (std::fabs(v) >= scale) {
      const double x = v / scale;
      const int decimals = std::max(0, significant - 1 - static_cast<int>(std::floor(std::log10(std::fabs(x)))));
      return printf_str(("%." + std::to_string(decimals) + "f ").c_str(), x) + unit;
    }
  }
  return printf_str("%.0f", v);
}


std::string fmt_ms(std::optional<double> ms) {
  if (!ms) return kDash;
  if (!std::isfinite(*ms)) return "NaN";
  const double a = std::fabs(*ms);
  if (a >= 100) return printf_str("%.0f", *ms);
  if (a >= 10) return printf_str("%.1f", *ms);
  if (a >= 1) return printf_str("%.2f", *ms);
  return printf_str("%.3g", *ms);
}

std::string fmt_duration(std::optional<double> seconds) {
  if (!seconds || !std::isfinite(*seconds) || *seconds < 0) return kDash;
  const double s = *seconds;
  if (s < 60) return printf_str("%.1f s", s);
  const auto total = static_cast<std::int64_t>(std::llround(s));
  char buf[64];
  if (total < 3600)
    std::snprintf(buf, sizeof buf, "%lldm %02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh %02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>((total % 3600) / 60));
  return buf;
}

std::string report_title(const pb::Report& r, const std::string& what) {
  std::string t = what;
  if (r.has_teacher() && !r.teacher().empty()) t += ": " + r.teacher();
  if (r.has_data() && !r.data().empty()) t += " on " + r.data();
  return ellipsize(t, 90);
}

std::string stage_name(const pb::Report& r, int k) {
  if (k < r.stages_size() && r.stages(k).has_name() && !r.stages(k).name().empty()) return r.stages(k).name();
  return k == 0 ? "teacher" : "stage " + std::to_string(k);
}

}  // namespace prunerec::prune::report_text
