// report.md and the ledger printed by `prunerec run` (see report.h).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/format.h"
#include "prune/kept_units.h"
#include "prune/report.h"
#include "prune/report_text.h"

namespace prunerec::prune {
namespace {

using namespace report_text;

// Text for a table cell or heading: one line, pipes escaped, no raw HTML.
std::string md_text(std::string_view s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '|':
        out += "\\|";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '\n':
      case '\r':
        out += ' ';
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A fenced code block whose fence is longer than any backtick run inside.
std::string md_code_block(std::string_view text, std::string_view language) {
  std::size_t longest = 0, run = 0;
  for (const char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(std::max<std::size_t>(3, longest + 1), '`');
  std::string out = fence + std::string(language) + "\n" + std::string(text);
  if (!text.empty() && text.back() != '\n') out += '\n';
  return out + fence + "\n";
}

void md_table(std::string& out, const std::vector<std::string>& header,
              const std::vector<std::vector<std::string>>& rows, std::size_t left_aligned = 1) {
  out += '|';
  for (const auto& h : header) out += " " + h + " |";
  out += "\n|";
  for (std::size_t i = 0; i < header.size(); ++i) out += i < left_aligned ? "---|" : "---:|";
  out += '\n';
  for (const auto& row : rows) {
    out += '|';
    for (std::size_t i = 0; i < header.size(); ++i) out += " " + (i < row.size() ? row[i] : std::string(kDash)) + " |";
    out += '\n';
  }
}

std::optional<double> one_user_ms(const pb::StageRow& row) {
  if (row.latency().has_one_user_ms()) return row.latency().one_user_ms();
  if (row.has_latency_ms()) return row.latency_ms();
  return std::nullopt;
}

std::optional<double> batch_ms_per_user(const pb::StageRow& row) {
  const pb::Latency& l = row.latency();
  if (l.has_batch_ms_per_user()) return l.batch_ms_per_user();
  if (l.has_batch_ms() && l.batch_size() > 0) return l.batch_ms() / l.batch_size();
  return std::nullopt;
}

std::optional<double> ratio(std::optional<double> a, std::optional<double> b) {
  if (!a || !b || *b == 0) return std::nullopt;
  return *a / *b;
}

std::optional<double> difference(std::optional<double> a, std::optional<double> b) {
  if (!a || !b) return std::nullopt;
  return *a - *b;
}

const std::vector<std::string> kLedgerHeader = {"stage",
                                                "non-emb. params",
                                                "% of teacher",
                                                "total params",
                                                "FLOPs / rec.",
                                                "latency 1 user (ms)",
                                                "batch latency (ms / user)",
                                                "valid NDCG@10",
                                                "NDCG@5",
                                                "NDCG@10",
                                                "NDCG@20",
                                                "HR@5",
                                                "HR@10",
                                                "HR@20",
                                                "% of teacher NDCG@10",
                                                "wall time (m:ss)"};

std::vector<std::string> ledger_cells(const pb::StageRow& row, const pb::StageRow* teacher) {
  const auto m = [&](const char* key) { return fmt_metric(lookup(row.metrics(), key)); };
  std::string name = row.has_name() ? md_text(row.name()) : std::string(kDash);
  std::optional<double> teacher_ndcg;
  if (teacher) teacher_ndcg = lookup(teacher->metrics(), "NDCG@10");
  return {name,
          row.has_non_embedding_params() ? fmt_count(row.non_embedding_params()) : kDash,
          fmt_percent(fraction_of_teacher_params(row, teacher)),
          row.has_total_params() ? fmt_count(row.total_params()) : kDash,
          row.has_flops_per_recommendation() ? format_count(row.flops_per_recommendation()) : kDash,
          fmt_ms(one_user_ms(row)),
          fmt_ms(batch_ms_per_user(row)),
          fmt_metric(lookup(row.valid_metrics(), "NDCG@10")),
          m("NDCG@5"),
          m("NDCG@10"),
          m("NDCG@20"),
          m("HR@5"),
          m("HR@10"),
          m("HR@20"),
          fmt_percent(ratio(lookup(row.metrics(), "NDCG@10"), teacher_ndcg)),
          fmt_duration(row.has_wall_seconds() ? std::optional<double>(row.wall_seconds()) : std::nullopt)};
}

// "4 / 8", or "4" when the size before is unknown.
std::string kept_of(std::int64_t kept, std::optional<std::int64_t> before) {
  return before ? fmt_count(kept) + " / " + fmt_count(*before) : fmt_count(kept);
}

// Per-layer table of a stage's plan. `before` is the previous stage's model (for the
// sizes the plan chooses from), `before_units` names its layers in teacher indices.
void md_plan(std::string& out, const pb::PrunePlan& plan, const std::vector<pb::LayerConfig>& before,
             const TeacherIndexedUnits* before_units) {
  const int L = std::max<int>(plan.layers_size(), static_cast<int>(before.size()));
  std::set<int> kept_layers;
  if (plan.keep_all_layers())
    for (int l = 0; l < L; ++l) kept_layers.insert(l);
  else
    kept_layers.insert(plan.kept_layers().begin(), plan.kept_layers().end());
  std::vector<std::vector<std::string>> rows;
  for (int l = 0; l < L; ++l) {
    const auto ul = static_cast<std::size_t>(l);
    std::vector<std::string> row = {std::to_string(l)};
    row.push_back(before_units && ul < before_units->layers.size() ? std::to_string(before_units->layers[ul]) : kDash);
    std::optional<std::int64_t> heads, kv, mlp;
    if (ul < before.size()) {
      if (before[ul].has_num_heads()) heads = before[ul].num_heads();
      if (before[ul].has_num_kv_heads()) kv = before[ul].num_kv_heads();
      if (before[ul].has_mlp_width()) mlp = before[ul].mlp_width();
    }
    if (before_units && ul < before_units->layers.size()) {  // traced sizes, when the plans compose
      heads = static_cast<std::int64_t>(before_units->heads[ul].size());
      mlp = static_cast<std::int64_t>(before_units->mlp[ul].size());
    }
    if (!kept_layers.count(l)) {
      row.insert(row.end(), {"removed", "removed", "removed"});
    } else {
      const pb::LayerPlan lp = l < plan.layers_size() ? plan.layers(l) : pb::LayerPlan();
      row.push_back(lp.keep_all_heads() ? (heads ? "all (" + fmt_count(*heads) + ")" : "all")
                                        : kept_of(lp.kept_heads_size(), heads));
      // KV heads follow the kept query heads; an unnormalised plan does not list them.
      if (lp.keep_all_heads() && lp.kept_kv_heads_size() == 0)
        row.push_back(kv ? "all (" + fmt_count(*kv) + ")" : "all");
      else if (lp.kept_kv_heads_size() == 0 && lp.kept_heads_size() > 0)
        row.push_back(kDash);
      else
        row.push_back(kept_of(lp.kept_kv_heads_size(), kv));
      row.push_back(lp.keep_all_mlp() ? (mlp ? "all (" + fmt_count(*mlp) + ")" : "all")
                                      : kept_of(lp.kept_mlp_size(), mlp));
    }
    rows.push_back(std::move(row));
  }
  if (rows.empty()) {
    out += "The plan lists no layers.\n\n";
  } else {
    md_table(out, {"layer", "teacher layer", "query heads", "KV heads", "MLP channels"}, rows);
    out += '\n';
  }
}

void md_model_summary(std::string& out, const pb::ModelConfig& config) {
  const std::vector<pb::LayerConfig> layers = expand_layers(config);
  out += "Model: " + std::to_string(layers.size()) + " layers";
  if (config.has_hidden()) out += ", hidden " + fmt_count(config.hidden());
  bool uniform = true;
  for (const auto& l : layers)
    if (l.num_heads() != layers[0].num_heads() || l.num_kv_heads() != layers[0].num_kv_heads() ||
        l.mlp_width() != layers[0].mlp_width())
      uniform = false;
  const auto describe = [](const pb::LayerConfig& l) {
    return plural(l.num_heads(), "head") + " (" + fmt_count(l.num_kv_heads()) + " KV), MLP width " +
           fmt_count(l.mlp_width());
  };
  if (layers.empty()) {
    out += ".\n\n";
  } else if (uniform) {
    out += ", each " + describe(layers[0]) + ".\n\n";
  } else {
    out += "; per layer: ";
    for (std::size_t l = 0; l < layers.size(); ++l)
      out += (l ? "; " : "") + std::to_string(l) + ": " + describe(layers[l]);
    out += ".\n\n";
  }
}

void md_stage_details(std::string& out, const pb::Report& r, int k, const pb::StageRow& row,
                      const pb::StageRow* teacher, const std::vector<TeacherIndexedUnits>* trace, bool control) {
  std::string heading =
      control ? "### Control: " : (k == 0 ? "### Teacher: " : "### Stage " + std::to_string(k) + ": ");
  heading += row.has_name() ? md_text(row.name()) : std::string(kDash);
  if (row.has_kind()) heading += " (" + md_text(row.kind()) + ")";
  out += heading + "\n\n";
  if (row.has_note()) out += md_text(row.note()) + "\n\n";
  if (row.has_estimator() && !row.estimator().empty()) out += "Estimators: `" + row.estimator() + "`\n\n";
  if (row.grid_size() > 0) {
    out += "Recipes tried (the best validation NDCG@10 is the control):\n\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& gp : row.grid())
      rows.push_back({format_significant(gp.weight_decay()), format_significant(gp.dropout()), format_significant(gp.lr()),
                      fmt_metric(gp.valid_ndcg10()), std::to_string(gp.best_epoch()), gp.chosen() ? "chosen" : ""});
    md_table(out, {"weight decay", "dropout", "lr", "valid NDCG@10", "best epoch", ""}, rows, 0);
    out += '\n';
  }
  if (row.has_plan()) {
    out +=
        control
            ? "Plan (indices into the model it was applied to):\n\n"
            : "Plan (indices into the previous stage's model; teacher layer = what that layer was in the teacher):\n\n";
    std::vector<pb::LayerConfig> before;
    const TeacherIndexedUnits* before_units = nullptr;
    if (!control && k >= 1) {
      before = expand_layers(r.stages(k - 1).config());
      if (trace && static_cast<std::size_t>(k - 1) < trace->size())
        before_units = &(*trace)[static_cast<std::size_t>(k - 1)];
    }
    md_plan(out, row.plan(), before, before_units);
    const pb::PrunePlan& p = row.plan();
    if (!p.keep_all_hidden()) {
      std::optional<std::int64_t> hidden_before;
      if (!control && k >= 1 && r.stages(k - 1).config().has_hidden())
        hidden_before = r.stages(k - 1).config().hidden();
      out += "Hidden channels: " + kept_of(p.kept_hidden_size(), hidden_before) + ".\n\n";
    }
  } else if (k > 0 || control) {
    out += "Plan: " + std::string(kDash) + "\n\n";
  }
  if (row.has_config()) md_model_summary(out, row.config());
  if (row.has_stability() && !row.stability().spearman().empty()) {
    out += "Score stability (split-half Spearman):";
    const std::vector<std::string> keys = sorted_keys(row.stability().spearman());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const double rho = row.stability().spearman().at(keys[i]);  // NaN: undefined (random scores, nothing removed)
      out += (i ? ", " : " ") + md_text(keys[i]) + " " + (std::isnan(rho) ? std::string("n/a") : format_fixed(rho, 3));
    }
    out += ".\n\n";
  }
  // Test metrics before and after recovery, with the teacher's for reference.
  std::vector<std::string> keys = sorted_keys(row.metrics());
  for (const auto& key : sorted_keys(row.metrics_before_recovery()))
    if (!row.metrics().count(key)) keys.push_back(key);
  std::sort(keys.begin(), keys.end(), [](const std::string& a, const std::string& b) { return natural_less(a, b); });
  if (!keys.empty()) {
    const bool has_before = !row.metrics_before_recovery().empty();
    std::vector<std::vector<std::string>> rows;
    for (const auto& key : keys) {
      const auto before = lookup(row.metrics_before_recovery(), key), after = lookup(row.metrics(), key);
      std::vector<std::string> cells = {md_text(key)};
      if (has_before) cells.push_back(fmt_metric(before));
      cells.push_back(fmt_metric(after));
      if (has_before) cells.push_back(fmt_signed_metric(difference(after, before)));
      if (teacher && teacher != &row) cells.push_back(fmt_metric(lookup(teacher->metrics(), key)));
      rows.push_back(std::move(cells));
    }
    std::vector<std::string> header = {"test metric"};
    if (has_before) header.push_back("after surgery");
    header.push_back(has_before ? "after recovery" : "value");
    if (has_before) header.push_back("recovery gain");
    if (teacher && teacher != &row) header.push_back("teacher");
    md_table(out, header, rows);
    out += '\n';
  } else {
    out += "Test metrics: " + std::string(kDash) + "\n\n";
  }
  std::vector<std::string> facts;
  if (row.has_recovery_epochs()) {
    std::string s =
        (k == 0 && !control ? "training epochs: " : "recovery epochs: ") + std::to_string(row.recovery_epochs());
    if (row.has_recovery_best_epoch()) s += " (best " + std::to_string(row.recovery_best_epoch()) + ")";
    facts.push_back(s);
  }
  std::vector<std::string> times;  // durations as m:ss (h:mm:ss from an hour)
  if (row.has_scoring_seconds()) times.push_back("scoring " + fmt_duration(row.scoring_seconds()));
  if (row.has_recovery_seconds()) times.push_back("recovery " + fmt_duration(row.recovery_seconds()));
  if (row.has_wall_seconds()) times.push_back("wall " + fmt_duration(row.wall_seconds()));
  if (!times.empty()) {
    std::string s = "time (m:ss): ";
    for (std::size_t i = 0; i < times.size(); ++i) s += (i ? ", " : "") + times[i];
    facts.push_back(s);
  }
  // Note [training FLOPs] in prune/schedule.cc.
  if (row.has_training_flops())
    facts.push_back("training " + format_count(row.training_flops()) + " FLOPs, path " + format_count(row.path_training_flops()) +
                    " FLOPs (" + format_count(row.path_training_flops_without_teacher()) +
                    " FLOPs without the teacher's training)");
  if (!facts.empty()) {
    std::string line;
    for (std::size_t i = 0; i < facts.size(); ++i) line += (i ? "; " : "") + facts[i];
    line[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(line[0])));
    out += line + ".\n\n";
  }
  if (row.has_checkpoint()) out += "Checkpoint: `" + row.checkpoint() + "`\n\n";
}

}  // namespace

std::string ledger_markdown(const pb::Report& r) {
  std::string out = "# " + md_text(report_title(r, "Prune report")) + "\n\n";
  const auto fact = [&](const std::string& name, const std::string& value) {
    out += "- **" + name + ":** " + value + "\n";
  };
  fact("Data", r.has_data() ? md_text(r.data()) : kDash);
  fact("Teacher", r.has_teacher() ? md_text(r.teacher()) : kDash);
  fact("Protocol", r.has_protocol() ? md_text(r.protocol()) : kDash);
  if (r.mode() == "title") {
    // Title mode (Report.mode): what the latency columns time, from the teacher's row.
    const std::string measured = r.stages_size() > 0 && r.stages(0).latency().has_measured()
                                     ? r.stages(0).latency().measured()
                                     : std::string("title generation");
    fact("Mode", "title (metrics and latency are " + md_text(measured) + "'s; no FLOPs per recommendation)");
  }
  fact("Seed", r.has_seed() ? std::to_string(r.seed()) : kDash);
  fact("Threads", r.has_threads() ? std::to_string(r.threads()) : kDash);
  fact("Calibration", r.has_calibration_sequences() ? fmt_count(r.calibration_sequences()) + " sequences" : kDash);
  fact("Total time (m:ss)", fmt_duration(r.has_total_seconds() ? std::optional<double>(r.total_seconds()) : std::nullopt));
  out += '\n';

  const pb::StageRow* teacher = r.stages_size() > 0 ? &r.stages(0) : nullptr;
  const pb::StageRow* final_row = r.stages_size() > 1 ? &r.stages(r.stages_size() - 1) : nullptr;

  out += "## Ledger\n\n";
  if (r.stages_size() == 0) {
    out += "No stages recorded yet.\n\n";
  } else {
    out += "Test metrics unless marked valid; the teacher first, then each stage in order.\n\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& row : r.stages()) rows.push_back(ledger_cells(row, teacher));
    md_table(out, kLedgerHeader, rows);
    out += '\n';
    if (teacher && teacher->has_vs_final()) {
      // Note [paired differences] in prune/schedule.cc.
      const pb::PairedDifference& d = teacher->vs_final();
      out += "Teacher minus final stage, test " + md_text(d.metric()) + ", paired bootstrap over " + fmt_count(d.n()) +
             " users (" + std::to_string(d.resamples()) + " resamples, seed " + std::to_string(d.seed()) +
             "), diff [95% interval]: " + fmt_paired(d, "teacher") + ".\n\n";
    }
  }

  out += "## Controls\n\n";
  if (r.controls_size() == 0) {
    out += "No controls recorded.\n\n";
  } else {
    const std::string final_name = final_row ? " (" + md_text(final_row->name()) + ")" : "";
    std::vector<std::string> header = kLedgerHeader;
    header[0] = "control";
    header.push_back("NDCG@10 vs final" + final_name);
    header.push_back("HR@10 vs final" + final_name);
    header.push_back("NDCG@10 paired diff [95% CI]");
    std::vector<std::vector<std::string>> rows;
    for (const auto& row : r.controls()) {
      std::vector<std::string> cells = ledger_cells(row, teacher);
      for (const char* key : {"NDCG@10", "HR@10"})
        cells.push_back(
            final_row ? fmt_signed_metric(difference(lookup(row.metrics(), key), lookup(final_row->metrics(), key)))
                      : kDash);
      cells.push_back(row.has_vs_final() ? fmt_paired(row.vs_final(), "control") : kDash);
      rows.push_back(std::move(cells));
    }
    md_table(out, header, rows);
    out += '\n';
    if (r.controls(0).has_vs_final())
      out += "Paired diff: control minus final stage on test NDCG@10, bootstrap over users (" +
             std::to_string(r.controls(0).vs_final().resamples()) + " resamples, seed " +
             std::to_string(r.controls(0).vs_final().seed()) +
             "); an interval that contains 0 reads \"no difference\".\n\n";
  }

  if (r.seed_stats_size() > 0) {
    // Note [student seeds] in prune/schedule.h.
    out += "## Student seeds\n\n";
    std::string seeds;
    for (auto s : r.student_seeds()) seeds += (seeds.empty() ? "" : ", ") + std::to_string(s);
    out += "Recoveries and controls run with schedule seeds " + seeds +
           "; test metrics as mean and sample standard deviation over the seeds.\n\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& st : r.seed_stats()) {
      std::string values;
      for (double v : st.values()) values += (values.empty() ? "" : ", ") + fmt_metric(v);
      rows.push_back({md_text(st.row()), md_text(st.metric()), fmt_metric(st.mean()), fmt_metric(st.sd()), values});
    }
    md_table(out, {"row", "metric", "mean", "sd", "per seed"}, rows, 2);
    out += '\n';
    // Note [paired differences] in prune/schedule.cc: each seed's interval, in seed order.
    std::vector<std::vector<std::string>> paired;
    for (const auto& st : r.seed_stats())
      for (int k = 0; k < st.vs_final_size(); ++k)
        paired.push_back({md_text(st.row()),
                          k < r.student_seeds_size() ? std::to_string(r.student_seeds(k)) : std::string(kDash),
                          fmt_paired(st.vs_final(k), st.row() == "teacher" ? "teacher" : "control")});
    if (!paired.empty()) {
      out += "Paired differences from each seed's final stage (row minus final, test NDCG@10, bootstrap over users):\n\n";
      md_table(out, {"row", "seed", "NDCG@10 paired diff [95% CI]"}, paired, 3);
      out += '\n';
    }
  }
  return out;
}

std::string report_markdown(const pb::Report& r) {
  std::string out = ledger_markdown(r);
  const pb::StageRow* teacher = r.stages_size() > 0 ? &r.stages(0) : nullptr;
  out += "## Charts\n\n";
  out += "![Test NDCG@10 and HR@10 against non-embedding parameters](quality_vs_params.svg)\n\n";
  out += "![Teacher heads and MLP channels kept by each stage](kept_units.svg)\n\n";
  out += "![Recovery loss and validation NDCG@10 per stage](curves.svg)\n\n";
  if (r.budget_curve_size() > 0) {
    // Note [student budget] in prune/schedule.h.
    out += "![Test NDCG@10 against the student's budget](budget_curve.svg)\n\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : r.budget_curve())
      rows.push_back({std::to_string(p.epochs()), md_text(p.path()), std::to_string(p.total_epochs()),
                      fmt_metric(lookup(p.metrics(), "NDCG@10")), fmt_metric(lookup(p.metrics(), "HR@10")),
                      format_count(p.training_flops()) + " FLOPs"});
    md_table(out, {"epochs per recovery", "path", "epochs given", "NDCG@10", "HR@10", "training (no teacher)"}, rows, 2);
    out += '\n';
  }

  // Teacher-index names of each stage's layers (for the plan tables); a report whose plans
  // do not compose still renders, with the reason.
  std::vector<TeacherIndexedUnits> trace;
  std::string trace_error;
  if (r.stages_size() > 0 && r.stages(0).has_config()) {
    try {
      trace = trace_units_to_teacher(r);
    } catch (const ConfigError& e) {
      trace_error = e.what();
    }
  }
  out += "## Stages\n\n";
  if (!trace_error.empty()) out += "The plans do not compose: " + md_text(trace_error) + "\n\n";
  if (r.stages_size() == 0) out += "No stages recorded yet.\n\n";
  for (int k = 0; k < r.stages_size(); ++k)
    md_stage_details(out, r, k, r.stages(k), teacher, trace.empty() ? nullptr : &trace, /*control=*/false);
  for (int c = 0; c < r.controls_size(); ++c)
    md_stage_details(out, r, c, r.controls(c), teacher, nullptr, /*control=*/true);

  out += "## Schedule\n\n";
  out += r.has_schedule() && !r.schedule().empty() ? md_code_block(r.schedule(), "text") : std::string(kDash) + "\n";
  out += "\n## Command\n\n";
  out += r.has_command() && !r.command().empty() ? md_code_block(r.command(), "sh") : std::string(kDash) + "\n";
  return out;
}

}  // namespace prunerec::prune
