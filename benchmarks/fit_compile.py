"""fit's default step (compile=True: native where it pays) against the NumPy replay and the
native step, in one process, alternating blocks: training steps per second of the whole loop
(loader, step, update, callbacks), compilation excluded (it is reported apart).

    python benchmarks/fit_compile.py [--threads N] [--rounds 5] [--cases abc] [--tiny]

The cases are bench.py's (a), (b), (c) with fit's loop around them. Writes nothing; prints a
Markdown table (docs/performance.md shows one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gradstep as gs  # noqa: E402
from gradstep import nn, optim  # noqa: E402
from gradstep.data import DataLoader, TensorDataset  # noqa: E402

CASES = {
    "a": {"sizes": [1, 16, 1], "act": "sigmoid", "batch": 32, "loss": "mse", "opt": "sgd"},
    "b": {"sizes": [117, 64, 32, 1], "act": "relu", "batch": 256, "loss": "mse", "opt": "adam"},
    "c": {"sizes": [429, 512, 512, 512, 41], "act": "relu", "batch": 512, "loss": "ce"},
}
#: Steps per run: enough that the first two (traced, then checked against eager) are noise.
STEPS = {"a": 400, "b": 80, "c": 40}
MODES = ("replay", "native", True)


def run(case: str, mode, steps: int) -> tuple[float, float, str]:
    """Steps per second of one fit run, its compile seconds and what ran its steps."""
    c = CASES[case]
    rng = np.random.default_rng(0)
    rows = c["batch"] * steps
    X = rng.standard_normal((rows, c["sizes"][0])).astype(np.float32)
    if c["loss"] == "ce":
        y = rng.integers(0, c["sizes"][-1], rows)
    else:
        y = rng.standard_normal((rows, 1)).astype(np.float32)
    gs.manual_seed(0)
    model = nn.mlp(c["sizes"][0], c["sizes"][1:-1], c["sizes"][-1], c["act"])
    opt_cls = optim.SGD if c.get("opt") == "sgd" else optim.Adam
    opt = opt_cls(model.parameters(), lr=1e-3)
    loader = DataLoader(
        TensorDataset(X, y), c["batch"], shuffle=True, generator=np.random.default_rng(0)
    )
    loss_fn = nn.CrossEntropyLoss() if c["loss"] == "ce" else nn.MSELoss()
    t0 = time.perf_counter()
    h = gs.train.fit(model, loss_fn, opt, loader, epochs=1, verbose=0, compile=mode)
    seconds = time.perf_counter() - t0 - h.compile_seconds
    return steps / seconds, h.compile_seconds, h.compile_backend


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="BLAS threads (0: the default)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cases", default="abc")
    ap.add_argument("--tiny", action="store_true", help="a few steps (a smoke run)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(args.threads or None):
        for case in args.cases:
            steps = 4 if args.tiny else STEPS[case]
            backend = {}
            for mode in MODES:  # warm-up: compiles (or loads the disk cache)
                backend[mode] = run(case, mode, steps)[2]
            speed: dict = {m: [] for m in MODES}
            for r in range(args.rounds):
                for mode in MODES if r % 2 == 0 else MODES[::-1]:
                    speed[mode].append(run(case, mode, steps)[0])
            med = {m: float(np.median(v)) for m, v in speed.items()}
            rows.append(
                {
                    "case": case,
                    "threads": args.threads or "default",
                    "replay": med["replay"],
                    "native": med["native"],
                    "default": med[True],
                    "default_runs": backend[True],
                }
            )
    print(
        "| case | threads | replay | native | default (compile=True) | runs | default vs replay |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| ({r['case']}) | {r['threads']} | {r['replay']:,.0f} | {r['native']:,.0f} | "
            f"{r['default']:,.0f} | {r['default_runs']} | {r['default'] / r['replay']:.2f}x |"
        )
    return rows


if __name__ == "__main__":
    main()
