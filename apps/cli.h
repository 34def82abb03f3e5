// Command-line plumbing shared by the subcommands: flags with help text and an example,
// positional arguments, allowed values and numeric ranges, usage errors (exit code 2) kept
// apart from runtime failures (exit code 1). No command reads argv by hand.
//
//   Flags f("eval", "Evaluate a model", "prunerec eval --model run/model.prc --data ratings.txt");
//   std::string model, ranking = "full"; int negatives = 100; bool json = false;
//   f.add("model", &model, "model file", Flags::kRequired);
//   f.add("ranking", &ranking, "full or sampled");
//   f.choices("ranking", {"full", "sampled"});
//   f.add("negatives", &negatives, "negatives per example");
//   f.range("negatives", 1);                // at least 1; a bound is checked only when given
//   f.add_switch("json", &json, "print one JSON object");
//   f.parse(args);                          // throws UsageError, or HelpShown after printing --help
//
// Note [flag syntax]: "--name value", "--name=value", "-k value" and "-k=value" (a short
// alias) are the same; "--name" alone for a switch. A flag given twice is an error (no
// silent last-wins); so is a value that looks like a flag ("--dir --print"). Arguments
// without "--" fill the positionals in order ("prunerec report DIR"); "--" ends the flags.
// A positional may also be an ordinary flag (positional("dir") after add("dir", ...)), then
// either spelling works, but not both at once.
#pragma once

#include <cstdint>
#include <atomic>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "base/error.h"

namespace prunerec::cli {

// A wrong flag, a missing required flag, a bad value: exit code 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

// --help was printed; the command exits 0.
struct HelpShown {};

class Flags {
 public:
  static constexpr bool kRequired = true;
  static constexpr double kNoLimit = std::numeric_limits<double>::infinity();

  Flags(std::string command, std::string summary, std::string example);

  // The help line shows the target's value as the default unless the help text already
  // says "default" (write "(default: the recipe's)" for sentinels such as 0 = unset).
  void add(const std::string& name, std::string* target, const std::string& help, bool required = false);
  void add(const std::string& name, std::int64_t* target, const std::string& help, bool required = false);
  void add(const std::string& name, int* target, const std::string& help, bool required = false);
  void add(const std::string& name, double* target, const std::string& help, bool required = false);
  void add(const std::string& name, std::uint64_t* target, const std::string& help, bool required = false);
  void add_switch(const std::string& name, bool* target, const std::string& help);
  // A short alias such as -k for --k.
  void alias(const std::string& short_name, const std::string& name);

  // A positional-only argument (not accepted as --name), filled in the order declared.
  void add_positional(const std::string& name, std::string* target, const std::string& help, bool required = true);
  // Lets an existing flag also be given as the next positional argument.
  void positional(const std::string& name);
  // The only values a flag accepts (listed in its help).
  void choices(const std::string& name, std::vector<std::string> allowed);
  // Bounds (inclusive) of a numeric flag, checked when it is given: range("kcore", 0)
  // refuses "--kcore -1" even though -1 is the unset default.
  void range(const std::string& name, double min, double max = kNoLimit);

  // Parses the arguments (Note [flag syntax]). Throws UsageError (naming the flag and the
  // command) or HelpShown.
  void parse(const std::vector<std::string>& args);
  // Whether a flag (or positional) was given on the command line.
  bool given(const std::string& name) const;

  std::string usage() const;

 private:
  struct Flag {
    std::string name, help, kind, default_text, first_value;
    bool required = false, is_switch = false, seen = false, numeric = false;
    bool positional = false, positional_only = false;
    std::vector<std::string> choices;
    double min = -kNoLimit, max = kNoLimit;
    std::function<void(const std::string&)> set;
  };
  Flag& define(const std::string& name, const std::string& help, bool required, std::string kind,
               std::string default_text, std::function<void(const std::string&)> set);
  Flag* find(const std::string& name);
  Flag& must_find(const std::string& name);
  void assign(Flag& f, const std::string& value, const std::string& spelled);
  static std::string display_name(const Flag& f);  // "--name", or "NAME" for a positional-only one

  std::string command_, summary_, example_;
  std::vector<Flag> flags_;
  std::vector<std::string> positionals_;  // flag names, in the order they are filled
  std::vector<std::pair<std::string, std::string>> aliases_;
};

// The stop request of Note [stopping long work] (recsys/progress.h): SIGINT/SIGTERM set
// it; every long loop checks it, the trainer saves its state first. A second signal kills.
void install_stop_handlers();
const std::atomic<bool>* stop_flag();

}  // namespace prunerec::cli
