#!/usr/bin/env python3
"""The gate sweep's table (tools/experiments.sh gate NAME): one row per run, the recipe
chosen for each size on validation NDCG@10 marked, test metrics beside it.

    python3 tools/gate_table.py ../runs/gate/ml1m [../runs/gate/beauty ...]

Reads each run folder's recipe.pbtxt, train.log and result.json (runs without a
result.json are listed as unfinished, with the last epoch their log shows). Writes
Markdown to stdout. Standard library only; never needed by the build or CI.
"""
import json
import pathlib
import re
import sys

SIZE_ORDER = ["xs", "s", "m", "l"]


def read_run(folder):
    recipe = (folder / "recipe.pbtxt").read_text()
    log = (folder / "train.log").read_text(errors="replace") if (folder / "train.log").exists() else ""
    size = re.search(r'name: "gate-(\w+)"', recipe).group(1)
    run = {
        "size": size,
        "point": folder.name[len(size) + 1:],
        "wd": re.search(r"weight_decay: ([\d.e-]+)", recipe).group(1),
        "dropout": re.search(r"dropout: ([\d.e-]+)", recipe).group(1),
        "lr": re.search(r"lr: ([\d.e-]+)", recipe).group(1),
    }
    m = re.search(r"([\d,]+) non-embedding parameters", log)
    run["params"] = int(m.group(1).replace(",", "")) if m else None
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log)
    run["wall"] = wall.group(1) if wall else None
    result = folder / "result.json"
    if result.exists() and result.stat().st_size > 0:
        r = json.loads(result.read_text())
        run.update(done=True, valid=r["valid"]["NDCG@10"], test_ndcg=r["test"]["metrics"]["NDCG@10"],
                   test_hr=r["test"]["metrics"]["HR@10"], epochs=f'{r["epochs_run"]} ({r["best_epoch"]})')
    else:
        epochs = re.findall(r"epoch (\d+)/(\d+): .*valid NDCG@10 ([\d.]+)", log)
        run.update(done=False, progress=f"epoch {epochs[-1][0]}/{epochs[-1][1]}" if epochs else "not started",
                   valid=max((float(e[2]) for e in epochs), default=None))
    return run


def table(sweep):
    runs = [read_run(f) for f in sorted(sweep.iterdir()) if (f / "recipe.pbtxt").exists()]
    best = {}
    for r in runs:
        if r["done"] and (r["size"] not in best or r["valid"] > best[r["size"]]["valid"]):
            best[r["size"]] = r
    runs.sort(key=lambda r: (SIZE_ORDER.index(r["size"]) if r["size"] in SIZE_ORDER else 99, r["point"]))
    out = [f"### {sweep.name}", "",
           "| size | non-emb. params | weight decay | dropout | lr | epochs (best) | valid NDCG@10 | test NDCG@10 | test HR@10 | wall time |",
           "|---|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for r in runs:
        params = f'{r["params"]:,}' if r["params"] else "?"
        if r["done"]:
            chosen = best.get(r["size"]) is r
            mark = "**" if chosen else ""
            out.append(f'| {r["size"]}{" (chosen)" if chosen else ""} | {params} | {r["wd"]} | {r["dropout"]} | {r["lr"]} | '
                       f'{r["epochs"]} | {mark}{r["valid"]:.4f}{mark} | {mark}{r["test_ndcg"]:.4f}{mark} | '
                       f'{r["test_hr"]:.4f} | {r["wall"] or "?"} |')
        else:
            valid = f'{r["valid"]:.4f} so far' if r["valid"] is not None else "-"
            out.append(f'| {r["size"]} | {params} | {r["wd"]} | {r["dropout"]} | {r["lr"]} | {r["progress"]}, unfinished | '
                       f'{valid} | - | - | - |')
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print("\n".join(table(pathlib.Path(p)) for p in sys.argv[1:]))


if __name__ == "__main__":
    main()
