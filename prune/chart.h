// A small kit for self-contained SVG charts: a document with a title, axes with "nice"
// ticks, markers, a label placer that avoids what is already drawn, and legends. It knows
// nothing of reports; prune/report_charts.cc draws the report's charts with it.
//
//   chart::Svg svg(800, 500, "Quality against size");
//   const chart::Frame f{78, 78, 380, 380};
//   chart::draw_y_axis(svg, f, chart::LinearAxis::fit(0.02, 0.06, 5), "test NDCG@10");
//   svg.marker(0, 120, 200, 5, "#0072B2");
//   std::string text = svg.finish();
//
// Text widths are estimated (chart::text_width), since the reader's font is unknown: no
// fonts are embedded and nothing is measured.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace prunerec::prune::chart {

inline constexpr const char* kAxisColour = "#333333";
inline constexpr const char* kGridColour = "#E5E5E5";

// Text for XML content and attribute values; control characters become spaces.
std::string xml_escape(std::string_view s);
// Coordinates with one decimal; never "nan" (callers drop non-finite points first).
std::string num(double v);
// Estimated width in pixels of `s` at `font_size` in a sans-serif font.
double text_width(std::string_view s, double font_size);
// Axis ticks of counts: 200k, 1M, 1.5M.
std::string tick_count(double v);

struct Box {
  double x0, y0, x1, y1;
  bool overlaps(const Box& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
  double overlap_area(const Box& o) const;
};

struct Frame {  // a plot area in pixels
  double x0, y0, x1, y1;
};

class Svg {
 public:
  Svg(double width, double height, const std::string& title);

  double width() const { return width_; }
  double height() const { return height_; }

  void raw(const std::string& s) { out_ += s; }
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double stroke_width = 1,
            const std::string& dash = "");
  void rect(double x, double y, double w, double h, const std::string& fill, const std::string& extra = "");
  void polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke, double stroke_width,
                const std::string& dash = "");
  // Marker shapes: 0 circle, 1 square, 2 triangle, 3 diamond, 4 cross.
  void marker(int shape, double x, double y, double r, const std::string& fill, const std::string& stroke = "#FFFFFF");
  void text(double x, double y, const std::string& s, double size, const std::string& anchor = "start",
            const std::string& fill = kAxisColour, bool bold = false, double rotate = 0);
  // A message in the middle of a box, wrapped to lines of at most `chars` characters.
  void centred_message(double cx, double cy, const std::string& message, std::size_t chars = 90);

  std::string finish();

 private:
  void polygon(const std::vector<std::pair<double, double>>& points, const std::string& style);

  double width_, height_;
  std::string out_;
};

// Linear axis with "nice" ticks covering [lo, hi].
struct LinearAxis {
  double lo = 0, hi = 1, step = 0.1;
  std::vector<double> ticks;

  static LinearAxis fit(double lo, double hi, int target_ticks, bool integers = false);
  std::string label(double v) const;
};

// Log10 axis for counts: ticks at 1-2-5 multiples (or every digit on a narrow range).
struct LogAxis {
  double lo = 1, hi = 10;  // domain
  std::vector<double> ticks, minor;

  static LogAxis fit(double lo, double hi);
};

// Draws a linear y axis with grid lines, tick labels and a rotated title.
void draw_y_axis(Svg& svg, const Frame& f, const LinearAxis& axis, const std::string& title);

// Places labels next to points, avoiding each other, the markers and the frame edges.
class LabelPlacer {
 public:
  explicit LabelPlacer(Frame frame) : frame_(frame) {}
  void add_obstacle(const Box& b) { taken_.push_back(b); }

  // Returns (x, y, anchor) for a label of the given text beside point (px, py).
  std::tuple<double, double, std::string> place(double px, double py, const std::string& label, double size);

 private:
  Frame frame_;
  std::vector<Box> taken_;
};

// Legend entries laid out left to right, wrapping into rows.
struct LegendItem {
  enum class Kind { kLine, kMarker, kSwatch, kLineMarker, kDashedLine } kind;
  std::string colour;
  int shape = 0;
  std::string label;
};

// Draws the legend from (x0, y), wrapping before max_x; returns the y below it.
double draw_legend(Svg& svg, double x0, double y, double max_x, const std::vector<LegendItem>& items);

}  // namespace prunerec::prune::chart
