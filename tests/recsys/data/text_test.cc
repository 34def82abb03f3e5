// The text scanners under the readers: Python list literals, CSV records, numbers.
#include <gtest/gtest.h>

#include "recsys/data/read_internal.h"

namespace prunerec::recsys::detail {
namespace {

using Strings = std::vector<std::string>;

TEST(PythonList, StringsAndIntsAsReprWritesThem) {
  Strings out;
  EXPECT_EQ(parse_python_list("[]", out), "");
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(parse_python_list(" [1, 22 ,333] ", out), "");
  EXPECT_EQ(out, (Strings{"1", "22", "333"}));
  EXPECT_EQ(parse_python_list(R"(['a, b', "it's", 'say \'hi\'', 'back\\slash', '\xe9\u00e9', 'x\n'])", out), "");
  EXPECT_EQ(out, (Strings{"a, b", "it's", "say 'hi'", "back\\slash", "\xC3\xA9\xC3\xA9", "x\n"}));
  EXPECT_EQ(parse_python_list("[1,]", out), "");  // Python accepts a trailing comma
  EXPECT_EQ(out, (Strings{"1"}));
}

TEST(PythonList, Malformed) {
  Strings out;
  EXPECT_NE(parse_python_list("", out), "");
  EXPECT_NE(parse_python_list("1, 2", out), "");
  EXPECT_NE(parse_python_list("[1, 2", out), "");
  EXPECT_NE(parse_python_list("['a]", out), "");
  EXPECT_NE(parse_python_list("[[1]]", out), "");  // nesting is refused, not recursed into
  EXPECT_NE(parse_python_list("[1 2]", out), "");
  EXPECT_NE(parse_python_list("[1] x", out), "");
  EXPECT_NE(parse_python_list("['\\x4']", out), "");
  EXPECT_NE(parse_python_list("[-]", out), "");
}

TEST(CsvCursor, QuotingAndLineNumbers) {
  CsvCursor csv("a,\"b,c\",\"d\"\"e\"\r\n\"multi\nline\",x\n,\nlast");
  Strings fields;
  ASSERT_EQ(csv.next(fields), CsvCursor::Status::kRecord);
  EXPECT_EQ(fields, (Strings{"a", "b,c", "d\"e"}));
  EXPECT_EQ(csv.record_line(), 1);
  ASSERT_EQ(csv.next(fields), CsvCursor::Status::kRecord);
  EXPECT_EQ(fields, (Strings{"multi\nline", "x"}));
  EXPECT_EQ(csv.record_line(), 2);
  ASSERT_EQ(csv.next(fields), CsvCursor::Status::kRecord);
  EXPECT_EQ(fields, (Strings{"", ""}));
  EXPECT_EQ(csv.record_line(), 4);
  ASSERT_EQ(csv.next(fields), CsvCursor::Status::kRecord);
  EXPECT_EQ(fields, (Strings{"last"}));
  EXPECT_EQ(csv.next(fields), CsvCursor::Status::kEnd);

  CsvCursor open("x,\"never closed\n");
  EXPECT_EQ(open.next(fields), CsvCursor::Status::kUnterminatedQuote);
  EXPECT_EQ(open.next(fields), CsvCursor::Status::kEnd);
}

TEST(Numbers, TimestampsAndIds) {
  std::int64_t t = 0;
  EXPECT_TRUE(parse_timestamp("881250949", t));
  EXPECT_EQ(t, 881250949);
  EXPECT_TRUE(parse_timestamp("881250949.9", t));
  EXPECT_EQ(t, 881250949);
  EXPECT_TRUE(parse_timestamp("-1.5", t));
  EXPECT_EQ(t, -2);
  EXPECT_FALSE(parse_timestamp("1e300", t));
  EXPECT_FALSE(parse_timestamp("nan", t));
  EXPECT_FALSE(parse_timestamp("99999999999999999999", t));
  EXPECT_FALSE(parse_timestamp("12abc", t));
  EXPECT_FALSE(parse_timestamp("", t));
  EXPECT_TRUE(is_digits("007"));
  EXPECT_FALSE(is_digits("-7"));
  EXPECT_FALSE(is_digits(""));
}

}  // namespace
}  // namespace prunerec::recsys::detail
