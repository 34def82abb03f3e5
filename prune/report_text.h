// Shared by the report's renderers (JSON, Markdown, charts): metric-map access, key
// order, the report's number formats and names. Internal to prune/report*.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/report.pb.h"

namespace prunerec::prune::report_text {

using MetricMap = google::protobuf::Map<std::string, double>;

inline constexpr const char* kDash = "\xE2\x80\x94";  // an em dash: the value is missing

// "HR@5" < "HR@10" < "NDCG@5": digit runs compare as numbers, everything else bytewise.
bool natural_less(std::string_view a, std::string_view b);
// The keys of m in natural order.
std::vector<std::string> sorted_keys(const MetricMap& m);
std::optional<double> lookup(const MetricMap& m, const std::string& key);

// The report's cells, through base/format.h; a dash where the value is missing.
std::string fmt_count(std::int64_t v);                    // 1,234,567
std::string fmt_metric(std::optional<double> v);          // 0.0412 (4 decimals), n/a for NaN
std::string fmt_signed_metric(std::optional<double> v);   // +0.0012
std::string fmt_percent(std::optional<double> fraction);  // 44.6%
std::string fmt_ms(std::optional<double> ms);             // 3 significant digits: 1.25, 0.156, 125
std::string fmt_duration(std::optional<double> seconds);  // 4:05, 1:02:03
// A paired difference from the final stage (Note [paired differences] in
// prune/schedule.cc): "+0.0012 [-0.0010, +0.0034]: no difference" when the 95% interval
// contains 0, else "... : <row_word> better" / "... : final better", with the p-value.
std::string fmt_paired(const pb::PairedDifference& d, const std::string& row_word);

// The row's non-embedding parameters as a share of the teacher's (stored, or computed).
std::optional<double> fraction_of_teacher_params(const pb::StageRow& row, const pb::StageRow* teacher);
// A path's file name without its extension ("runs/beauty/teacher.prc" -> "teacher"), for
// titles: no folder of the machine that made the report.
std::string short_name(const std::string& path);
// "<what>: <teacher> on <data>" with short names; the empty parts left out.
std::string report_title(const pb::Report& r, const std::string& what);
// The name of stage k, or "teacher" / "stage k" when it has none.
std::string stage_name(const pb::Report& r, int k);

}  // namespace prunerec::prune::report_text
