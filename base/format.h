// Numbers, durations and words for people: progress lines, logs, ledgers, charts. The one
// set of such formatters (STYLE.md: one of each); numbers for programs go through
// base/json.h instead.
//
//   format_duration(3723)        -> "1:02:03"     format_duration(245)  -> "4:05"
//   format_count(41234)          -> "41.2k"       format_count(3.1e6)   -> "3.1M"
//   format_grouped(1234567)      -> "1,234,567"   format_fixed(2.5, 2)  -> "2.50"
//   format_significant(0.0332262) -> "0.0332"     format_percent(0.445736) -> "44.6%"
//   plural(1, "head")            -> "1 head"      plural(3, "head")     -> "3 heads"
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace prunerec {

// "1:02:03", "4:05", "0:07"; "?" for a negative or non-finite value.
std::string format_duration(double seconds);
// Three significant digits with k, M, G, T (trailing zeros dropped): "950", "9.5k",
// "41.2k", "200k", "1M", "1.23G"; "n/a" when not finite.
std::string format_count(double value);
// Every digit, grouped by thousands: "1,234,567", "-42".
std::string format_grouped(std::int64_t value);
// printf's %.<decimals>f: "2.50"; "n/a" when not finite.
std::string format_fixed(double value, int decimals);
// `digits` significant digits, no exponent for magnitudes from 1e-4 to 1e6:
// "0.0332", "44.6", "1250", "2.5e-07"; "n/a" when not finite.
std::string format_significant(double value, int digits = 3);
// A fraction as a percentage with `decimals` decimals: 0.445736 -> "44.6%"; "n/a" when not finite.
std::string format_percent(double fraction, int decimals = 1);
// "1 head", "2 heads", "1,024 items"; the plural form defaults to singular + "s".
std::string plural(std::int64_t count, std::string_view singular, std::string_view plural_form = {});

// The number of characters (UTF-8 code points) in s.
std::size_t utf8_length(std::string_view s);
// s shortened to at most max_chars characters, ending in an ellipsis when shortened.
std::string ellipsize(const std::string& s, std::size_t max_chars);

}  // namespace prunerec
