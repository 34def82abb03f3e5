// People-facing formats (base/format.h) and the JSON writer's pretty style (base/json.h).
#include "base/format.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include "base/json.h"

namespace prunerec {
namespace {

TEST(Format, CountsHaveThreeSignificantDigitsAndAUnit) {
  EXPECT_EQ(format_count(950), "950");
  EXPECT_EQ(format_count(9500), "9.5k");
  EXPECT_EQ(format_count(41234), "41.2k");
  EXPECT_EQ(format_count(200000), "200k");
  EXPECT_EQ(format_count(999960), "1M");  // not "1000k"
  EXPECT_EQ(format_count(3.1e6), "3.1M");
  EXPECT_EQ(format_count(1.234e9), "1.23G");
  EXPECT_EQ(format_count(-41234), "-41.2k");
  EXPECT_EQ(format_count(std::nan("")), "n/a");
}

TEST(Format, GroupedFixedSignificantPercent) {
  EXPECT_EQ(format_grouped(1234567), "1,234,567");
  EXPECT_EQ(format_grouped(-1000), "-1,000");
  EXPECT_EQ(format_grouped(999), "999");
  EXPECT_EQ(format_grouped(std::numeric_limits<std::int64_t>::min()), "-9,223,372,036,854,775,808");
  EXPECT_EQ(format_fixed(2.5, 2), "2.50");
  EXPECT_EQ(format_significant(0.0332262), "0.0332");
  EXPECT_EQ(format_significant(44.5736), "44.6");
  EXPECT_EQ(format_significant(0.09996), "0.1");
  EXPECT_EQ(format_significant(1250), "1250");
  EXPECT_EQ(format_significant(2.5e-7), "2.5e-07");
  EXPECT_EQ(format_significant(0), "0");
  EXPECT_EQ(format_significant(std::nan("")), "n/a");
  EXPECT_EQ(format_percent(0.445736), "44.6%");
  EXPECT_EQ(format_percent(std::numeric_limits<double>::infinity()), "n/a");
}

TEST(Format, DurationsAndPlurals) {
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(245), "4:05");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(plural(1, "head"), "1 head");
  EXPECT_EQ(plural(0, "head"), "0 heads");
  EXPECT_EQ(plural(2, "thread"), "2 threads");
  EXPECT_EQ(plural(3, "MLP channel"), "3 MLP channels");
  EXPECT_EQ(plural(1, "repetition"), "1 repetition");
  EXPECT_EQ(plural(2, "index", "indices"), "2 indices");
}

TEST(Format, EllipsizeCountsCharactersNotBytes) {
  EXPECT_EQ(ellipsize("short", 10), "short");
  EXPECT_EQ(ellipsize("abcdefghij", 5), "abcd\xE2\x80\xA6");
  EXPECT_EQ(utf8_length("a\xC3\xA9z"), 3u);
}

TEST(Json, CompactStyleIsOneLine) {
  Json j;
  j.begin_object().key("a").value(1).key("b").begin_array().value(1.5).null().end_array().end_object();
  EXPECT_EQ(j.str(), "{\"a\": 1, \"b\": [1.5, null]}");
}

TEST(Json, PrettyStyleIndentsMembersAndFillsScalarArraysTo100Columns) {
  Json j(Json::kPretty);
  j.begin_object().key("name").value("x").key("empty").begin_object().end_object().key("ids").begin_array();
  for (int i = 0; i < 200; ++i) j.value(i);
  j.end_array().key("rows").begin_array();
  j.begin_object().key("k").value(std::uint64_t{18446744073709551615u}).end_object();
  j.end_array().end_object();
  const std::string s = j.str();
  EXPECT_EQ(s.rfind("{\n  \"name\": \"x\",\n  \"empty\": {},\n  \"ids\": [0, 1, 2,", 0), 0u) << s;
  EXPECT_NE(s.find("\"rows\": [\n    {\n      \"k\": 18446744073709551615\n    }\n  ]\n}"), std::string::npos) << s;
  std::istringstream in(s);
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) EXPECT_LE(line.size(), 100u) << line;
  EXPECT_GT(lines, 8);  // the 200 ids wrapped
}

TEST(Json, QuoteEscapesControlCharacters) {
  EXPECT_EQ(Json::quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

}  // namespace
}  // namespace prunerec
