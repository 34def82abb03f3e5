#!/usr/bin/env python3
"""The chart of docs/perf.md, "Large catalogues": from the JSON of one or more
`prunerec bench --preset catalogue ... --json` runs, an SVG of two panels against the
catalogue size (log scale): one user's top-10 latency (f32 and bf16 tables) beside the
time the f32 table takes to read at the bandwidth measured in the same run, and training
positions per second relative to the smallest catalogue of the same run.

    python3 tools/catalogue_chart.py docs/perf/catalogue-sampled-*.json > docs/perf/catalogue.svg

Plain SVG, no plotting library (CI never runs this; it needs only python3).
"""
import json
import math
import sys

W, H, PAD = 880, 360, 60
PANEL_W = (W - 3 * PAD) / 2
COLORS = {"f32": "#1f77b4", "bf16": "#ff7f0e", "bound": "#2ca02c", "train": "#9467bd"}


def load(paths):
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append(json.load(f))
    return runs


def scale(v, lo, hi, a, b, log=True):
    if log:
        v, lo, hi = math.log10(v), math.log10(lo), math.log10(hi)
    return a + (v - lo) / (hi - lo) * (b - a)


def panel(out, x0, title, xlim, ylim, ylog, ylabel, series, yticks):
    y0, y1 = H - PAD, PAD
    out.append(f'<text x="{x0 + PANEL_W / 2}" y="{PAD - 25}" text-anchor="middle" font-size="14">{title}</text>')
    out.append(f'<rect x="{x0}" y="{y1}" width="{PANEL_W}" height="{y0 - y1}" fill="none" stroke="#999"/>')
    for n in (1e4, 1e5, 1e6):
        if xlim[0] <= n <= xlim[1]:
            x = scale(n, *xlim, x0, x0 + PANEL_W)
            out.append(f'<line x1="{x}" y1="{y0}" x2="{x}" y2="{y0 + 5}" stroke="#333"/>')
            out.append(f'<text x="{x}" y="{y0 + 20}" text-anchor="middle" font-size="11">{int(n):,}</text>')
    out.append(f'<text x="{x0 + PANEL_W / 2}" y="{y0 + 40}" text-anchor="middle" font-size="12">items</text>')
    for t in yticks:
        y = scale(t, *ylim, y0, y1, ylog)
        out.append(f'<line x1="{x0 - 5}" y1="{y}" x2="{x0 + PANEL_W}" y2="{y}" stroke="#eee"/>')
        out.append(f'<text x="{x0 - 8}" y="{y + 4}" text-anchor="end" font-size="11">{t:g}</text>')
    out.append(f'<text transform="translate({x0 - 45},{(y0 + y1) / 2}) rotate(-90)" text-anchor="middle" '
               f'font-size="12">{ylabel}</text>')
    ly = y1 + 15
    for name, color, dash, points in series:
        pts = sorted(points)
        path = " ".join(f"{scale(x, *xlim, x0, x0 + PANEL_W):.1f},{scale(y, *ylim, y0, y1, ylog):.1f}" for x, y in pts)
        dashed = ' stroke-dasharray="5,4"' if dash else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dashed}/>')
        for x, y in pts:
            out.append(f'<circle cx="{scale(x, *xlim, x0, x0 + PANEL_W):.1f}" cy="{scale(y, *ylim, y0, y1, ylog):.1f}" '
                       f'r="3" fill="{color}"/>')
        out.append(f'<line x1="{x0 + 10}" y1="{ly}" x2="{x0 + 30}" y2="{ly}" stroke="{color}" stroke-width="2"{dashed}/>')
        out.append(f'<text x="{x0 + 35}" y="{ly + 4}" font-size="11">{name}</text>')
        ly += 16


def main(paths):
    runs = load(paths)
    # Per catalogue size, the median over runs that measured it.
    def median_of(key, fn=None):
        fn = fn or (lambda run, row: row[key])
        by_n = {}
        for run in runs:
            for row in run["rows"]:
                by_n.setdefault(row["items"], []).append(fn(run, row))
        return [(n, sorted(v)[len(v) // 2]) for n, v in by_n.items()]

    f32 = median_of("top10_ms_f32")
    bf16 = median_of("top10_ms_bf16")
    # The f32 table (items x width x 4 bytes) read at the run's measured bandwidth, in ms.
    bound = median_of("bound", lambda run, row: row["items"] * 64 * 4 / (run["read_bandwidth_gbps"] * 1e9) * 1e3)
    train = median_of("train", lambda run, row: row["train_positions_per_s"] / run["rows"][0]["train_positions_per_s"])
    ns = [n for n, _ in f32]
    xlim = (min(ns) / 1.5, max(ns) * 1.5)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    ys = [y for _, y in f32 + bf16 + bound]
    panel(out, PAD, "one user's top-10 (ms, log)", xlim, (min(ys) / 2, max(ys) * 2), True, "ms",
          [("f32 table", COLORS["f32"], False, f32), ("bf16 table", COLORS["bf16"], False, bf16),
           ("f32 table read at measured bandwidth", COLORS["bound"], True, bound)],
          [t for t in (0.01, 0.1, 1, 10, 100) if min(ys) / 2 <= t <= max(ys) * 2])
    panel(out, 2 * PAD + PANEL_W, "sampled training speed vs the smallest catalogue", xlim, (0, 1.5), False,
          "positions/s, relative", [("training positions/s", COLORS["train"], False, train),
                                    ("target: 0.5x", "#d62728", True, [(xlim[0] * 1.01, 0.5), (xlim[1] / 1.01, 0.5)])],
          [0, 0.5, 1, 1.5])
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: catalogue_chart.py BENCH.json [BENCH.json ...] > chart.svg")
    main(sys.argv[1:])
