// prunerec report
#include <iostream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "prune/report.h"

namespace prunerec::apps {

int cmd_report(const Args& args) {
  cli::Flags flags("report", "Rebuild report.md and the SVG charts of a prune run from its report.json.",
                   "prunerec report runs/beauty/prune");
  std::vector<std::string> positional;
  Args rest;
  for (const auto& a : args) {
    if (a.rfind("--", 0) == 0 || a == "-h")
      rest.push_back(a);
    else
      positional.push_back(a);
  }
  std::string dir;
  bool print = false;
  flags.add("dir", &dir, "the prune output folder (also accepted as the first argument)");
  flags.add_switch("print", &print, "also print report.md");
  flags.parse(rest);
  if (dir.empty() && positional.size() == 1) dir = positional[0];
  if (dir.empty() || positional.size() > 1) throw cli::UsageError("report: give exactly one folder (see prunerec report --help)");
  const pb::Report r = prune::read_report(dir);
  prune::write_report(dir, r);
  std::cerr << "report: rewrote " << dir << "/report.md, quality_vs_params.svg, kept_units.svg, curves.svg\n";
  if (print) std::cout << prune::report_markdown(r);
  return 0;
}

}  // namespace prunerec::apps
