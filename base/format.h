// Number and duration formatting for people: progress lines, logs, ledgers.
//
//   format_duration(3723)   -> "1:02:03"      format_duration(245) -> "4:05"
//   format_count(41234)     -> "41.2k"        format_count(3.1e6)  -> "3.1M"
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace prunerec {

// "1:02:03", "4:05", "0:07"; "?" for a negative or non-finite value.
std::string format_duration(double seconds);
// "41.2k", "3.1M", "950".
std::string format_count(double value);

// The number of characters (UTF-8 code points) in s.
std::size_t utf8_length(std::string_view s);
// s shortened to at most max_chars characters, ending in an ellipsis when shortened.
std::string ellipsize(const std::string& s, std::size_t max_chars);

}  // namespace prunerec
