#!/usr/bin/env python3
"""The output-loss comparison's table (tools/experiments.sh losses NAME): for each loss,
test NDCG@10 and HR@10 as mean and standard deviation over the seeds, the training wall
time, and per seed the paired-bootstrap interval of the difference to full softmax
(`prunerec compare` on the runs' per-user test ranks).

    python3 tools/loss_table.py PRUNEREC ../runs/losses/beauty

Writes Markdown to stdout. Standard library only; never needed by the build or CI.
"""
import json
import pathlib
import re
import statistics
import subprocess
import sys

KINDS = ["FULL", "SAMPLED", "GBCE"]


def wall_seconds(log):
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log)
    if not m:
        return None
    parts = [float(p) for p in m.group(1).split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def runs(folder):
    out = {}
    for run in sorted(folder.iterdir()):
        m = re.fullmatch(r"([A-Z]+)-s(\d+)", run.name)
        if not m or not (run / "test.json").exists():
            continue
        test = json.loads((run / "test.json").read_text())["metrics"]
        log = (run / "train.log").read_text(errors="replace")
        out[(m.group(1), int(m.group(2)))] = {
            "ndcg": test["NDCG@10"], "hr": test["HR@10"], "wall": wall_seconds(log), "dir": run}
    return out


def compare(prunerec, a, b):
    res = subprocess.run([prunerec, "compare", "--a", str(a / "test-ranks.tsv"), "--b", str(b / "test-ranks.tsv"),
                          "--metric", "NDCG@10", "--json"], check=True, capture_output=True, text=True)
    return json.loads(res.stdout)


def mean_sd(values):
    if len(values) < 2:
        return f"{values[0]:.4f}" if values else "-"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main():
    prunerec, folder = sys.argv[1], pathlib.Path(sys.argv[2])
    r = runs(folder)
    seeds = sorted({s for _, s in r})
    print(f"### {folder.name}\n")
    print("| loss | seeds | test NDCG@10 (mean ± sd) | test HR@10 | train wall time per run |")
    print("|---|---:|---:|---:|---:|")
    for k in KINDS:
        rows = [r[(k, s)] for s in seeds if (k, s) in r]
        if not rows:
            continue
        walls = [x["wall"] for x in rows if x["wall"]]
        wall = f"{statistics.mean(walls) / 60:.1f} min" if walls else "-"
        print(f"| {k.lower()} | {len(rows)} | {mean_sd([x['ndcg'] for x in rows])} | "
              f"{mean_sd([x['hr'] for x in rows])} | {wall} |")
    print("\nPaired bootstrap over users, same seed, NDCG@10 of the loss minus full softmax's:\n")
    print("| loss | seed | diff | 95% interval | p | reading |")
    print("|---|---:|---:|---|---:|---|")
    for k in KINDS[1:]:
        for s in seeds:
            if ("FULL", s) not in r or (k, s) not in r:
                continue
            c = compare(prunerec, r[("FULL", s)]["dir"], r[(k, s)]["dir"])
            lo, hi = c["ci95"]
            reading = "no difference" if lo <= 0 <= hi else ("better" if lo > 0 else "worse")
            print(f"| {k.lower()} | {s} | {c['diff']:+.4f} | [{lo:+.4f}, {hi:+.4f}] | {c['p_value']:.3f} | {reading} |")


if __name__ == "__main__":
    main()
