#include "apps/cli.h"

#include <csignal>
#include <cstdlib>
#include <sstream>
#include <type_traits>

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
}  // namespace

void Flags::add(const std::string& name, std::string* t, const std::string& help, bool required) {
  define(name, help, required, "TEXT", t->empty() ? "" : *t, [t](const std::string& v) { *t = v; });
}
void Flags::add(const std::string& name, std::int64_t* t, const std::string& help, bool required) {
  define(name, help, required, "N", show(*t), [this, t, name](const std::string& v) { *t = parse_number<std::int64_t>(command_, name, v); });
}
void Flags::add(const std::string& name, int* t, const std::string& help, bool required) {
  define(name, help, required, "N", show(*t), [this, t, name](const std::string& v) { *t = parse_number<int>(command_, name, v); });
}
void Flags::add(const std::string& name, double* t, const std::string& help, bool required) {
  define(name, help, required, "X", show(*t), [this, t, name](const std::string& v) { *t = parse_number<double>(command_, name, v); });
}
void Flags::add(const std::string& name, std::uint64_t* t, const std::string& help, bool required) {
  define(name, help, required, "N", show(*t), [this, t, name](const std::string& v) { *t = parse_number<std::uint64_t>(command_, name, v); });
}
void Flags::add_switch(const std::string& name, bool* t, const std::string& help) {
  Flag& f = define(name, help, false, "", "", [t](const std::string&) { *t = true; });
  f.is_switch = true;
}
void Flags::alias(const std::string& short_name, const std::string& name) { aliases_.emplace_back(short_name, name); }

bool Flags::given(const std::string& name) const {
  for (const auto& f : flags_)
    if (f.name == name) return f.seen;
  return false;
}

void Flags::parse(const std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage().c_str(), stdout);
      throw HelpShown{};
    }
    for (const auto& [s, l] : aliases_)
      if (a == s) a = "--" + l;
    if (a.rfind("--", 0) != 0)
      throw UsageError(detail::str_cat(command_, ": unexpected argument '", a, "' (see prunerec ", command_, " --help)"));
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    Flag* f = find(name);
    if (!f) throw UsageError(detail::str_cat(command_, ": unknown flag --", name, " (see prunerec ", command_, " --help)"));
    if (f->is_switch) {
      if (has_value) throw UsageError(detail::str_cat(command_, ": --", name, " takes no value"));
    } else if (!has_value) {
      if (i + 1 >= args.size()) throw UsageError(detail::str_cat(command_, ": --", name, " needs a value"));
      value = args[++i];
    }
    f->set(value);
    f->seen = true;
  }
  for (const auto& f : flags_)
    if (f.required && !f.seen) throw UsageError(detail::str_cat(command_, ": --", f.name, " is required (see prunerec ", command_, " --help)"));
}

std::string Flags::usage() const {
  std::ostringstream os;
  os << "usage: prunerec " << command_ << " [flags]\n\n" << summary_ << "\n\nflags:\n";
  for (const auto& f : flags_) {
    std::string head = "  --" + f.name + (f.is_switch ? "" : " " + f.kind);
    for (const auto& [s, l] : aliases_)
      if (l == f.name) head += ", " + s;
    os << head;
    os << std::string(head.size() < 28 ? 28 - head.size() : 1, ' ') << f.help;
    if (f.required) os << " (required)";
    else if (!f.default_text.empty() && f.help.find("default") == std::string::npos) os << " (default " << f.default_text << ")";
    os << "\n";
  }
  os << "  --help" << std::string(20, ' ') << "show this help\n\nexample:\n  " << example_ << "\n";
  return os.str();
}

namespace {
std::atomic<bool> g_stop{false};
// First signal: ask long runs to save and stop. Second: the default action (kill now).
extern "C" void on_stop_signal(int sig) {
  if (g_stop.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}
}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

const std::atomic<bool>* stop_flag() { return &g_stop; }

}  // namespace prunerec::cli
