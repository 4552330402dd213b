"""Sweep speed: the same 40 trials serially, on a 2-process pool and on a 2-worker Dask
LocalCluster, in alternating rounds in one process; and each executor's cost per trial and per
sweep, measured with trials that do nothing.

    python benchmarks/sweep.py [--rounds 3] [--out benchmarks/sweep_results.json] [--tiny]

The trials are the homework-1-size regressor: 2,000 rows x 117 features, 117-64-32-1, Adam,
20 epochs, 10 seeds x 4 learning rates. Nothing here is asserted: tests run ``--tiny`` only to
keep the script working.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

EXECUTORS = {
    "serial": {"workers": 1},
    "process pool (2)": {"workers": 2},
    "Dask LocalCluster (2)": {"executor": "dask", "workers": 2},
}


def noop(config, seed):
    return {"value": float(config["i"])}


def make_table(path: str, rows: int, features: int) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, features))
    k = min(10, features)
    y = X[:, :k] @ rng.standard_normal(k) + 0.5 * rng.standard_normal(rows)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(features)])
    df["y"] = y
    df.to_csv(path, index=False)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None) -> dict:
    import gradstep as gs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "sweep_results.json"))
    p.add_argument("--tiny", action="store_true", help="a seconds-long run (tests)")
    args = p.parse_args(argv)
    rows, features, epochs, seeds, lrs = 2000, 117, 20, 10, [1e-3, 3e-3, 1e-2, 3e-2]
    noop_counts = (20, 200)
    if args.tiny:
        rows, features, epochs, seeds, lrs, noop_counts = 200, 8, 2, 2, [1e-3, 1e-2], (4, 12)
        args.rounds = 1
    work = tempfile.mkdtemp(prefix="gradstep-bench-sweep-")
    try:
        data = os.path.join(work, "table.csv")
        make_table(data, rows, features)
        task = gs.sweep.tabular(data, target="y", epochs=epochs, hidden=[64, 32])
        space = {"lr": lrs}
        n_trials = len(lrs) * seeds
        # warm-up, untimed: imports and the first compiled step happen here, not in round 1
        gs.sweep(task, space, seeds=[0], out=os.path.join(work, "warm"), workers=1)
        times = {name: [] for name in EXECUTORS}
        metrics = {}
        for r in range(args.rounds):
            order = list(EXECUTORS) if r % 2 == 0 else list(reversed(EXECUTORS))
            for name in order:
                out = os.path.join(work, f"s{r}-{len(times[name])}-{name[:4]}")
                result = {}

                def run(name=name, out=out, result=result):
                    result["r"] = gs.sweep(
                        task, space, seeds=range(seeds), out=out, **EXECUTORS[name]
                    )

                times[name].append(timed(run))
                metrics[name] = [row["metrics"] for row in result["r"].rows]
                shutil.rmtree(out)
        same = all(m == metrics["serial"] for m in metrics.values())
        overhead = {}
        for name, kw in EXECUTORS.items():
            walls = []
            for n in noop_counts:
                out = os.path.join(work, f"noop-{n}-{name[:4]}")
                walls.append(
                    timed(
                        lambda n=n, out=out, kw=kw: gs.sweep(
                            noop,
                            {"i": list(range(n))},
                            [0],
                            out=out,
                            metric="value",
                            mode="min",
                            **kw,
                        )
                    )
                )
                shutil.rmtree(out)
            per = (walls[1] - walls[0]) / (noop_counts[1] - noop_counts[0])
            overhead[name] = {
                "per_trial_ms": 1e3 * per,
                "fixed_s": walls[0] - noop_counts[0] * per,
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "trials": n_trials,
        "table": f"{rows} rows x {features} features, {features}-64-32-1, {epochs} epochs",
        "rounds": args.rounds,
        "seconds_median": med,
        "seconds_all": times,
        "speedup_vs_serial": {k: med["serial"] / v for k, v in med.items()},
        "metrics_identical": same,
        "overhead": overhead,
        "environment": {
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        },
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(table(report))
    return report


def table(r: dict) -> str:
    lines = [
        f"{r['trials']} trials ({r['table']}), median of {r['rounds']} alternating rounds; "
        f"metrics identical across executors: {r['metrics_identical']}",
        "",
        "| executor | wall s | speed-up vs serial | cost per trial | cost per sweep |",
        "|---|---|---|---|---|",
    ]
    for name, s in r["seconds_median"].items():
        o = r["overhead"][name]
        lines.append(
            f"| {name} | {s:.2f} | {r['speedup_vs_serial'][name]:.2f}x | "
            f"{o['per_trial_ms']:.2f} ms | {o['fixed_s']:.2f} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
