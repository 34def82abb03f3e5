// The ledger for a terminal (see report.h): a few columns that fit 100 characters; the full
// ledger is in report.md.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "base/format.h"
#include "prune/report.h"
#include "prune/report_text.h"

namespace prunerec::prune {
namespace {

using namespace report_text;

constexpr std::size_t kNameWidth = 28;

struct Column {
  std::string header;
  bool left = false;
};

const std::vector<Column> kColumns = {{"", true},          {"params", false},      {"% teacher", false},
                                      {"NDCG@10", false},  {"HR@10", false},       {"% t. NDCG", false},
                                      {"ms/user", false},  {"wall m:ss", false}};

std::vector<std::string> row_cells(const pb::StageRow& row, const pb::StageRow* teacher) {
  const std::optional<double> ndcg = lookup(row.metrics(), "NDCG@10");
  std::optional<double> teacher_ndcg;
  if (teacher) teacher_ndcg = lookup(teacher->metrics(), "NDCG@10");
  std::optional<double> ms;
  if (row.latency().has_one_user_ms()) ms = row.latency().one_user_ms();
  return {ellipsize(row.has_name() ? row.name() : std::string(kDash), kNameWidth),
          row.has_non_embedding_params() ? format_count(static_cast<double>(row.non_embedding_params())) : kDash,
          fmt_percent(fraction_of_teacher_params(row, teacher)),
          fmt_metric(ndcg),
          fmt_metric(lookup(row.metrics(), "HR@10")),
          fmt_percent(ndcg && teacher_ndcg && *teacher_ndcg != 0 ? std::optional<double>(*ndcg / *teacher_ndcg)
                                                                 : std::nullopt),
          fmt_ms(ms),
          fmt_duration(row.has_wall_seconds() ? std::optional<double>(row.wall_seconds()) : std::nullopt)};
}

// Columns padded to their widest cell (by characters), two spaces apart.
std::string table(std::vector<std::vector<std::string>> rows) {
  std::vector<std::size_t> width(kColumns.size(), 0);
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], utf8_length(row[i]));
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      const std::string pad(width[i] - utf8_length(row[i]), ' ');
      line += (i ? "  " : "") + (kColumns[i].left ? row[i] + pad : pad + row[i]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string ledger_text(const pb::Report& r) {
  std::string out = report_title(r, "Prune report") + "\n";
  std::vector<std::string> facts;
  if (r.has_seed()) facts.push_back("seed " + std::to_string(r.seed()));
  if (r.has_threads()) facts.push_back(plural(r.threads(), "thread"));
  if (r.has_calibration_sequences()) facts.push_back(plural(r.calibration_sequences(), "calibration sequence"));
  if (r.has_total_seconds()) facts.push_back("total " + format_duration(r.total_seconds()) + " (m:ss)");
  for (std::size_t i = 0; i < facts.size(); ++i) out += (i ? ", " : "") + facts[i];
  if (!facts.empty()) out += "\n";
  if (r.stages_size() == 0) return out + "No stages recorded yet.\n";
  const pb::StageRow* teacher = &r.stages(0);
  out += "\nparams: non-embedding parameters; % t. NDCG: test NDCG@10 as a share of the teacher's;\n";
  if (r.mode() == "title") {
    const std::string measured =
        teacher->latency().has_measured() ? teacher->latency().measured() : std::string("title generation");
    out += "ms/user: " + measured + " for one user. Test metrics, " + measured + ". All columns: report.md.\n\n";
  } else {
    out += "ms/user: top-10 latency for one user. Test metrics, full ranking. All columns: report.md.\n\n";
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header;
  for (const Column& c : kColumns) header.push_back(c.header);
  header[0] = "stage";
  rows.push_back(header);
  for (const auto& row : r.stages()) rows.push_back(row_cells(row, teacher));
  if (r.controls_size() > 0) {
    rows.push_back(std::vector<std::string>(kColumns.size(), ""));
    header[0] = "control";
    rows.push_back(header);
    for (const auto& row : r.controls()) rows.push_back(row_cells(row, teacher));
  }
  out += table(std::move(rows));
  return out;
}

}  // namespace prunerec::prune
