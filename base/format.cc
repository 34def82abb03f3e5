#include "base/format.h"

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <utility>

namespace prunerec {
namespace {

const char* const kNotAvailable = "n/a";

// Drops trailing zeros of a decimal fraction: "1.50" -> "1.5", "2.00" -> "2".
std::string trim_zeros(std::string s) {
  if (s.find('.') == std::string::npos || s.find('e') != std::string::npos) return s;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

std::string format_count(double v) {
  if (!std::isfinite(v)) return kNotAvailable;
  static constexpr std::pair<double, const char*> kUnits[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
  for (const auto& [scale, unit] : kUnits) {
    // 999,950 rounds to "1000k" at three digits: the next unit up takes it.
    if (std::fabs(v) >= scale * 0.99995) {
      const double x = v / scale;
      const int decimals = std::max(0, 2 - static_cast<int>(std::floor(std::log10(std::fabs(x)))));
      return trim_zeros(format_fixed(x, decimals)) + unit;
    }
  }
  return format_fixed(v, 0);
}

std::string format_grouped(std::int64_t v) {
  const std::string digits = std::to_string(v < 0 ? -static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v));
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string format_fixed(double v, int decimals) {
  if (!std::isfinite(v)) return kNotAvailable;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string format_significant(double v, int digits) {
  if (!std::isfinite(v)) return kNotAvailable;
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a < 1e-4 || a >= 1e6) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    return buf;
  }
  const int magnitude = static_cast<int>(std::floor(std::log10(a)));
  std::string s = format_fixed(v, std::max(0, digits - 1 - magnitude));
  // Rounding may add a digit (0.09996 -> "0.1000"): trimmed below either way.
  return trim_zeros(s);
}

std::string format_percent(double fraction, int decimals) {
  if (!std::isfinite(fraction)) return kNotAvailable;
  return format_fixed(100.0 * fraction, decimals) + "%";
}

std::string plural(std::int64_t count, std::string_view singular, std::string_view plural_form) {
  std::string out = format_grouped(count) + " ";
  if (count == 1) return out.append(singular);
  if (plural_form.empty()) return out.append(singular).append("s");
  return out.append(plural_form);
}

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

std::string ellipsize(const std::string& s, std::size_t max_chars) {
  if (utf8_length(s) <= max_chars) return s;
  std::string out;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && ++chars > max_chars - 1) break;
    out += s[i];
  }
  return out + "\xE2\x80\xA6";
}

}  // namespace prunerec
