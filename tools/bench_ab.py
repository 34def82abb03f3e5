#!/usr/bin/env python3
"""Two prunerec builds (or two settings of one) side by side, interleaved.

Runs `prunerec bench --preset P --json` for arm A and arm B alternately (A B A B ...),
--reps pairs per preset, and prints per metric the median ratio B / A (pair by pair: each
B run against the A run right before it, so both see the same machine; DESIGN.md
section 7) with its spread. An arm is a binary, optionally with environment settings:

  tools/bench_ab.py --a /tmp/prunerec-old --b build/apps/prunerec
  tools/bench_ab.py --a build/apps/prunerec --a-env PRUNEREC_ISA=baseline --b build/apps/prunerec
  tools/bench_ab.py ... --presets small,medium --reps 5 --threads 2 --steps 10

Ratios are "B is faster" when > 1 for every row (times are inverted). Standard library
only; not part of CI.
"""
import argparse
import json
import os
import statistics
import subprocess

METRICS = [  # name, value from one JSON object, True when higher is better
    ("training step (ms)", lambda j: j["ms_per_step"], False),
    ("inference ms/user, batch 1", lambda j: j["infer_ms_per_user"]["1"], False),
    ("inference ms/user, batch 256", lambda j: j["infer_ms_per_user"]["256"], False),
    ("evaluation users/s", lambda j: j["eval_users_per_s"], True),
]


def run(binary, env_items, preset, args):
    cmd = [binary, "bench", "--preset", preset, "--threads", str(args.threads), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--json"]
    env = dict(os.environ)
    for item in env_items:
        key, _, value = item.partition("=")
        env[key] = value
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="binary of arm A")
    p.add_argument("--b", required=True, help="binary of arm B")
    p.add_argument("--a-env", action="append", default=[], help="KEY=VALUE for arm A (repeatable)")
    p.add_argument("--b-env", action="append", default=[], help="KEY=VALUE for arm B (repeatable)")
    p.add_argument("--presets", default="small,medium")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()
    print(f"A = {args.a} {' '.join(args.a_env)}\nB = {args.b} {' '.join(args.b_env)}")
    print(f"{args.reps} interleaved pairs per preset, {args.threads} threads, {args.steps} steps")
    for preset in [x.strip() for x in args.presets.split(",") if x.strip()]:
        pairs = []
        for _ in range(args.reps):
            a = run(args.a, args.a_env, preset, args)
            b = run(args.b, args.b_env, preset, args)
            pairs.append((a, b))
        print(f"\n{preset}: {'metric':<30} {'A median':>10} {'B median':>10} {'B faster by':>12} {'min..max':>14}")
        for name, get, higher_better in METRICS:
            ratios = [(get(b) / get(a)) if higher_better else (get(a) / get(b)) for a, b in pairs]
            am = statistics.median(get(a) for a, _ in pairs)
            bm = statistics.median(get(b) for _, b in pairs)
            print(f"{'':8}{name:<30} {am:>10.4g} {bm:>10.4g} {statistics.median(ratios):>11.3f}x "
                  f"{min(ratios):>6.3f}..{max(ratios):.3f}")


if __name__ == "__main__":
    main()
