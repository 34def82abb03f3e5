#!/usr/bin/env python3
"""prunerec against the PyTorch yardstick, interleaved.

Runs `prunerec bench --preset P --json` and the reference
`torch_recommender.py --config P` alternately (A B A B ...), --reps times per preset, with
the same thread count, and prints per metric the median ratio prunerec / reference and its
spread (min..max over the pairs). Ratios are taken pair by pair (each prunerec run against
the reference run right after it), because this machine kind drifts by ~20% over minutes
(DESIGN.md section 7) and neighbours in time see the same machine.

Metrics (">1 is better for prunerec" is stated per row):
  training positions/s          prunerec / reference
  step ms vs GEMM floor         prunerec's step / prunerec's GEMM-only floor (no reference)
  step ms                       reference / prunerec
  inference ms/user, batch 1    reference / prunerec
  inference ms/user, batch 256  reference / prunerec
  eval users/s                  prunerec's full-ranking evaluation users/s over the
                                reference's batch-256 inference users/s (1000 / ms_per_user)
  peak RSS                      prunerec / reference (< 1 is better)
and the 1-thread vs N-thread speed-up of a MEDIUM training step for prunerec (one extra
`prunerec bench --preset medium --threads 1` per rep, interleaved with the N-thread runs).

Needs Debian's python3-torch for the reference (/usr/bin/python3 by default); the script
itself uses the standard library only. Not part of CI.

  tools/bench_vs_torch.py                                 # SMALL and MEDIUM, 5 reps, 2 threads
  tools/bench_vs_torch.py --presets small --reps 3 --json-out /tmp/cmp.json
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="pairs per preset (default 5)")
    p.add_argument("--threads", type=int, default=2, help="threads for both programs (default 2)")
    p.add_argument("--presets", default="small,medium", help="comma list of small, medium (default both)")
    p.add_argument("--prunerec", default=os.path.join(REPO, "build", "apps", "prunerec"),
                   help="prunerec binary (default build/apps/prunerec)")
    p.add_argument("--reference", default=os.path.join(REPO, "..", "shared", "reference", "torch_recommender.py"),
                   help="torch_recommender.py (default ../shared/reference/torch_recommender.py)")
    p.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch for the reference")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per run, both programs (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up steps per run, both programs (default 3)")
    p.add_argument("--no-speedup", action="store_true", help="skip the 1-thread MEDIUM runs")
    p.add_argument("--reference-args", default="",
                   help="extra arguments for the reference, e.g. '--max-foreign 1.0' on a busy machine")
    p.add_argument("--json-out", help="write every raw run and the summary here")
    return p.parse_args(argv)


def run_json(cmd, env=None):
    """Runs cmd, returns the JSON object of the last line of stdout that parses as one."""
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"bench_vs_torch: {' '.join(cmd)} exited with {proc.returncode}")
    for line in reversed(proc.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            obj = json.loads(line)
            obj["_wall_s"] = round(time.monotonic() - t0, 1)
            return obj
    raise SystemExit(f"bench_vs_torch: no JSON line in the output of {' '.join(cmd)}:\n{proc.stdout}")


def prunerec_cmd(args, preset, threads, training_only=False):
    cmd = [args.prunerec, "bench", "--preset", preset, "--threads", str(threads), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--json"]
    if training_only:  # the speed-up runs read ms_per_step only: keep the rest short
        cmd += ["--infer-reps", "1", "--infer-seconds", "0", "--eval-users", "256", "--eval-reps", "1", "--floor-reps", "1"]
    return cmd


def reference_cmd(args, preset):
    return ([args.python, args.reference, "--config", preset.upper(), "--threads", str(args.threads),
             "--steps", str(args.steps), "--warmup", str(args.warmup)] + args.reference_args.split())


# Each metric: (name, function(prunerec_json, reference_json) -> ratio or None, how to read it).
METRICS = [
    ("training positions/s", lambda p, r: p["positions_per_s"] / r["train_positions_per_s"], "prunerec / torch, >1 better"),
    ("step ms", lambda p, r: r["train_ms_per_step"] / p["ms_per_step"], "torch / prunerec, >1 better"),
    ("step ms / GEMM floor", lambda p, r: p["ms_per_step"] / p["gemm_floor_ms"], "prunerec only, 1 = GEMM-bound"),
    ("infer ms/user, batch 1", lambda p, r: r["infer"]["1"]["ms_per_user"] / p["infer_ms_per_user"]["1"],
     "torch / prunerec, >1 better"),
    ("infer ms/user, batch 256", lambda p, r: r["infer"]["256"]["ms_per_user"] / p["infer_ms_per_user"]["256"],
     "torch / prunerec, >1 better"),
    ("eval users/s vs torch infer@256", lambda p, r: p["eval_users_per_s"] / (1000.0 / r["infer"]["256"]["ms_per_user"]),
     "prunerec eval / torch top-10, >1 better"),
    ("peak RSS", lambda p, r: p["peak_rss_mb"] / r["rss_peak_mb"], "prunerec / torch, <1 better"),
]


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return dict(median=statistics.median(values), min=min(values), max=max(values), n=len(values))


def fmt(s, digits=2):
    if s is None:
        return "n/a"
    return f"{s['median']:.{digits}f}  ({s['min']:.{digits}f}..{s['max']:.{digits}f}, n={s['n']})"


def main():
    args = parse_args()
    presets = [p.strip().lower() for p in args.presets.split(",") if p.strip()]
    for p in presets:
        if p not in ("small", "medium"):
            raise SystemExit(f"bench_vs_torch: unknown preset '{p}' (small, medium)")
    if not os.access(args.prunerec, os.X_OK):
        raise SystemExit(f"bench_vs_torch: {args.prunerec} is not an executable (build it, or pass --prunerec)")
    if not os.path.exists(args.reference):
        raise SystemExit(f"bench_vs_torch: reference not found at {args.reference} (pass --reference)")

    raw = {p: {"prunerec": [], "reference": [], "prunerec_1thread": []} for p in presets}
    for rep in range(args.reps):
        for p in presets:
            a = run_json(prunerec_cmd(args, p, args.threads))
            raw[p]["prunerec"].append(a)
            b = run_json(reference_cmd(args, p))
            raw[p]["reference"].append(b)
            msg = (f"[{rep + 1}/{args.reps}] {p}: prunerec {a['ms_per_step']:.1f} ms/step, "
                   f"torch {b['train_ms_per_step']:.1f} ms/step")
            if p == "medium" and not args.no_speedup and args.threads != 1:
                c = run_json(prunerec_cmd(args, p, 1, training_only=True))
                raw[p]["prunerec_1thread"].append(c)
                msg += f", prunerec 1 thread {c['ms_per_step']:.1f} ms/step"
            print(msg, file=sys.stderr, flush=True)

    summary = {}
    lines = [f"prunerec vs torch_recommender.py, {args.threads} threads, {args.reps} interleaved pairs per preset",
             "median ratio (min..max over pairs)", ""]
    for p in presets:
        pr, ref = raw[p]["prunerec"], raw[p]["reference"]
        summary[p] = {}
        lines.append(f"{p.upper()}")
        for name, f, how in METRICS:
            s = spread([f(a, b) for a, b in zip(pr, ref)])
            summary[p][name] = s
            lines.append(f"  {name:34s} {fmt(s):38s} {how}")
        medians = {
            "prunerec ms/step": spread([a["ms_per_step"] for a in pr]),
            "torch ms/step": spread([b["train_ms_per_step"] for b in ref]),
            "prunerec GEMM floor ms": spread([a["gemm_floor_ms"] for a in pr]),
            "prunerec peak RSS MB": spread([a["peak_rss_mb"] for a in pr]),
            "torch peak RSS MB": spread([b["rss_peak_mb"] for b in ref]),
        }
        summary[p]["absolute"] = medians
        for name, s in medians.items():
            lines.append(f"    {name:32s} {fmt(s, 1)}")
        guard = [b.get("guard_ok", True) for b in ref]
        if not all(guard):
            lines.append(f"    note: the reference's load guard failed in {guard.count(False)} of {len(guard)} runs "
                         "(the machine was busy; its numbers include disturbed steps)")
        one = raw[p]["prunerec_1thread"]
        if one:
            s = spread([c["ms_per_step"] / a["ms_per_step"] for a, c in zip(pr, one)])
            summary[p]["speedup_1_to_n_threads"] = s
            lines.append(f"  {'speed-up 1 -> ' + str(args.threads) + ' threads (step)':34s} {fmt(s):38s} "
                         "prunerec 1-thread ms / N-thread ms")
        lines.append("")
    print("\n".join(lines))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"args": vars(args), "summary": summary, "runs": raw}, f, indent=1)
        print(f"raw runs and summary written to {args.json_out}", file=sys.stderr)


if __name__ == "__main__":
    main()
