// prunerec report
#include <iostream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "prune/report.h"

namespace prunerec::apps {

int cmd_report(const Args& args) {
  cli::Flags flags("report", "Rebuild report.md and the SVG charts of a prune run from its report.json.",
                   "prunerec report runs/beauty/prune");
  std::string dir;
  bool print = false;
  flags.add("dir", &dir, "the prune output folder (or give it as the argument DIR)", cli::Flags::kRequired);
  flags.positional("dir");
  flags.add_switch("print", &print, "also print report.md");
  flags.parse(args);
  const pb::Report r = prune::read_report(dir);
  prune::write_report(dir, r);
  std::cerr << "report: rewrote " << dir << "/report.md, quality_vs_params.svg, kept_units.svg, curves.svg\n";
  if (print) std::cout << prune::report_markdown(r);
  return 0;
}

}  // namespace prunerec::apps
