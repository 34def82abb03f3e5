// The prune run's report, rendered for people and for programs.
//
//   pb::Report r = ...;                       // teacher row, one row per stage, controls
//   write_report("run/report", r);            // report.json, report.md and three SVG charts
//   pb::Report back = read_report("run/report");
//
// Files written by write_report (each atomically, Note [atomic replace]):
//   report.json            every field of the Report (Note [report JSON])
//   report.md              ledger and controls tables, per-stage details, links to the charts
//   quality_vs_params.svg  test NDCG@10 and HR@10 against non-embedding parameters (log x)
//   kept_units.svg         which teacher heads and MLP channels survive which stage
//   curves.svg             recovery loss per epoch and validation NDCG@10 per validation
//
// Everything here renders whatever the Report holds: a stage still running, a report with
// no controls or no stages at all gives dashes and "no data" panels, never an error. The
// only errors are files that cannot be written or read (IoError) and plans that do not fit
// the models they claim to prune (ConfigError from compose_kept_units; the kept-units chart
// then shows the message instead of the heat map).
//
// Note [report JSON]: report_json() walks the message by reflection through the project's
// JSON writer (base/json.h), so fields added to report.proto appear without changes here.
// Field names are the .proto names; int64 and uint64 are JSON numbers with every digit
// (Protobuf's own printer writes them as strings); doubles are printed in their shortest
// form that reads back to the same bits, NaN and infinities as Protobuf's JSON mapping
// spells them ("NaN", "Infinity", "-Infinity"); maps are objects with keys in natural
// order (HR@5 before HR@10); unset optional fields and empty repeated fields are left out.
// Reading is Protobuf's own parser (JsonStringToMessage), which accepts all of that, so
// every value, NaN included, reads back to the same bits at its place. Protobuf's printer
// is not used because it writes map keys in hash order and every array element on its own
// line.
//
// Where the code is: report_json.cc (report.json), report_markdown.cc (report.md),
// report_console.cc (the terminal ledger), report_charts.cc (the charts, drawn with the
// kit in chart.h), report_text.h (formats and helpers they share); the composition of the
// stage plans is in kept_units.h (Note [stage indices]). A new chart is a function here,
// its body in report_charts.cc, and a line in write_report and report_markdown.
#pragma once

#include <string>
#include <vector>

#include "prune/kept_units.h"
#include "proto/report.pb.h"

namespace prunerec::prune {

// Pretty JSON of the report (Note [report JSON]).
std::string report_json(const pb::Report& r);

// Reads report_json() output (or any protobuf JSON for a Report). IoError
// "<source>: <parser message>" when the text is not a Report.
pb::Report parse_report_json(const std::string& text, const std::string& source);

// The report as Markdown: run facts, ledger table, controls table, links to the charts,
// per-stage details, schedule and command.
std::string report_markdown(const pb::Report& r);
// The head of report.md: the facts, the full ledger (16 columns) and the controls.
std::string ledger_markdown(const pb::Report& r);
// The ledger for a terminal (what `prunerec run` and `prune` print): stage, parameters,
// share of the teacher, NDCG@10, HR@10, latency and wall time, within 100 columns.
std::string ledger_text(const pb::Report& r);

// Self-contained SVG charts (about 800x500, no external fonts or scripts).
std::string quality_chart_svg(const pb::Report& r);
std::string kept_units_svg(const pb::Report& r);
std::string curves_svg(const pb::Report& r);
// The student-budget curve (Note [student budget] in prune/schedule.h): test NDCG@10
// against epochs per recovery (log x) for pruned, scratch-distill and scratch, with the
// teacher's level; empty when the report has no budget_curve.
std::string budget_chart_svg(const pb::Report& r);

// Writes dir/report.json, report.md, quality_vs_params.svg, kept_units.svg and curves.svg,
// each atomically; creates dir if needed. IoError names the file.
void write_report(const std::string& dir, const pb::Report& r);

// Reads dir/report.json. IoError names the file.
pb::Report read_report(const std::string& dir);

}  // namespace prunerec::prune
