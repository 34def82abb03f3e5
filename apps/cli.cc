#include "apps/cli.h"

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <sstream>
#include <type_traits>

#include "recsys/progress.h"

namespace prunerec::cli {

Flags::Flags(std::string command, std::string summary, std::string example)
    : command_(std::move(command)), summary_(std::move(summary)), example_(std::move(example)) {}

Flags::Flag& Flags::define(const std::string& name, const std::string& help, bool required, std::string kind,
                           std::string default_text, std::function<void(const std::string&)> set) {
  PR_ASSERT(find(name) == nullptr);
  Flag f;
  f.name = name;
  f.help = help;
  f.required = required;
  f.kind = std::move(kind);
  f.default_text = std::move(default_text);
  f.set = std::move(set);
  flags_.push_back(std::move(f));
  return flags_.back();
}

Flags::Flag* Flags::find(const std::string& name) {
  for (auto& f : flags_)
    if (f.name == name) return &f;
  return nullptr;
}

Flags::Flag& Flags::must_find(const std::string& name) {
  Flag* f = find(name);
  PR_ASSERT(f != nullptr);
  return *f;
}

namespace {
template <class T>
T parse_number(const std::string& command, const std::string& flag, const std::string& text) {
  if (std::is_unsigned_v<T> && text.find('-') != std::string::npos)
    throw UsageError(detail::str_cat(command, ": --", flag, " expects a non-negative number, got '", text, "'"));
  std::istringstream is(text);
  T v{};
  is >> v;
  if (!is || !is.eof())
    throw UsageError(detail::str_cat(command, ": --", flag, " expects a number, got '", text, "'"));
  return v;
}
template <class T>
std::string show(const T& v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}
// A value that is a flag, not a value: "--x", but not "-1" or "-" (stdin).
bool looks_like_flag(const std::string& a) { return a.size() > 2 && a.rfind("--", 0) == 0; }
}  // namespace

void Flags::add(const std::string& name, std::string* t, const std::string& help, bool required) {
  define(name, help, required, "TEXT", t->empty() ? "" : *t, [t](const std::string& v) { *t = v; });
}
void Flags::add(const std::string& name, std::int64_t* t, const std::string& help, bool required) {
  define(name, help, required, "N", show(*t), [this, t, name](const std::string& v) { *t = parse_number<std::int64_t>(command_, name, v); })
      .numeric = true;
}
void Flags::add(const std::string& name, int* t, const std::string& help, bool required) {
  define(name, help, required, "N", show(*t), [this, t, name](const std::string& v) { *t = parse_number<int>(command_, name, v); })
      .numeric = true;
}
void Flags::add(const std::string& name, double* t, const std::string& help, bool required) {
  define(name, help, required, "X", show(*t), [this, t, name](const std::string& v) { *t = parse_number<double>(command_, name, v); })
      .numeric = true;
}
void Flags::add(const std::string& name, std::uint64_t* t, const std::string& help, bool required) {
  define(name, help, required, "N", show(*t), [this, t, name](const std::string& v) { *t = parse_number<std::uint64_t>(command_, name, v); })
      .numeric = true;
}
void Flags::add_switch(const std::string& name, bool* t, const std::string& help) {
  Flag& f = define(name, help, false, "", "", [t](const std::string&) { *t = true; });
  f.is_switch = true;
}
void Flags::alias(const std::string& short_name, const std::string& name) {
  PR_ASSERT(find(name) != nullptr);
  aliases_.emplace_back(short_name, name);
}

void Flags::add_positional(const std::string& name, std::string* t, const std::string& help, bool required) {
  Flag& f = define(name, help, required, "", "", [t](const std::string& v) { *t = v; });
  f.positional = f.positional_only = true;
  positionals_.push_back(name);
}
void Flags::positional(const std::string& name) {
  Flag& f = must_find(name);
  PR_ASSERT(!f.is_switch && !f.positional);
  f.positional = true;
  positionals_.push_back(name);
}
void Flags::choices(const std::string& name, std::vector<std::string> allowed) {
  must_find(name).choices = std::move(allowed);
}
void Flags::range(const std::string& name, double min, double max) {
  Flag& f = must_find(name);
  PR_ASSERT(f.numeric && min <= max);
  f.min = min;
  f.max = max;
}

bool Flags::given(const std::string& name) const {
  for (const auto& f : flags_)
    if (f.name == name) return f.seen;
  return false;
}

void Flags::assign(Flag& f, const std::string& value, const std::string& spelled) {
  if (f.seen)
    throw UsageError(detail::str_cat(command_, ": ", display_name(f), " is given twice ('", f.first_value, "' and '", value,
                                     "'); give it once"));
  f.seen = true;
  f.first_value = value;
  if (!f.choices.empty()) {
    bool ok = false;
    for (const auto& c : f.choices) ok = ok || c == value;
    if (!ok)
      throw UsageError(detail::str_cat(command_, ": ", spelled, " must be one of ", join(f.choices, ", "), "; got '", value, "'"));
  }
  f.set(value);
  if (f.numeric && (f.min > -kNoLimit || f.max < kNoLimit)) {
    const double v = std::strtod(value.c_str(), nullptr);  // already parsed as a number by set()
    if (v < f.min || v > f.max) {
      const std::string bound = f.max == kNoLimit ? detail::str_cat("at least ", show(f.min))
                                : f.min == -kNoLimit ? detail::str_cat("at most ", show(f.max))
                                                     : detail::str_cat("between ", show(f.min), " and ", show(f.max));
      throw UsageError(detail::str_cat(command_, ": ", spelled, " must be ", bound, ", got ", value));
    }
  }
}

void Flags::parse(const std::vector<std::string>& args) {
  std::size_t next_positional = 0;
  bool flags_ended = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (!flags_ended && (a == "--help" || a == "-h")) {
      std::fputs(usage().c_str(), stdout);
      throw HelpShown{};
    }
    if (!flags_ended && a == "--") {
      flags_ended = true;
      continue;
    }
    // "-k" or "-k=2" for a short alias: rewritten to "--k" / "--k=2".
    if (!flags_ended && a.size() > 1 && a[0] == '-' && a[1] != '-') {
      const std::string head = a.substr(0, a.find('='));
      for (const auto& [s, l] : aliases_)
        if (head == s) a = "--" + l + a.substr(head.size());
    }
    if (flags_ended || a.rfind("--", 0) != 0) {
      if (next_positional >= positionals_.size()) {
        const bool dash = !flags_ended && a.size() > 1 && a[0] == '-';
        throw UsageError(detail::str_cat(command_, ": unexpected ", dash ? "flag" : "argument", " '", a, "' (see prunerec ",
                                         command_, " --help)"));
      }
      Flag& f = must_find(positionals_[next_positional++]);
      assign(f, a, display_name(f));
      continue;
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    Flag* f = find(name);
    if (!f || f->positional_only)
      throw UsageError(detail::str_cat(command_, ": unknown flag --", name, " (see prunerec ", command_, " --help)"));
    if (f->is_switch) {
      if (has_value) throw UsageError(detail::str_cat(command_, ": --", name, " takes no value"));
    } else if (!has_value) {
      if (i + 1 >= args.size() || looks_like_flag(args[i + 1]))
        throw UsageError(detail::str_cat(command_, ": --", name, " needs a value",
                                         i + 1 < args.size() ? " (got the flag " + args[i + 1] + "; write --" + name + "=VALUE if the value starts with --)" : ""));
      value = args[++i];
    }
    // A positional flag given by name no longer takes a positional slot of its own.
    assign(*f, value, "--" + name);
  }
  // Positionals given as flags are skipped when counting what is missing.
  for (const auto& f : flags_)
    if (f.required && !f.seen)
      throw UsageError(detail::str_cat(command_, ": ", display_name(f), " is required (see prunerec ",
                                       command_, " --help)"));
}

std::string Flags::display_name(const Flag& f) {
  if (!f.positional_only) return "--" + f.name;
  std::string upper;
  for (char c : f.name) upper += static_cast<char>(c == '-' ? '_' : std::toupper(static_cast<unsigned char>(c)));
  return upper;
}

std::string Flags::usage() const {
  std::ostringstream os;
  os << "usage: prunerec " << command_;
  for (const auto& p : positionals_) {
    const Flag* f = nullptr;
    for (const auto& g : flags_)
      if (g.name == p) f = &g;
    std::string upper;
    for (char c : p) upper += static_cast<char>(c == '-' ? '_' : std::toupper(static_cast<unsigned char>(c)));
    os << " " << (f->required && f->positional_only ? upper : "[" + upper + "]");
  }
  os << " [flags]\n\n" << summary_ << "\n";
  auto line = [&os](std::string head, const Flag& f) {
    os << head << std::string(head.size() < 28 ? 28 - head.size() : 1, ' ') << f.help;
    if (!f.choices.empty() && f.kind == "TEXT" && !f.positional_only) {
      // The allowed values, unless the help already lists them all.
      bool listed = true;
      for (const auto& c : f.choices) listed = listed && f.help.find(c) != std::string::npos;
      if (!listed) os << " (" << join(f.choices, ", ") << ")";
    }
    if (f.required) os << " (required)";
    else if (!f.default_text.empty() && f.help.find("default") == std::string::npos) os << " (default " << f.default_text << ")";
    os << "\n";
  };
  bool any_positional_only = false;
  for (const auto& f : flags_) any_positional_only = any_positional_only || f.positional_only;
  if (any_positional_only) {
    os << "\narguments:\n";
    for (const auto& f : flags_)
      if (f.positional_only) line("  " + display_name(f), f);
  }
  os << "\nflags:\n";
  for (const auto& f : flags_) {
    if (f.positional_only) continue;
    std::string head = "  --" + f.name + (f.is_switch ? "" : " " + f.kind);
    for (const auto& [s, l] : aliases_)
      if (l == f.name) head += ", " + s;
    line(head, f);
  }
  os << "  --help" << std::string(20, ' ') << "show this help\n\nexample:\n  " << example_ << "\n";
  return os.str();
}

namespace {
// First signal: ask long work to stop (Note [stopping long work]) and say so; write(2) is
// async-signal-safe where iostreams are not. Second signal: the default action (kill now).
extern "C" void on_stop_signal(int sig) {
  if (request_stop()) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  static const char kMessage[] = "\nprunerec: stopping (saving what is needed; a second Ctrl-C kills at once)\n";
  [[maybe_unused]] const auto n = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
}
}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

const std::atomic<bool>* stop_flag() { return &process_stop_flag(); }

}  // namespace prunerec::cli
