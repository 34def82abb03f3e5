// Number and duration formatting for people: progress lines, logs, ledgers.
//
//   format_duration(3723)   -> "1:02:03"      format_duration(245) -> "4:05"
//   format_count(41234)     -> "41.2k"        format_count(3.1e6)  -> "3.1M"
#pragma once

#include <string>

namespace prunerec {

// "1:02:03", "4:05", "0:07"; "?" for a negative or non-finite value.
std::string format_duration(double seconds);
// "41.2k", "3.1M", "950".
std::string format_count(double value);

}  // namespace prunerec
