// Command-line plumbing shared by the subcommands: flags with help text and an example,
// usage errors (exit code 2) kept apart from runtime failures (exit code 1).
//
//   Flags f("eval", "Evaluate a model", "prunerec eval --model run/model.prc --data ratings.txt");
//   std::string model; bool json = false;
//   f.add("model", &model, "model file", Flags::kRequired);
//   f.add_switch("json", &json, "print one JSON object");
//   f.parse(args);                      // throws UsageError, or HelpShown after printing --help
#pragma once

#include <cstdint>
#include <atomic>
#include <functional>
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

  Flags(std::string command, std::string summary, std::string example);

  void add(const std::string& name, std::string* target, const std::string& help, bool required = false);
  void add(const std::string& name, std::int64_t* target, const std::string& help, bool required = false);
  void add(const std::string& name, int* target, const std::string& help, bool required = false);
  void add(const std::string& name, double* target, const std::string& help, bool required = false);
  void add(const std::string& name, std::uint64_t* target, const std::string& help, bool required = false);
  void add_switch(const std::string& name, bool* target, const std::string& help);
  // A short alias such as -k for --k.
  void alias(const std::string& short_name, const std::string& name);

  // Parses "--name value", "--name=value" and switches. Throws UsageError (naming the
  // flag and the command) or HelpShown.
  void parse(const std::vector<std::string>& args);
  // Whether a flag was given on the command line.
  bool given(const std::string& name) const;

  std::string usage() const;

 private:
  struct Flag {
    std::string name, help, kind, default_text;
    bool required = false, is_switch = false, seen = false;
    std::function<void(const std::string&)> set;
  };
  Flag& define(const std::string& name, const std::string& help, bool required, std::string kind,
               std::string default_text, std::function<void(const std::string&)> set);
  Flag* find(const std::string& name);

  std::string command_, summary_, example_;
  std::vector<Flag> flags_;
  std::vector<std::pair<std::string, std::string>> aliases_;
};

// The signal flag: SIGINT/SIGTERM set it; long runs save their state and stop.
void install_stop_handlers();
const std::atomic<bool>* stop_flag();

}  // namespace prunerec::cli
