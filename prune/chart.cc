// The SVG chart kit (see chart.h).
#include "prune/chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

#include "base/format.h"

namespace prunerec::prune::chart {

std::string xml_escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t')
          out += ' ';
        else
          out += c;
    }
  }
  return out;
}

// Coordinates with one decimal; never "nan" (callers drop non-finite points first).
std::string num(double v) {
  if (!std::isfinite(v)) v = 0;
  std::string s = format_fixed(v, 1);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  if (s == "-0") s = "0";
  return s;
}

double text_width(std::string_view s, double font_size, bool bold) {
  return (bold ? 0.66 : 0.6) * font_size * static_cast<double>(utf8_length(s));
}

std::string fit_text(const std::string& s, double font_size, double max_width, bool bold) {
  const double per_char = text_width("x", font_size, bold);
  const auto max_chars = static_cast<std::size_t>(std::max(1.0, std::floor(max_width / per_char)));
  return ellipsize(s, max_chars);
}

double Box::overlap_area(const Box& o) const {
  const double w = std::min(x1, o.x1) - std::max(x0, o.x0), h = std::min(y1, o.y1) - std::max(y0, o.y0);
  return w > 0 && h > 0 ? w * h : 0;
}

Svg::Svg(double width, double height, const std::string& title) : width_(width), height_(height) {
  out_ = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
         "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
         "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n";
  out_ += "<title>" + xml_escape(title) + "</title>\n";
  out_ += "<rect x=\"0\" y=\"0\" width=\"" + num(width) + "\" height=\"" + num(height) + "\" fill=\"#FFFFFF\"/>\n";
  text(width / 2, 24, fit_text(title, 15, width - 20, true), 15, "middle", kAxisColour, true);
}

void Svg::line(double x1, double y1, double x2, double y2, const std::string& stroke, double stroke_width,
               const std::string& dash) {
  out_ += "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) +
          "\" stroke=\"" + stroke + "\" stroke-width=\"" + num(stroke_width) + "\"" +
          (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\"") + "/>\n";
}

void Svg::rect(double x, double y, double w, double h, const std::string& fill, const std::string& extra) {
  out_ += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(std::max(0.0, w)) + "\" height=\"" +
          num(std::max(0.0, h)) + "\" fill=\"" + fill + "\"" + (extra.empty() ? "" : " " + extra) + "/>\n";
}

void Svg::polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke,
                   double stroke_width, const std::string& dash) {
  if (points.size() < 2) return;
  out_ += "<polyline fill=\"none\" stroke=\"" + stroke + "\" stroke-width=\"" + num(stroke_width) +
          "\" stroke-linejoin=\"round\"" + (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\"") + " points=\"";
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (i) out_ += ' ';
    out_ += num(points[i].first) + "," + num(points[i].second);
  }
  out_ += "\"/>\n";
}

void Svg::marker(int shape, double x, double y, double r, const std::string& fill, const std::string& stroke) {
  const std::string style = " fill=\"" + fill + "\" stroke=\"" + stroke + "\" stroke-width=\"1\"";
  switch (shape % 5) {
    case 0:
      out_ += "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"" + num(r) + "\"" + style + "/>\n";
      break;
    case 1:
      out_ += "<rect x=\"" + num(x - r) + "\" y=\"" + num(y - r) + "\" width=\"" + num(2 * r) + "\" height=\"" +
              num(2 * r) + "\"" + style + "/>\n";
      break;
    case 2:
      polygon({{x, y - 1.25 * r}, {x + 1.15 * r, y + 0.85 * r}, {x - 1.15 * r, y + 0.85 * r}}, style);
      break;
    case 3:
      polygon({{x, y - 1.3 * r}, {x + 1.3 * r, y}, {x, y + 1.3 * r}, {x - 1.3 * r, y}}, style);
      break;
    default: {
      const double a = 0.45 * r, b = 1.2 * r;
      polygon({{x - a, y - b},
               {x + a, y - b},
               {x + a, y - a},
               {x + b, y - a},
               {x + b, y + a},
               {x + a, y + a},
               {x + a, y + b},
               {x - a, y + b},
               {x - a, y + a},
               {x - b, y + a},
               {x - b, y - a},
               {x - a, y - a}},
              style);
    }
  }
}

void Svg::text(double x, double y, const std::string& s, double size, const std::string& anchor,
               const std::string& fill, bool bold, double rotate) {
  out_ += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + num(size) + "\" text-anchor=\"" + anchor +
          "\" fill=\"" + fill + "\"" + (bold ? " font-weight=\"bold\"" : "") +
          (rotate != 0 ? " transform=\"rotate(" + num(rotate) + " " + num(x) + " " + num(y) + ")\"" : "") + ">" +
          xml_escape(s) + "</text>\n";
}

void Svg::centred_message(double cx, double cy, const std::string& message, std::size_t chars) {
  std::vector<std::string> lines;
  std::string current;
  std::size_t start = 0;
  while (start <= message.size()) {
    std::size_t end = message.find(' ', start);
    if (end == std::string::npos) end = message.size();
    const std::string word = message.substr(start, end - start);
    if (!current.empty() && utf8_length(current) + 1 + utf8_length(word) > chars) {
      lines.push_back(current);
      current.clear();
    }
    current += (current.empty() ? "" : " ") + word;
    start = end + 1;
  }
  if (!current.empty()) lines.push_back(current);
  const double y0 = cy - 8.0 * static_cast<double>(lines.size() - 1);
  for (std::size_t i = 0; i < lines.size(); ++i)
    text(cx, y0 + 16.0 * static_cast<double>(i), lines[i], 12, "middle", "#777777");
}

std::string Svg::finish() {
  out_ += "</svg>\n";
  return std::move(out_);
}

 void Svg::polygon(const std::vector<std::pair<double, double>>& points, const std::string& style) {
  out_ += "<polygon points=\"";
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (i) out_ += ' ';
    out_ += num(points[i].first) + "," + num(points[i].second);
  }
  out_ += "\"" + style + "/>\n";
}

LinearAxis LinearAxis::fit(double lo, double hi, int target_ticks, bool integers) {
  LinearAxis a;
  if (!(lo <= hi)) lo = hi = 0;
  if (hi - lo < 1e-12) {
    const double widen = std::max(std::fabs(lo) * 0.1, integers ? 1.0 : 1e-3);
    lo -= widen;
    hi += widen;
  }
  const double raw = (hi - lo) / std::max(1, target_ticks);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  a.step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
  if (integers) a.step = std::max(1.0, std::round(a.step));
  a.lo = std::floor(lo / a.step + 1e-9) * a.step;
  a.hi = std::ceil(hi / a.step - 1e-9) * a.step;
  for (double t = a.lo; t <= a.hi + a.step * 1e-6; t += a.step)
    a.ticks.push_back(std::fabs(t) < a.step * 1e-9 ? 0 : t);
  return a;
}

std::string LinearAxis::label(double v) const {
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return format_fixed(v, decimals);
}

LogAxis LogAxis::fit(double lo, double hi) {
  LogAxis a;
  if (!(lo > 0)) lo = 1;
  if (!(hi >= lo)) hi = lo;
  a.lo = lo / 1.35;
  a.hi = hi * 1.35;
  const int d0 = static_cast<int>(std::floor(std::log10(a.lo))), d1 = static_cast<int>(std::ceil(std::log10(a.hi)));
  const auto collect = [&](std::initializer_list<int> mantissas) {
    std::vector<double> t;
    for (int d = d0; d <= d1; ++d)
      for (const int m : mantissas) {
        const double v = m * std::pow(10.0, d);
        if (v >= a.lo && v <= a.hi) t.push_back(v);
      }
    return t;
  };
  const int decades = d1 - d0;
  a.ticks = decades > 3 ? collect({1}) : decades > 1 ? collect({1, 2, 5}) : collect({1, 2, 3, 4, 5, 6, 7, 8, 9});
  if (a.ticks.size() < 3) a.ticks = collect({1, 2, 3, 4, 5, 6, 7, 8, 9});
  if (a.ticks.size() > 9 && decades <= 1) a.ticks = collect({1, 2, 5});
  a.minor = collect({1, 2, 3, 4, 5, 6, 7, 8, 9});
  return a;
}

// Draws a linear y axis with grid lines and tick labels; returns the pixel mapping.
void draw_y_axis(Svg& svg, const Frame& f, const LinearAxis& axis, const std::string& title) {
  double widest = 0;
  for (const double t : axis.ticks) {
    const double y = f.y1 - (t - axis.lo) / (axis.hi - axis.lo) * (f.y1 - f.y0);
    svg.line(f.x0, y, f.x1, y, kGridColour);
    const std::string label = axis.label(t);
    svg.text(f.x0 - 6, y + 4, label, 10, "end");
    widest = std::max(widest, text_width(label, 10));
  }
  svg.line(f.x0, f.y0, f.x0, f.y1, kAxisColour);
  // Rotated: the baseline sits left of the tick labels, the text centred on the frame.
  const double x = std::max(14.0, f.x0 - 6 - widest - 8);
  svg.text(x, (f.y0 + f.y1) / 2, fit_text(title, 11, f.y1 - f.y0), 11, "middle", kAxisColour, false, -90);
}

std::tuple<double, double, std::string> LabelPlacer::place(double px, double py, const std::string& label,
                                                           double size) {
  const double w = text_width(label, size), h = size;
  struct Candidate {
    double x, y;  // text origin (baseline)
    const char* anchor;
  };
  const Candidate candidates[] = {
      {px + 8, py + h / 3, "start"}, {px - 8, py + h / 3, "end"}, {px, py - 9, "middle"},
      {px, py + 9 + h, "middle"},    {px + 6, py - 8, "start"},   {px - 6, py - 8, "end"},
      {px + 6, py + 8 + h, "start"}, {px - 6, py + 8 + h, "end"}, {px, py - 22, "middle"},
      {px, py + 22 + h, "middle"},
  };
  double best_cost = 1e300;
  Candidate best = candidates[0];
  Box best_box{};
  for (const Candidate& c : candidates) {
    const double x0 = std::string_view(c.anchor) == "start" ? c.x
                      : std::string_view(c.anchor) == "end" ? c.x - w
                                                            : c.x - w / 2;
    const Box box{x0, c.y - h, x0 + w, c.y + 2};
    double cost = 0;
    for (const Box& t : taken_) cost += t.overlap_area(box);
    const double outside = std::max(0.0, frame_.x0 - box.x0) + std::max(0.0, box.x1 - frame_.x1) +
                           std::max(0.0, frame_.y0 - box.y0) + std::max(0.0, box.y1 - frame_.y1);
    cost += outside * h * 4;
    // Leaving the picture itself is far worse than leaving the plot frame: a label cut
    // off by the canvas edge cannot be read at all.
    const double off_canvas = std::max(0.0, canvas_.x0 - box.x0) + std::max(0.0, box.x1 - canvas_.x1) +
                              std::max(0.0, canvas_.y0 - box.y0) + std::max(0.0, box.y1 - canvas_.y1);
    cost += off_canvas * h * 1000;
    if (cost < best_cost - 1e-9) {
      best_cost = cost;
      best = c;
      best_box = box;
    }
  }
  taken_.push_back(best_box);
  return {best.x, best.y, best.anchor};
}


namespace {

constexpr double kLegendRowHeight = 18;

struct LegendSlot {
  double x;
  int row;
  std::string label;
};

// Left to right, wrapping into rows before max_x; labels shortened to fit a row.
std::vector<LegendSlot> layout_legend(double x0, double max_x, const std::vector<LegendItem>& items) {
  std::vector<LegendSlot> slots;
  double x = x0;
  int row = 0;
  for (const LegendItem& item : items) {
    const std::string label = fit_text(item.label, 11, max_x - x0 - 44);
    const double w = 26 + text_width(label, 11) + 18;
    if (x > x0 && x + w - 18 > max_x) {
      x = x0;
      ++row;
    }
    slots.push_back({x, row, label});
    x += w;
  }
  return slots;
}

}  // namespace

double legend_height(double x0, double max_x, const std::vector<LegendItem>& items) {
  if (items.empty()) return 0;
  return kLegendRowHeight * (layout_legend(x0, max_x, items).back().row + 1);
}

double draw_legend(Svg& svg, double x0, double y0, double max_x, const std::vector<LegendItem>& items) {
  const std::vector<LegendSlot> slots = layout_legend(x0, max_x, items);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const LegendItem& item = items[i];
    const double x = slots[i].x, y = y0 + kLegendRowHeight * slots[i].row;
    switch (item.kind) {
      case LegendItem::Kind::kLine:
        svg.line(x, y - 4, x + 20, y - 4, item.colour, 2);
        break;
      case LegendItem::Kind::kDashedLine:
        svg.line(x, y - 4, x + 20, y - 4, item.colour, 1.5, "5,3");
        break;
      case LegendItem::Kind::kMarker:
        svg.marker(item.shape, x + 10, y - 4, 5, item.colour);
        break;
      case LegendItem::Kind::kSwatch:
        svg.rect(x + 3, y - 11, 14, 12, item.colour, "stroke=\"#999999\" stroke-width=\"0.5\"");
        break;
      case LegendItem::Kind::kLineMarker:
        svg.line(x, y - 4, x + 20, y - 4, item.colour, 2);
        svg.marker(item.shape, x + 10, y - 4, 4, item.colour);
        break;
    }
    svg.text(x + 26, y, slots[i].label, 11);
  }
  return y0 + legend_height(x0, max_x, items);
}

}  // namespace prunerec::prune::chart
