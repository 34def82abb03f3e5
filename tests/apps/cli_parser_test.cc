// The flag parser of apps/cli.h (Note [flag syntax]), in process: positionals, choices,
// ranges, short aliases with "=", repeated flags, values that are flags, and help text.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "apps/cli.h"

namespace prunerec::cli {
namespace {

using Args = std::vector<std::string>;

struct Parsed {
  std::string dir, ranking = "full", mode;
  int k = 10, kcore = -1, threads = 0;
  bool print = false;
};

// A command with every kind of flag: --dir also positional, a switch, choices, ranges
// (one with an unset sentinel default of -1), a short alias.
Flags make_flags(Parsed& p) {
  Flags f("demo", "A demo command.", "prunerec demo DIR");
  f.add("dir", &p.dir, "a folder (or the argument DIR)", Flags::kRequired);
  f.positional("dir");
  f.add_switch("print", &p.print, "also print");
  f.add("ranking", &p.ranking, "full or sampled");
  f.choices("ranking", {"full", "sampled"});
  f.add("k", &p.k, "how many");
  f.range("k", 1);
  f.alias("-k", "k");
  f.add("kcore", &p.kcore, "k-core filter (default: off)");
  f.range("kcore", 0);
  f.add("threads", &p.threads, "worker threads (default: all cores)");
  f.range("threads", 1, 512);
  return f;
}

Parsed parse(const Args& args) {
  Parsed p;
  Flags f = make_flags(p);
  f.parse(args);
  return p;
}

std::string usage_error(const Args& args) {
  try {
    parse(args);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(FlagParser, PositionalOrFlagAndSwitchesInAnyOrder) {
  // Issue 18: `report --dir DIR` failed, `--dir X --print` read "--print" as the folder.
  EXPECT_EQ(parse({"--dir", "runs/a"}).dir, "runs/a");
  EXPECT_EQ(parse({"runs/a"}).dir, "runs/a");
  const Parsed p = parse({"--dir", "runs/a", "--print"});
  EXPECT_EQ(p.dir, "runs/a");
  EXPECT_TRUE(p.print);
  const Parsed q = parse({"--print", "runs/b"});
  EXPECT_EQ(q.dir, "runs/b");
  EXPECT_TRUE(q.print);
  EXPECT_EQ(parse({"--", "--odd-name"}).dir, "--odd-name");  // after "--" everything is positional
  EXPECT_EQ(parse({"--dir=--odd-name"}).dir, "--odd-name");
}

TEST(FlagParser, ValueThatIsAFlagIsRefused) {
  EXPECT_NE(usage_error({"--dir", "--print"}).find("--dir needs a value (got the flag --print"), std::string::npos)
      << usage_error({"--dir", "--print"});
}

TEST(FlagParser, ShortAliasWithEqualsAndLongFormAlike) {
  EXPECT_EQ(parse({"x", "-k", "3"}).k, 3);
  EXPECT_EQ(parse({"x", "-k=4"}).k, 4);
  EXPECT_EQ(parse({"x", "--k=5"}).k, 5);
  EXPECT_EQ(parse({"x", "--k", "6"}).k, 6);
}

TEST(FlagParser, RepeatedFlagIsAnError) {
  EXPECT_NE(usage_error({"x", "-k", "3", "--k=4"}).find("--k is given twice ('3' and '4')"), std::string::npos)
      << usage_error({"x", "-k", "3", "--k=4"});
  EXPECT_NE(usage_error({"a", "--dir", "b"}).find("--dir is given twice"), std::string::npos);
  EXPECT_NE(usage_error({"a", "b"}).find("unexpected argument 'b'"), std::string::npos);
  EXPECT_NE(usage_error({"x", "--print", "--print"}).find("--print is given twice"), std::string::npos);
}

TEST(FlagParser, RangesRefuseNegativesEvenWhenTheDefaultIsASentinel) {
  EXPECT_EQ(parse({"x"}).kcore, -1);  // unset: the default is not range-checked
  EXPECT_EQ(parse({"x", "--kcore", "0"}).kcore, 0);
  EXPECT_NE(usage_error({"x", "--kcore", "-1"}).find("--kcore must be at least 0, got -1"), std::string::npos)
      << usage_error({"x", "--kcore", "-1"});
  EXPECT_NE(usage_error({"x", "-k", "0"}).find("--k must be at least 1, got 0"), std::string::npos);
  EXPECT_NE(usage_error({"x", "--threads=600"}).find("--threads must be between 1 and 512, got 600"), std::string::npos);
  EXPECT_NE(usage_error({"x", "--k", "two"}).find("--k expects a number, got 'two'"), std::string::npos);
}

TEST(FlagParser, ChoicesAreCheckedAndListed) {
  EXPECT_EQ(parse({"x", "--ranking", "sampled"}).ranking, "sampled");
  EXPECT_NE(usage_error({"x", "--ranking", "sample"}).find("--ranking must be one of full, sampled; got 'sample'"),
            std::string::npos);
}

TEST(FlagParser, MissingAndUnknown) {
  EXPECT_NE(usage_error({}).find("--dir is required"), std::string::npos);
  EXPECT_NE(usage_error({"x", "--nope"}).find("unknown flag --nope"), std::string::npos);
  EXPECT_NE(usage_error({"x", "-q"}).find("unexpected flag '-q'"), std::string::npos);
}

TEST(FlagParser, HelpShowsDefaultsOnlyWhereTheyMeanSomething) {
  Parsed p;
  const std::string usage = make_flags(p).usage();
  EXPECT_NE(usage.find("usage: prunerec demo [DIR] [flags]"), std::string::npos) << usage;
  EXPECT_NE(usage.find("(default 10)"), std::string::npos) << usage;       // a real default is shown
  EXPECT_NE(usage.find("(default: off)"), std::string::npos) << usage;     // a sentinel is explained ...
  EXPECT_EQ(usage.find("(default -1)"), std::string::npos) << usage;       // ... not printed
  EXPECT_EQ(usage.find("(default 0)"), std::string::npos) << usage;
  EXPECT_NE(usage.find("-k"), std::string::npos) << usage;
}

}  // namespace
}  // namespace prunerec::cli
