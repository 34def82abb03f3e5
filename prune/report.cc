// Writing and reading a report folder (see report.h). The renderers live in
// report_json.cc, report_markdown.cc and report_charts.cc.
#include "prune/report.h"

#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "base/atomic_file.h"
#include "base/comm.h"
#include "base/error.h"

namespace prunerec::prune {

namespace {

void write_report_files(const std::string& dir, const pb::Report& r) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(dir + ": cannot create the report directory: " + ec.message());
  // Render everything first, so a rendering error leaves the old files alone.
  const std::vector<std::pair<std::string, std::string>> files = {{"report.json", report_json(r)},
                                                                  {"report.md", report_markdown(r)},
                                                                  {"quality_vs_params.svg", quality_chart_svg(r)},
                                                                  {"kept_units.svg", kept_units_svg(r)},
                                                                  {"curves.svg", curves_svg(r)}};
  for (const auto& [name, content] : files) write_file_atomic((std::filesystem::path(dir) / name).string(), content);
  if (r.budget_curve_size() > 0)
    write_file_atomic((std::filesystem::path(dir) / "budget_curve.svg").string(), budget_chart_svg(r));
}

}  // namespace

void write_report(const std::string& dir, const pb::Report& r) {
  // Rank 0 writes; every rank waits until it has (Note [files decided on rank 0] in
  // prune/schedule.cc). A failure on rank 0 ends the job (Note [rank 0 speaks]).
  Communicator& comm = world();
  if (comm.is_root()) write_report_files(dir, r);
  comm.barrier();
}

pb::Report read_report(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "report.json").string();
  return parse_report_json(read_file(path, std::size_t{256} << 20), path);
}

}  // namespace prunerec::prune
