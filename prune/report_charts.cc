// The report's SVG charts, drawn with the chart kit (see report.h, chart.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/format.h"
#include "prune/chart.h"
#include "prune/kept_units.h"
#include "prune/report.h"
#include "prune/report_text.h"

namespace prunerec::prune {
namespace {

using namespace chart;
using namespace report_text;

// Okabe-Ito colours (distinguishable with colour-vision deficiencies), then a few more.
const char* const kStageColours[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#8C564B", "#56B4E9", "#BCBD22"};
const char* const kTeacherColour = "#4D4D4D";
const char* const kControlColours[] = {"#D55E00", "#7B3294", "#E7298A", "#8C6D1F"};
const char* const kRemovedColour = "#D9D9D9";

std::string stage_colour(int k) {
  if (k <= 0) return kTeacherColour;
  return kStageColours[static_cast<std::size_t>(k - 1) % std::size(kStageColours)];
}

constexpr double kWidth = 800;  // every chart; heights follow the content

// "data: beauty · teacher: teacher · test split (leave-one-out) ...", fitted to the width.
std::string subtitle(const pb::Report& r) {
  std::vector<std::string> parts;
  if (!r.data().empty()) parts.push_back("data: " + short_name(r.data()));
  if (!r.teacher().empty()) parts.push_back("teacher: " + short_name(r.teacher()));
  if (!r.protocol().empty()) parts.push_back(r.protocol());
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : "  \xC2\xB7  ") + p;
  return fit_text(s, 11, kWidth - 20);
}

// The quality chart's points of one row, when both coordinates are usable.
std::optional<std::pair<double, double>> quality_point(const pb::StageRow& row, const std::string& metric) {
  const auto v = lookup(row.metrics(), metric);
  if (!row.has_non_embedding_params() || row.non_embedding_params() <= 0 || !v || !std::isfinite(*v))
    return std::nullopt;
  return std::pair<double, double>(static_cast<double>(row.non_embedding_params()), *v);
}

void quality_panel(Svg& svg, const pb::Report& r, const Frame& f, const std::string& metric, const LogAxis& x_axis) {
  svg.text((f.x0 + f.x1) / 2, f.y0 - 8, "test " + metric, 12, "middle", kAxisColour, true);
  std::vector<double> values;
  for (const auto* rows : {&r.stages(), &r.controls()})
    for (const auto& row : *rows)
      if (auto p = quality_point(row, metric)) values.push_back(p->second);
  if (values.empty()) {
    svg.rect(f.x0, f.y0, f.x1 - f.x0, f.y1 - f.y0, "none", "stroke=\"" + std::string(kGridColour) + "\"");
    svg.centred_message((f.x0 + f.x1) / 2, (f.y0 + f.y1) / 2, "no " + metric + " recorded yet", 40);
    return;
  }
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  const double pad = std::max(0.06 * (*hi_it - *lo_it), 0.002);
  const LinearAxis y_axis = LinearAxis::fit(std::max(0.0, *lo_it - pad), *hi_it + pad, 5);
  const auto px = [&](double v) {
    return f.x0 +
           (std::log10(v) - std::log10(x_axis.lo)) / (std::log10(x_axis.hi) - std::log10(x_axis.lo)) * (f.x1 - f.x0);
  };
  const auto py = [&](double v) { return f.y1 - (v - y_axis.lo) / (y_axis.hi - y_axis.lo) * (f.y1 - f.y0); };

  for (const double t : x_axis.minor) svg.line(px(t), f.y0, px(t), f.y1, "#F2F2F2");
  // Tick labels that would touch are dropped, powers of ten first to stay, then 5s, 2s.
  std::vector<double> by_priority = x_axis.ticks;
  const auto priority = [](double t) {
    const double mantissa = std::round(t / std::pow(10.0, std::floor(std::log10(t) + 1e-9)));
    return mantissa == 1 ? 0 : mantissa == 5 ? 1 : mantissa == 2 ? 2 : 3;
  };
  std::stable_sort(by_priority.begin(), by_priority.end(),
                   [&](double a, double b) { return priority(a) < priority(b); });
  std::vector<Box> tick_labels;
  for (const double t : by_priority) {
    svg.line(px(t), f.y0, px(t), f.y1, kGridColour);
    svg.line(px(t), f.y1, px(t), f.y1 + 4, kAxisColour);
    const std::string label = format_count(t);
    const double w = text_width(label, 10);
    const Box box{px(t) - w / 2 - 3, f.y1, px(t) + w / 2 + 3, f.y1 + 18};
    if (std::any_of(tick_labels.begin(), tick_labels.end(), [&](const Box& b) { return b.overlaps(box); })) continue;
    tick_labels.push_back(box);
    svg.text(px(t), f.y1 + 16, label, 10, "middle");
  }
  draw_y_axis(svg, f, y_axis, "test " + metric);
  svg.line(f.x0, f.y1, f.x1, f.y1, kAxisColour);
  svg.text((f.x0 + f.x1) / 2, f.y1 + 32, "non-embedding parameters (log scale)", 11, "middle");

  // The teacher's level, for reference.
  if (r.stages_size() > 0)
    if (const auto t = quality_point(r.stages(0), metric))
      svg.line(f.x0, py(t->second), f.x1, py(t->second), "#AAAAAA", 1, "4,3");

  LabelPlacer labels(f, {0, 0, svg.width(), svg.height()});
  std::vector<std::pair<double, double>> path;
  std::vector<std::pair<int, std::pair<double, double>>> stage_points;
  for (int k = 0; k < r.stages_size(); ++k)
    if (const auto p = quality_point(r.stages(k), metric)) {
      path.emplace_back(px(p->first), py(p->second));
      stage_points.push_back({k, path.back()});
    }
  std::vector<std::pair<int, std::pair<double, double>>> control_points;
  for (int c = 0; c < r.controls_size(); ++c)
    if (const auto p = quality_point(r.controls(c), metric))
      control_points.push_back({c, {px(p->first), py(p->second)}});
  for (const auto& [k, p] : stage_points) labels.add_obstacle({p.first - 6, p.second - 6, p.first + 6, p.second + 6});
  for (const auto& [c, p] : control_points) labels.add_obstacle({p.first - 7, p.second - 7, p.first + 7, p.second + 7});
  // The path between the markers, as small boxes every few pixels, so labels keep off it.
  for (std::size_t i = 1; i < path.size(); ++i) {
    const auto [x0, y0] = path[i - 1];
    const auto [x1, y1] = path[i];
    const int steps = std::max(1, static_cast<int>(std::hypot(x1 - x0, y1 - y0) / 4));
    for (int s = 1; s < steps; ++s) {
      const double x = x0 + (x1 - x0) * s / steps, y = y0 + (y1 - y0) * s / steps;
      labels.add_obstacle({x - 1.5, y - 1.5, x + 1.5, y + 1.5});
    }
  }

  svg.polyline(path, "#9A9A9A", 1.5);
  for (const auto& [c, p] : control_points)
    svg.marker(1 + c, p.first, p.second, 5.5, kControlColours[static_cast<std::size_t>(c) % std::size(kControlColours)],
               "#333333");
  for (const auto& [k, p] : stage_points) svg.marker(0, p.first, p.second, 5, stage_colour(k));
  for (const auto& [k, p] : stage_points) {
    const std::string label =
        ellipsize(r.stages(k).has_name() ? r.stages(k).name() : (k == 0 ? "teacher" : "stage " + std::to_string(k)), 22);
    const auto [lx, ly, anchor] = labels.place(p.first, p.second, label, 10);
    svg.text(lx, ly, label, 10, anchor, stage_colour(k));
  }
}

// Curves panel: one polyline per pruning stage.
void curves_panel(Svg& svg, const pb::Report& r, const Frame& f, bool loss, const std::string& title,
                  const std::string& x_title) {
  svg.text((f.x0 + f.x1) / 2, f.y0 - 8, title, 12, "middle", kAxisColour, true);
  std::vector<double> values;
  std::size_t longest = 0;
  const auto curve = [&](const pb::StageRow& row) -> const google::protobuf::RepeatedField<double>& {
    return loss ? row.loss_curve() : row.valid_curve();
  };
  for (int k = 1; k < r.stages_size(); ++k) {
    longest = std::max<std::size_t>(longest, static_cast<std::size_t>(curve(r.stages(k)).size()));
    for (const double v : curve(r.stages(k)))
      if (std::isfinite(v)) values.push_back(v);
  }
  // The teacher's validation NDCG@10, drawn as a level in the validation panel (NaN: none).
  const double teacher_level = !loss && r.stages_size() > 0
                                   ? lookup(r.stages(0).valid_metrics(), "NDCG@10").value_or(std::nan(""))
                                   : std::nan("");
  const bool has_teacher_level = std::isfinite(teacher_level);
  if (values.empty()) {
    svg.rect(f.x0, f.y0, f.x1 - f.x0, f.y1 - f.y0, "none", "stroke=\"" + std::string(kGridColour) + "\"");
    svg.centred_message((f.x0 + f.x1) / 2, (f.y0 + f.y1) / 2, "no curves recorded yet", 40);
    return;
  }
  if (has_teacher_level) values.push_back(teacher_level);
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  const double pad = std::max(0.05 * (*hi_it - *lo_it), 1e-4);
  const LinearAxis y_axis = LinearAxis::fit(*lo_it - pad, *hi_it + pad, 5);
  const double n = static_cast<double>(longest);
  const LinearAxis x_axis = LinearAxis::fit(1, std::max(2.0, n), 6, /*integers=*/true);
  const double x_lo = longest <= 1 ? 0.5 : 1, x_hi = longest <= 1 ? 1.5 : n;
  const auto px = [&](double v) { return f.x0 + 8 + (v - x_lo) / (x_hi - x_lo) * (f.x1 - f.x0 - 16); };
  const auto py = [&](double v) { return f.y1 - (v - y_axis.lo) / (y_axis.hi - y_axis.lo) * (f.y1 - f.y0); };
  for (const double t : x_axis.ticks) {
    if (t < x_lo - 1e-9 || t > x_hi + 1e-9) continue;
    svg.line(px(t), f.y1, px(t), f.y1 + 4, kAxisColour);
    svg.text(px(t), f.y1 + 16, format_fixed(t, 0), 10, "middle");
  }
  draw_y_axis(svg, f, y_axis, title);
  svg.line(f.x0, f.y1, f.x1, f.y1, kAxisColour);
  svg.text((f.x0 + f.x1) / 2, f.y1 + 32, x_title, 11, "middle");
  if (has_teacher_level) {
    svg.line(f.x0, py(teacher_level), f.x1, py(teacher_level), kTeacherColour, 1, "4,3");
    svg.text(f.x1 - 4, py(teacher_level) - 4, "teacher", 10, "end", kTeacherColour);
  }
  for (int k = 1; k < r.stages_size(); ++k) {
    const auto& c = curve(r.stages(k));
    // A non-finite value breaks the line; each finite run is drawn on its own.
    std::vector<std::pair<double, double>> run;
    const auto flush = [&] {
      svg.polyline(run, stage_colour(k), 2);
      run.clear();
    };
    for (int i = 0; i < c.size(); ++i) {
      if (!std::isfinite(c.Get(i))) {
        flush();
        continue;
      }
      run.emplace_back(px(i + 1), py(c.Get(i)));
      if (c.size() <= 40) svg.marker(0, run.back().first, run.back().second, 2.8, stage_colour(k));
    }
    flush();
  }
}


}  // namespace

std::string quality_chart_svg(const pb::Report& r) {
  std::vector<LegendItem> legend;
  legend.push_back({LegendItem::Kind::kLine, "#9A9A9A", 0, "pruning path, teacher to final"});
  for (int k = 0; k < r.stages_size(); ++k)
    legend.push_back({LegendItem::Kind::kMarker, stage_colour(k), 0, stage_name(r, k)});
  for (int c = 0; c < r.controls_size(); ++c)
    legend.push_back({LegendItem::Kind::kMarker,
                      kControlColours[static_cast<std::size_t>(c) % std::size(kControlColours)], 1 + c,
                      "control: " + (r.controls(c).has_name() ? r.controls(c).name() : std::to_string(c))});
  legend.push_back({LegendItem::Kind::kDashedLine, "#AAAAAA", 0, "teacher level"});
  constexpr double kLegendY = 440;
  Svg svg(kWidth, kLegendY + legend_height(40, kWidth - 20, legend) + 8, report_title(r, "Quality against size"));
  svg.text(kWidth / 2, 42, subtitle(r), 11, "middle", "#666666");
  std::vector<double> params;
  for (const auto* rows : {&r.stages(), &r.controls()})
    for (const auto& row : *rows)
      for (const char* metric : {"NDCG@10", "HR@10"})
        if (const auto p = quality_point(row, metric)) params.push_back(p->first);
  if (params.empty()) {
    svg.centred_message(kWidth / 2, 250, "no stage has both non-embedding parameters and test metrics yet");
    return svg.finish();
  }
  const LogAxis x_axis =
      LogAxis::fit(*std::min_element(params.begin(), params.end()), *std::max_element(params.begin(), params.end()));
  quality_panel(svg, r, {78, 78, 380, 380}, "NDCG@10", x_axis);
  quality_panel(svg, r, {478, 78, 780, 380}, "HR@10", x_axis);
  draw_legend(svg, 40, kLegendY, kWidth - 20, legend);
  return svg.finish();
}

std::string kept_units_svg(const pb::Report& r) {
  std::vector<TeacherIndexedUnits> trace;
  std::string error;
  try {
    trace = trace_units_to_teacher(r);
  } catch (const ConfigError& e) {
    error = e.what();
  }
  if (!error.empty() || trace.front().layers.empty()) {
    Svg svg(kWidth, 300, report_title(r, "Kept units"));
    svg.centred_message(kWidth / 2, 150, error.empty() ? "the teacher has no layers" : error);
    return svg.finish();
  }
  const std::vector<KeptUnitsLayer> kept = kept_units_from_trace(trace);
  const int stages = static_cast<int>(trace.size()) - 1;  // pruning stages composed
  const std::size_t L = kept.size();

  // Category colours: 0 = teacher only, k = still present after stage k.
  const auto colour = [&](int last_stage) {
    return last_stage == 0 ? std::string(kRemovedColour) : stage_colour(last_stage);
  };

  std::size_t max_heads = 0, max_mlp = 0;
  for (const auto& l : kept) {
    max_heads = std::max(max_heads, l.head_last_stage.size());
    max_mlp = std::max(max_mlp, l.mlp_last_stage.size());
  }
  const double grid_top = 92, label_right = 66, right_notes = 178;
  const double row_height = std::clamp(300.0 / static_cast<double>(L), 7.0, 32.0);
  const double grid_bottom = grid_top + row_height * static_cast<double>(L);
  const double heads_x0 = label_right + 8;
  const double heads_w = max_heads == 0 ? 60 : std::min(220.0, std::max(60.0, 22.0 * static_cast<double>(max_heads)));
  const double mlp_x0 = heads_x0 + heads_w + 26;
  const double mlp_w = 800 - right_notes - mlp_x0 - 10;
  constexpr std::size_t kMaxBins = 64;
  const std::size_t per_bin = max_mlp <= kMaxBins ? 1 : (max_mlp + kMaxBins - 1) / kMaxBins;

  // Legend first (to size the picture).
  std::vector<LegendItem> legend;
  legend.push_back(
      {LegendItem::Kind::kSwatch, kRemovedColour, 0, stages == 0 ? "teacher (no stage composed yet)" : "teacher only"});
  for (int k = 1; k <= stages; ++k)
    legend.push_back(
        {LegendItem::Kind::kSwatch, colour(k), 0, (k == stages ? "kept to the end: " : "through ") + stage_name(r, k)});
  legend.push_back({LegendItem::Kind::kSwatch, "url(#removed-layer)", 0, "layer removed"});
  const bool unplanned_note = static_cast<int>(trace.size()) < r.stages_size();
  const double legend_y = grid_bottom + (unplanned_note ? 56 : 40);
  const double height = legend_y + legend_height(40, kWidth - 20, legend) + 8;  // as tall as the content

  Svg svg(kWidth, height, report_title(r, "Kept units"));
  svg.text(kWidth / 2, 42,
           fit_text("a row per teacher layer, a cell per teacher head or MLP channel, coloured by the last stage "
                    "that keeps it",
                    11, kWidth - 20),
           11, "middle", "#666666");
  svg.raw(
      "<defs><pattern id=\"removed-layer\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
      "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#FFFFFF\" fill-opacity=\"0.35\"/>"
      "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#333333\" stroke-width=\"1.4\"/></pattern></defs>\n");
  // Column headers start at their column and are shortened to its width, so none runs
  // off the left edge or into the next column.
  svg.text(heads_x0, grid_top - 10, fit_text("query heads", 11, heads_w + 20, true), 11, "start", kAxisColour, true);
  svg.text(mlp_x0, grid_top - 10,
           fit_text(per_bin == 1 ? std::string("MLP channels")
                                 : "MLP channels, " + std::to_string(per_bin) + " per bin (bar = share kept)",
                    11, mlp_w, true),
           11, "start", kAxisColour, true);
  svg.text(kWidth - right_notes + 4, grid_top - 10, "final model", 11, "start", kAxisColour, true);

  const std::size_t label_every = row_height >= 11 ? 1 : static_cast<std::size_t>(std::ceil(11.0 / row_height));
  const double font = std::min(11.0, row_height - 1);
  for (std::size_t l = 0; l < L; ++l) {
    const KeptUnitsLayer& layer = kept[l];
    const double y = grid_top + row_height * static_cast<double>(l);
    const double gap = row_height >= 8 ? 1 : 0;
    if (l % label_every == 0)
      svg.text(label_right, y + row_height / 2 + font / 3, "layer " + std::to_string(l), font, "end");

    // Heads: one cell per teacher query head.
    const double head_w = max_heads ? heads_w / static_cast<double>(max_heads) : 0;
    for (std::size_t h = 0; h < layer.head_last_stage.size(); ++h)
      svg.rect(heads_x0 + head_w * static_cast<double>(h), y, head_w - (head_w >= 6 ? 1 : 0), row_height - gap,
               colour(layer.head_last_stage[h]));

    // MLP channels: bins of per_bin channels, each a stack of categories (latest stage at the bottom).
    const std::size_t width = layer.mlp_last_stage.size();
    const std::size_t bins = (width + per_bin - 1) / per_bin;
    const double bin_w = max_mlp ? mlp_w * static_cast<double>(per_bin) / static_cast<double>(max_mlp) : 0;
    for (std::size_t b = 0; b < bins; ++b) {
      const std::size_t begin = b * per_bin, end = std::min(width, begin + per_bin);
      std::vector<int> counts(static_cast<std::size_t>(stages) + 1, 0);
      for (std::size_t j = begin; j < end; ++j) ++counts[static_cast<std::size_t>(layer.mlp_last_stage[j])];
      const double x = mlp_x0 + bin_w * static_cast<double>(b);
      const double w = bin_w * static_cast<double>(end - begin) / static_cast<double>(per_bin) - (bin_w >= 5 ? 0.5 : 0);
      double bottom = y + row_height - gap;
      for (int s = stages; s >= 0; --s) {
        if (counts[static_cast<std::size_t>(s)] == 0) continue;
        const double h = (row_height - gap) * counts[static_cast<std::size_t>(s)] / static_cast<double>(end - begin);
        svg.rect(x, bottom - h, w, h, colour(s));
        bottom -= h;
      }
    }

    // Removed layers: hatched across both panels, with the stage that removed them.
    std::string note;
    if (layer.layer_last_stage < stages) {
      svg.rect(heads_x0, y, heads_w, row_height - gap, "url(#removed-layer)");
      svg.rect(mlp_x0, y, mlp_w, row_height - gap, "url(#removed-layer)");
      note = "removed by " + stage_name(r, layer.layer_last_stage + 1);
    } else {
      const auto count = [&](const std::vector<int>& v) { return std::count(v.begin(), v.end(), stages); };
      note = "heads " + std::to_string(count(layer.head_last_stage)) + "/" +
             std::to_string(layer.head_last_stage.size()) + ", MLP " + fmt_count(count(layer.mlp_last_stage)) + "/" +
             fmt_count(static_cast<std::int64_t>(width));
    }
    if (l % label_every == 0)
      svg.text(kWidth - right_notes + 4, y + row_height / 2 + font / 3,
               fit_text(note, std::min(font, 10.0), right_notes - 8), std::min(font, 10.0), "start");
  }

  // Column ticks.
  if (max_heads > 0) {
    const double head_w = heads_w / static_cast<double>(max_heads);
    const std::size_t every = head_w >= 14 ? 1 : static_cast<std::size_t>(std::ceil(14.0 / head_w));
    for (std::size_t h = 0; h < max_heads; h += every)
      svg.text(heads_x0 + head_w * (static_cast<double>(h) + 0.5), grid_bottom + 14, std::to_string(h), 9, "middle");
  }
  if (max_mlp > 0) {
    for (const double at : {0.0, 0.25, 0.5, 0.75}) {
      const std::size_t channel = static_cast<std::size_t>(at * static_cast<double>(max_mlp)) / per_bin * per_bin;
      const double x = mlp_x0 + mlp_w * static_cast<double>(channel) / static_cast<double>(max_mlp);
      svg.line(x, grid_bottom, x, grid_bottom + 4, kAxisColour);
      svg.text(x, grid_bottom + 14, std::to_string(channel), 9, "middle");
    }
    svg.text(mlp_x0 + mlp_w, grid_bottom + 14, std::to_string(max_mlp), 9, "end");
  }
  if (unplanned_note)
    svg.text(kWidth / 2, grid_bottom + 32, "stages after " + stage_name(r, stages) + " have no plan yet and are not shown", 10,
             "middle", "#777777");
  draw_legend(svg, 40, legend_y, kWidth - 20, legend);
  return svg.finish();
}

std::string curves_svg(const pb::Report& r) {
  std::vector<LegendItem> legend;
  for (int k = 1; k < r.stages_size(); ++k)
    legend.push_back({LegendItem::Kind::kLineMarker, stage_colour(k), 0, stage_name(r, k)});
  if (r.stages_size() > 0)
    legend.push_back({LegendItem::Kind::kDashedLine, kTeacherColour, 0, "teacher's valid NDCG@10"});
  constexpr double kLegendY = 440;
  Svg svg(kWidth, kLegendY + legend_height(40, kWidth - 20, legend) + 8, report_title(r, "Recovery curves"));
  svg.text(kWidth / 2, 42, subtitle(r), 11, "middle", "#666666");
  curves_panel(svg, r, {78, 78, 380, 380}, /*loss=*/true, "recovery loss", "recovery epoch");
  curves_panel(svg, r, {478, 78, 780, 380}, /*loss=*/false, "valid NDCG@10", "validation (in order)");
  draw_legend(svg, 40, kLegendY, kWidth - 20, legend);
  return svg.finish();
}

std::string budget_chart_svg(const pb::Report& r) {
  if (r.budget_curve_size() == 0) return "";
  Svg svg(800, 500, report_title(r, "Quality against the student's budget"));
  svg.text(400, 42, "test NDCG@10; x: epochs per recovery (from scratch: the recoveries' epochs together)", 11,
           "middle", "#666666");
  const Frame f{78, 78, 760, 400};
  const std::vector<std::pair<std::string, std::string>> paths = {
      {"pruned", "#0072B2"}, {"scratch-distill", "#D55E00"}, {"scratch", "#009E73"}};
  std::vector<double> values, budgets;
  for (const auto& p : r.budget_curve()) {
    const auto v = lookup(p.metrics(), "NDCG@10");
    if (v && std::isfinite(*v)) values.push_back(*v);
    budgets.push_back(p.epochs());
  }
  const double teacher_level =
      r.stages_size() > 0 ? lookup(r.stages(0).metrics(), "NDCG@10").value_or(std::nan("")) : std::nan("");
  if (std::isfinite(teacher_level)) values.push_back(teacher_level);
  if (values.empty()) {
    svg.centred_message(400, 240, "no budget points recorded yet", 40);
    return svg.finish();
  }
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  const double pad = std::max(0.05 * (*hi_it - *lo_it), 1e-4);
  const LinearAxis y_axis = LinearAxis::fit(*lo_it - pad, *hi_it + pad, 5);
  const auto [b_lo, b_hi] = std::minmax_element(budgets.begin(), budgets.end());
  const double x_lo = std::log10(std::max(1.0, *b_lo)) - 0.1, x_hi = std::log10(std::max(1.0, *b_hi)) + 0.1;
  const auto px = [&](double epochs) { return f.x0 + (std::log10(epochs) - x_lo) / (x_hi - x_lo) * (f.x1 - f.x0); };
  const auto py = [&](double v) { return f.y1 - (v - y_axis.lo) / (y_axis.hi - y_axis.lo) * (f.y1 - f.y0); };
  draw_y_axis(svg, f, y_axis, "test NDCG@10");
  svg.line(f.x0, f.y1, f.x1, f.y1, kAxisColour);
  std::vector<double> ticks = budgets;
  std::sort(ticks.begin(), ticks.end());
  ticks.erase(std::unique(ticks.begin(), ticks.end()), ticks.end());
  for (const double t : ticks) {
    svg.line(px(t), f.y1, px(t), f.y1 + 4, kAxisColour);
    svg.text(px(t), f.y1 + 16, format_fixed(t, 0), 10, "middle");
  }
  svg.text((f.x0 + f.x1) / 2, f.y1 + 34, "epochs per recovery (log scale)", 11, "middle");
  if (std::isfinite(teacher_level)) {
    svg.line(f.x0, py(teacher_level), f.x1, py(teacher_level), kTeacherColour, 1, "4,3");
    svg.text(f.x1 - 4, py(teacher_level) - 4, "teacher", 10, "end", kTeacherColour);
  }
  std::vector<LegendItem> legend;
  int shape = 0;
  for (const auto& [path, colour] : paths) {
    std::vector<std::pair<double, double>> line;
    for (const auto& p : r.budget_curve()) {
      const auto v = lookup(p.metrics(), "NDCG@10");
      if (p.path() == path && v && std::isfinite(*v)) line.push_back({px(p.epochs()), py(*v)});
    }
    std::sort(line.begin(), line.end());
    svg.polyline(line, colour, 2);
    for (const auto& [x, y] : line) svg.marker(shape, x, y, 5, colour);
    legend.push_back({LegendItem::Kind::kLineMarker, colour, shape, path});
    ++shape;
  }
  if (std::isfinite(teacher_level)) legend.push_back({LegendItem::Kind::kDashedLine, kTeacherColour, 0, "teacher"});
  draw_legend(svg, 40, 450, 780, legend);
  return svg.finish();
}

}  // namespace prunerec::prune
