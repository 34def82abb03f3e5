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
std::string printf_str(const char* format, double v);

std::string fmt_count(std::int64_t v);                      // 1,234,567
std::string fmt_metric(std::optional<double> v);            // 0.0412, "NaN", dash
std::string fmt_signed_metric(std::optional<double> v);     // +0.0012
std::string fmt_percent(std::optional<double> fraction);    // 44.6%
std::string fmt_si(double v, int significant = 3);          // 1.23 G, 456 M, 12.3 k
std::string fmt_ms(std::optional<double> ms);               // 3 significant digits
std::string fmt_duration(std::optional<double> seconds);    // 12.3 s, 4m 05s, 1h 02m

// "<what>: <teacher> on <data>", shortened to fit a chart title.
std::string report_title(const pb::Report& r, const std::string& what);
// The name of stage k, or "teacher" / "stage k" when it has none.
std::string stage_name(const pb::Report& r, int k);

}  // namespace prunerec::prune::report_text
