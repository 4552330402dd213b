"""Side-by-side training-step benchmarks: gradstep, PyTorch eager, hand-written NumPy.

    python benchmarks/bench.py                # full run: JSON + docs/performance.md
    python benchmarks/bench.py --tiny         # a smoke run on tiny sizes (CI runs this)

Systems alternate block by block in one process; each figure is the median of the timed
blocks after warm-up (min and max beside it). BLAS threads are pinned with threadpoolctl and
PyTorch's with torch.set_num_threads, at 1 and 2 threads. OPENBLAS_CORETYPE is left as the
environment has it, and reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from handwritten import HandMLP  # noqa: E402

CASES = {
    "a": dict(
        title="(a) lecture model 1->16 sigmoid->1, batch 32, MSE, SGD",
        sizes=[1, 16, 1],
        act="sigmoid",
        loss="mse",
        opt="sgd",
        batch=32,
        lr=0.01,
    ),
    "b": dict(
        title="(b) HW1 117->64->32->1 ReLU, batch 256, MSE, Adam",
        sizes=[117, 64, 32, 1],
        act="relu",
        loss="mse",
        opt="adam",
        batch=256,
        lr=1e-3,
    ),
    "c": dict(
        title="(c) HW2 429->512x3->41 ReLU, batch 512, CE, Adam",
        sizes=[429, 512, 512, 512, 41],
        act="relu",
        loss="ce",
        opt="adam",
        batch=512,
        lr=1e-3,
    ),
    "d": dict(
        title="(d) 784->2048->2048->10 ReLU, batch 1024, CE, SGD momentum",
        sizes=[784, 2048, 2048, 10],
        act="relu",
        loss="ce",
        opt="momentum",
        batch=1024,
        lr=1e-2,
    ),
}
TINY = {
    "a": dict(batch=8),
    "b": dict(sizes=[11, 8, 4, 1], batch=16),
    "c": dict(sizes=[13, 16, 16, 16, 5], batch=16),
    "d": dict(sizes=[20, 32, 32, 10], batch=16),
}


def environment() -> dict:
    import torch
    from threadpoolctl import threadpool_info

    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "blas": [
            {
                k: i.get(k)
                for k in ("internal_api", "version", "architecture", "num_threads", "filepath")
            }
            for i in threadpool_info()
        ],
        "torch_blas": torch.__config__.show().split("\n")[:3],
    }


def torch_optimizer(name: str, params, lr: float):
    import torch

    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9 if name == "momentum" else 0.0)


def torch_mlp(hand: HandMLP, act: str, dtype=None):
    """The PyTorch model with the hand-written model's weights."""
    import torch

    layers = []
    for k, (w, b) in enumerate(zip(hand.W, hand.b)):
        lin = torch.nn.Linear(w.shape[1], w.shape[0], dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if k < len(hand.W) - 1:
            layers.append(torch.nn.Sigmoid() if act == "sigmoid" else torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


SYSTEMS = ("gradstep", "compiled", "pytorch", "numpy")
# Timed beside them when they are there: JAX's jit (an optional benchmark dependency) and
# torch.compile (its first call compiles C++ for a minute per case, so not in --tiny runs).
OPTIONAL = ("native", "jax", "torch_compile")


def optional_systems(tiny: bool) -> tuple:
    out = []
    skip_compile = os.environ.get("GRADSTEP_BENCH_NO_TORCH_COMPILE") == "1"
    from gradstep.tracing.native import available

    if available():
        out.append("native")
    try:
        import jax  # noqa: F401

        out.append("jax")
    except ImportError:
        pass
    if not tiny and not skip_compile:
        out.append("torch_compile")
    return tuple(out)


def gradstep_step(case: dict, hand: HandMLP, x, y, seed: int, compiled):
    """gradstep's step for ``case`` with ``hand``'s weights: eager (False), or through
    gs.compile (True: the NumPy replay; "native": numba)."""
    import gradstep as gs
    from gradstep import nn, optim

    gs.manual_seed(seed)
    model = nn.mlp(case["sizes"][0], case["sizes"][1:-1], case["sizes"][-1], case["act"])
    model.load_state_dict(
        {f"{2 * k}.weight": w for k, w in enumerate(hand.W)}
        | {f"{2 * k}.bias": b for k, b in enumerate(hand.b)}
    )
    opt = {
        "sgd": lambda p: optim.SGD(p, lr=case["lr"]),
        "momentum": lambda p: optim.SGD(p, lr=case["lr"], momentum=0.9),
        "adam": lambda p: optim.Adam(p, lr=case["lr"]),
    }[case["opt"]](model.parameters())
    loss_fn = nn.MSELoss() if case["loss"] == "mse" else nn.CrossEntropyLoss()
    gx, gy = gs.tensor(x), gs.tensor(y)

    def step(xb, yb):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    if compiled:
        step = gs.compile(step, backend="native" if compiled == "native" else "replay")

    def run():
        return step(gx, gy)

    run.compiled = step  # its compile_seconds, for the table
    return run


def make_steps(case: dict, seed: int = 0, systems=SYSTEMS):
    """Callables doing one full training step each on the same data and weights; only the
    systems asked for are built and imported (so a memory measurement sees one of them)."""
    rng = np.random.default_rng(seed)
    sizes, batch = case["sizes"], case["batch"]
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    if case["loss"] == "mse":
        y = rng.standard_normal((batch, 1)).astype(np.float32)
    else:
        y = rng.integers(0, sizes[-1], batch)
    hand = HandMLP(sizes, case["act"], case["loss"], case["opt"], case["lr"], rng)

    steps = {"numpy": lambda: hand.step(x, y)} if "numpy" in systems else {}
    if "numpy_plain" in systems:  # the floor with the cheapest sigmoid, not gradstep's
        plain = HandMLP(sizes, case["act"], case["loss"], case["opt"], case["lr"], rng, plain=True)
        plain.load(hand.W, hand.b)
        steps["numpy_plain"] = lambda: plain.step(x, y)
    modes = {"gradstep": False, "compiled": True, "native": "native"}
    for system, mode in modes.items():
        if system in systems:
            steps[system] = gradstep_step(case, hand, x, y, seed, compiled=mode)
    if "jax" in systems:
        from jax_step import jax_step

        steps["jax"] = jax_step(case, [w.copy() for w in hand.W], [c.copy() for c in hand.b], x, y)
    if "torch_compile" in systems:
        steps["torch_compile"] = torch_step(case, hand, x, y, compiled=True)
    if "pytorch" in systems:
        steps["pytorch"] = torch_step(case, hand, x, y, compiled=False)
    return {k: steps[k] for k in systems}


def torch_step(case: dict, hand: HandMLP, x, y, compiled: bool):
    """PyTorch's step with ``hand``'s weights, eager or under ``torch.compile``."""
    import torch

    tmodel = torch_mlp(hand, case["act"])
    topt = torch_optimizer(case["opt"], tmodel.parameters(), case["lr"])
    tloss = torch.nn.MSELoss() if case["loss"] == "mse" else torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        topt.zero_grad()
        loss = tloss(tmodel(tx), ty)
        loss.backward()
        topt.step()

    return torch.compile(step) if compiled else step


def time_alternating(steps: dict, blocks: int, per_block: int, warmup: int) -> dict:
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in steps}
    for _ in range(blocks):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            for _ in range(per_block):
                fn()
            samples[name].append(per_block / (time.perf_counter() - t0))
    return {
        name: {"steps_per_s": statistics.median(v), "min": min(v), "max": max(v)}
        for name, v in samples.items()
    }


def per_block_for(case_key: str, tiny: bool) -> int:
    return 5 if tiny else {"a": 400, "b": 200, "c": 8, "d": 2}[case_key]


def bench_steps(tiny: bool, threads_list) -> list[dict]:
    import torch
    from threadpoolctl import threadpool_limits

    with contextlib.suppress(ImportError):  # numba's np.dot BLAS (SciPy's OpenBLAS): loaded
        import scipy.linalg.cython_blas  # noqa: F401  now, so threadpool_limits pins it too

    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            for key, case in CASES.items():
                case = {**case, **(TINY[key] if tiny else {})}
                # with a sigmoid, also time the floor with the cheapest one (see below_floor)
                extra = ("numpy_plain",) if case["act"] == "sigmoid" else ()
                steps = make_steps(case, systems=SYSTEMS + extra + optional_systems(tiny))
                r = time_alternating(
                    steps,
                    blocks=3 if tiny else 7,
                    per_block=per_block_for(key, tiny),
                    warmup=2 if tiny else 5,
                )
                rows.append(
                    {
                        "case": key,
                        "title": case["title"],
                        "threads": threads,
                        **{f"{s}_{k}": v for s, d in r.items() for k, v in d.items()},
                        **{
                            f"{s}_vs_{ref}": r[s]["steps_per_s"] / r[ref]["steps_per_s"]
                            for s in ("gradstep", "compiled")
                            for ref in ("pytorch", "numpy", *OPTIONAL)
                            if ref in r
                        },
                        **{
                            f"{s}_vs_numpy": r[s]["steps_per_s"] / r["numpy"]["steps_per_s"]
                            for s in OPTIONAL
                            if s in r
                        },
                        **(
                            {"native_vs_jax": r["native"]["steps_per_s"] / r["jax"]["steps_per_s"]}
                            if "native" in r and "jax" in r
                            else {}
                        ),
                    }
                )
                if "native" in steps:  # compiling (or loading numba's disk cache) the step
                    rows[-1]["native_compile_s"] = sum(steps["native"].compiled.compile_seconds)
                r = rows[-1]
                print(
                    f"{threads}T {case['title'][:40]:<40} vs PyTorch / hand NumPy: eager "
                    f"{r['gradstep_vs_pytorch']:.2f}x / {r['gradstep_vs_numpy']:.2f}x, "
                    f"compiled {r['compiled_vs_pytorch']:.2f}x / {r['compiled_vs_numpy']:.2f}x",
                    flush=True,
                )
    return rows


def bench_surface(tiny: bool) -> dict:
    """(e): the MSE of y = b + w x over a grid of (w, b): vectorized vs the engine per point."""
    import gradstep as gs
    import gradstep.functional as F
    from gradstep.lab import error_surface

    n_grid, n_points = (20, 50) if tiny else (400, 1000)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(n_points), rng.standard_normal(n_points)
    grid = np.linspace(-2, 2, n_grid)
    vectorized = float("inf")
    for _ in range(5):  # one call is a millisecond: a single timing was off by 2-4x run to run
        t0 = time.perf_counter()
        error_surface(x, y, grid, grid)
        vectorized = min(vectorized, time.perf_counter() - t0)
    xt, yt = gs.tensor(x), gs.tensor(y)
    sample = grid[:: max(1, n_grid // 20)]  # time a subset point by point, scale up
    t0 = time.perf_counter()
    with gs.no_grad():
        for b in sample:
            for w in sample:
                F.mse_loss(xt * float(w) + float(b), yt).item()
    per_point = (time.perf_counter() - t0) / len(sample) ** 2
    return {
        "grid": n_grid,
        "points": n_points,
        "vectorized_s": vectorized,
        "point_by_point_s": per_point * n_grid**2,
        "speedup": per_point * n_grid**2 / vectorized,
    }


def bench_fit(tiny: bool) -> dict:
    """(f): a whole fit of (b) for 5 epochs over 20,000 rows with loader and progress bar,
    against the same loop by hand with PyTorch's DataLoader and tqdm."""
    import torch
    from tqdm import tqdm

    import gradstep as gs
    from gradstep import nn, optim
    from gradstep.data import DataLoader, TensorDataset
    from gradstep.train import fit

    rows, epochs, batch = (512, 2, 64) if tiny else (20_000, 5, 256)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, 117)).astype(np.float32)
    Y = rng.standard_normal((rows, 1)).astype(np.float32)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - shared by both timed loops, closed below
    gs.manual_seed(0)
    model = nn.mlp(117, [64, 32], 1)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    with contextlib.redirect_stderr(devnull):
        t0 = time.perf_counter()
        fit(
            model,
            nn.MSELoss(),
            opt,
            DataLoader(TensorDataset(X, Y), batch, shuffle=True),
            epochs=epochs,
            verbose=1,
        )
        ours = time.perf_counter() - t0
    torch.manual_seed(0)
    tm = torch.nn.Sequential(
        torch.nn.Linear(117, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 1),
    )
    topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)),
        batch,
        shuffle=True,
    )
    t0 = time.perf_counter()
    for _ in range(epochs):
        bar = tqdm(loader, file=devnull)
        for xb, yb in bar:
            topt.zero_grad()
            loss = torch.nn.functional.mse_loss(tm(xb), yb)
            loss.backward()
            topt.step()
            bar.set_postfix(loss=f"{loss.item():.4g}", refresh=False)
    theirs = time.perf_counter() - t0
    devnull.close()
    return {
        "rows": rows,
        "epochs": epochs,
        "gradstep_s": ours,
        "pytorch_s": theirs,
        "speedup": theirs / ours,
    }


def peak_rss_mb(case_key: str, system: str) -> float:
    """Peak RSS of a fresh process that runs 3 steps of one system, in MiB.

    Read from VmHWM, not ru_maxrss: on Linux ru_maxrss survives execve, so a child would report
    the high-water mark of the forked copy of this (large) parent process."""
    import subprocess

    code = (
        f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r});"
        f"import bench; s = bench.make_steps(bench.CASES[{case_key!r}], systems=({system!r},))"
        f"[{system!r}]\nfor _ in range(3): s()\n"
        "print([ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-2]) / 1024  # "VmHWM:  123456 kB"


def targets(result: dict) -> list:
    """(target, what was measured, met?) for each of the issue's targets."""
    rows = {(r["case"], r["threads"]): r for r in result["steps"]}
    threads = sorted({t for _, t in rows})
    out = []

    def each(case, key, op, limit, label):
        vals = [rows[(case, t)][key] for t in threads if (case, t) in rows]
        shown = ", ".join(f"{v:.2f}x at {t}T" for v, t in zip(vals, threads))
        out.append((label, shown, all(op(v, limit) for v in vals)))

    ge = float.__ge__
    each("a", "gradstep_vs_pytorch", ge, 5.0, "(a) eager >= 5x PyTorch")
    each("b", "gradstep_vs_pytorch", ge, 2.3, "(b) eager >= 2.3x PyTorch")
    each("c", "gradstep_vs_numpy", ge, 0.95, "(c) eager within 5% of hand NumPy")
    each("d", "gradstep_vs_numpy", ge, 0.95, "(d) eager within 5% of hand NumPy")
    # The issue set 5x and 2.3x where its floor reached 9.3x and 2.9x PyTorch: the same
    # distance to the floor, for a machine whose floor cannot reach the ratios themselves.
    each("a", "gradstep_vs_numpy", ge, 5.0 / 9.3, "(a) eager, 5x read as 5/9.3 = 0.54x of NumPy")
    each(
        "b", "gradstep_vs_numpy", ge, 2.3 / 2.9, "(b) eager, 2.3x read as 2.3/2.9 = 0.79x of NumPy"
    )
    each("a", "compiled_vs_pytorch", ge, 7.0, "(a) compiled >= 7x PyTorch")
    each("b", "compiled_vs_pytorch", ge, 2.6, "(b) compiled >= 2.6x PyTorch")
    each("a", "compiled_vs_numpy", ge, 1 / 1.3, "(a) compiled within 1.3x of hand NumPy")
    each("b", "compiled_vs_numpy", ge, 1 / 1.1, "(b) compiled within 1.1x of hand NumPy")
    if any("native_vs_numpy" in r for r in rows.values()):  # issue #19's targets
        each("a", "native_vs_numpy", ge, 5.0, "(a) native >= 5x hand NumPy")
        each("b", "native_vs_numpy", ge, 1.3, "(b) native >= 1.3x hand NumPy")
        each("c", "native_vs_numpy", ge, 0.98, "(c) native >= 0.98x hand NumPy")
        each("d", "native_vs_numpy", ge, 0.98, "(d) native >= 0.98x hand NumPy")
    if any("native_vs_jax" in r for r in rows.values()):
        each("a", "native_vs_jax", ge, 3.0, "(a) native >= 3x JAX jit")
        each("b", "native_vs_jax", ge, 1.1, "(b) native >= 1.1x JAX jit")
    for key, m in (result.get("memory") or {}).items():
        out.append(
            (
                f"({key}) peak RSS <= PyTorch's",
                f"eager {m['gradstep']:.0f}, compiled {m['compiled']:.0f}, "
                f"PyTorch {m['pytorch']:.0f} MiB",
                max(m["gradstep"], m["compiled"]) <= m["pytorch"],
            )
        )
    s, f = result["surface"], result["fit"]
    out.append(("(e) >= 10x the engine point by point", f"{s['speedup']:.0f}x", s["speedup"] >= 10))
    out.append(("(f) fit >= PyTorch's loop by hand", f"{f['speedup']:.2f}x", f["speedup"] >= 1))
    return out


def below_floor(result: dict) -> str:
    """Which PyTorch-ratio targets the hand-written floor itself misses in this run."""
    goals = {"a": (5.0, 7.0), "b": (2.3, 2.6)}
    out = []
    for r in result["steps"]:
        if r["case"] not in goals:
            continue
        floor = r["numpy_steps_per_s"] / r["pytorch_steps_per_s"]
        eager, compiled = goals[r["case"]]
        missed = [f"{g}x" for g in (eager, compiled) if floor < g]
        where = f"({r['case']}) at {r['threads']}T: the floor is {floor:.2f}x PyTorch"
        if missed:
            out.append(f"{where}, below the {' and '.join(missed)} targets")
            if "numpy_plain_steps_per_s" in r:
                plain = r["numpy_plain_steps_per_s"] / r["pytorch_steps_per_s"]
                out[-1] += f" ({plain:.2f}x with the cheapest sigmoid, see below)"
        else:
            out.append(
                f"{where}, and gradstep reaches {r['gradstep_vs_pytorch']:.2f}x eager, "
                f"{r['compiled_vs_pytorch']:.2f}x compiled"
            )
    return "; ".join(out) + ". A target the floor misses is out of reach for any NumPy engine."


def plain_sigmoid_note(result: dict) -> str:
    """What the floor with the cheapest sigmoid says about the (a) targets in this run."""
    rows = [r for r in result["steps"] if "numpy_plain_steps_per_s" in r]
    if not rows:
        return ""
    parts, beyond = [], True
    for r in rows:
        plain = r["numpy_plain_steps_per_s"]
        need = 5 * r["pytorch_steps_per_s"] / plain  # the speed 5x takes, relative to it
        compiled = r["compiled_steps_per_s"] / plain
        beyond = beyond and need > compiled
        parts.append(
            f"{plain / r['pytorch_steps_per_s']:.2f}x PyTorch at {r['threads']}T, where 5x "
            f"would take an engine at {need:.2f}x of that floor's speed (gradstep's compiled "
            f"step is at {compiled:.2f}x of it, eager at "
            f"{r['gradstep_steps_per_s'] / plain:.2f}x)"
        )
    text = (
        "gradstep keeps the sign-split sigmoid (finite and precise in both tails, the "
        "design's rule). The cheapest one, 1 / (1 + exp(-x)) in four calls, which overflows "
        "inside and flushes the negative tail to 0, makes the floor at (a) " + "; ".join(parts)
    )
    if beyond:
        text += ". So even with it, 5x would take less overhead than a compiled replay has"
    return text + "."


def write_markdown(result: dict, path: str) -> None:
    env = result["environment"]
    blas = "; ".join(
        f"{b['internal_api']} {b.get('version')} ({b.get('architecture')})" for b in env["blas"]
    )
    lines = [
        "# Performance",
        "",
        f"Made by `{result['command']}` on {result['date']}.",
        "",
        f"CPU: {env['cpu']} ({env['cores']} cores). NumPy {env['numpy']}, PyTorch "
        f"{env['torch']}, Python {env['python']}. BLAS: {blas}. "
        f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE'] or 'unset'}.",
        "",
        "Steps per second of one full training step (forward, loss, backward, update; "
        "float32), median of alternating blocks (min-max in brackets). Ratios above 1 mean "
        "gradstep is faster.",
        "",
        "| case | threads | gradstep eager | gradstep compiled | PyTorch | hand NumPy "
        "| eager vs PyTorch / NumPy | compiled vs PyTorch / NumPy |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def fmt(r, s):
        return f"{r[s + '_steps_per_s']:.0f} [{r[s + '_min']:.0f}-{r[s + '_max']:.0f}]"

    for r in result["steps"]:
        lines.append(
            f"| {r['title']} | {r['threads']} | {fmt(r, 'gradstep')} | {fmt(r, 'compiled')} "
            f"| {fmt(r, 'pytorch')} | {fmt(r, 'numpy')} "
            f"| {r['gradstep_vs_pytorch']:.2f}x / {r['gradstep_vs_numpy']:.2f}x "
            f"| {r['compiled_vs_pytorch']:.2f}x / {r['compiled_vs_numpy']:.2f}x |"
        )
    others = [r for r in result["steps"] if any(f"{o}_steps_per_s" in r for o in OPTIONAL)]
    if others:
        lines += [
            "",
            "Beside them in the same blocks: gradstep's native step (`gs.compile(step, "
            "backend='native')`, the whole step compiled with numba, timed after its "
            "compilation), JAX's `jax.jit` of the same step (the same model, loss and "
            "PyTorch's optimizer formulas, checked equal to PyTorch in float64) and "
            "`torch.compile` of PyTorch's step (timed after its compilation); the last columns "
            "are the native step against the hand-written NumPy floor and against JAX:",
            "",
            "| case | threads | gradstep native | JAX jit | torch.compile "
            "| native vs NumPy floor | native vs JAX | native compile (s) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in others:
            cells = [fmt(r, o) if f"{o}_steps_per_s" in r else "-" for o in OPTIONAL]
            ratios = [
                f"{r[k]:.2f}x" if k in r else "-" for k in ("native_vs_numpy", "native_vs_jax")
            ]
            secs = f"{r['native_compile_s']:.2f}" if "native_compile_s" in r else "-"
            lines.append(
                f"| ({r['case']}) | {r['threads']} | {' | '.join(cells)} | {' | '.join(ratios)} "
                f"| {secs} |"
            )
    other = result.get("steps_coretype_other")
    if other:
        lines += [
            "",
            "The same steps at 1 thread in a second process with "
            f"OPENBLAS_CORETYPE={other['setting']} (BLAS there: {other['blas']}):",
            "",
            "| case | gradstep compiled | gradstep native | PyTorch | hand NumPy | JAX jit "
            "| NumPy floor vs PyTorch |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in other["steps"]:
            jax_cell = fmt(r, "jax") if "jax_steps_per_s" in r else "-"
            native_cell = fmt(r, "native") if "native_steps_per_s" in r else "-"
            lines.append(
                f"| ({r['case']}) | {fmt(r, 'compiled')} | {native_cell} | {fmt(r, 'pytorch')} | "
                f"{fmt(r, 'numpy')} | {jax_cell} | "
                f"{r['numpy_steps_per_s'] / r['pytorch_steps_per_s']:.2f}x |"
            )
    s, f = result["surface"], result["fit"]
    lines += [
        "",
        f"(e) error surface, {s['grid']}x{s['grid']} grid, {s['points']} points: "
        f"vectorized {s['vectorized_s'] * 1e3:.2f} ms, the engine point by point "
        f"{s['point_by_point_s']:.1f} s (estimated from a sampled sub-grid): "
        f"{s['speedup']:.0f}x.",
        "",
        f"(f) fit of (b), {f['epochs']} epochs over {f['rows']} rows with loader and "
        f"progress bar: gradstep {f['gradstep_s']:.2f} s, PyTorch DataLoader + tqdm by hand "
        f"{f['pytorch_s']:.2f} s: {f['speedup']:.2f}x.",
    ]
    if result.get("memory"):
        lines += [
            "",
            "Peak RSS (MiB) of a fresh process running 3 steps:",
            "",
            "| case | gradstep eager | gradstep compiled | PyTorch | hand NumPy |",
            "|---|---|---|---|---|",
        ]
        for key, m in result["memory"].items():
            lines.append(
                f"| ({key}) | {m['gradstep']:.0f} | {m['compiled']:.0f} | {m['pytorch']:.0f} "
                f"| {m['numpy']:.0f} |"
            )
    floors = ", ".join(
        f"({r['case']}) {r['numpy_steps_per_s'] / r['pytorch_steps_per_s']:.2f}x at {r['threads']}T"
        for r in result["steps"]
    )
    lines += ["", "## The issue's targets, as measured in this run", ""]
    lines += ["| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else 'no'} |" for t, m, ok in targets(result)]
    lines += [
        "",
        "## What the limit is here",
        "",
        "The floor is a hand-written NumPy step as the issue specifies it "
        "(`benchmarks/handwritten.py`): manual forward and backward, parameters, gradients and "
        "optimizer state in flat preallocated buffers (one SGD update is two NumPy calls for "
        "all parameters, Adam thirteen), activations and deltas in buffers kept per batch "
        "size, `out=` everywhere, scalars as 0-d arrays made once, checked equal to PyTorch "
        "in float64. It computes gradstep's function operation for operation (the "
        "sign-split sigmoid, the pairwise sum of the loss, the stable log-softmax, Adam in "
        "PyTorch's order), and a test checks that in float32 it gives gradstep's bits, eager "
        "and compiled: the ratio between the two is overhead only. Its own speed relative to "
        "PyTorch, measured in this "
        f"run: {floors}.",
        "",
        "The issue's ratios to PyTorch for (a) and (b) (eager >= 5x and 2.3x, compiled >= 7x "
        "and 2.6x) come from a machine where the issue's own floor reached 9.3x and 2.9x "
        "PyTorch. On "
        f"this one: {below_floor(result)} (Which part of the difference is the CPU and which "
        "the BLAS kernel cannot be told from here: (a) and (b) are bound by per-call "
        "overhead, not by the GEMM kernel.) What can always be asked is the distance to the "
        "floor, which the issue also sets: compiled (a) within 1.3x and (b) within 1.1x of "
        "it, eager (c) and (d) within 5%. For eager (a) and (b) it sets none, so the table "
        "also reads the 5x and 2.3x targets as the distance to the floor they meant where "
        "they were set (5/9.3 and 2.3/2.9 of the floor; for compiled, 7/9.3 and 2.6/2.9 are "
        f"looser than the 1.3x and 1.1x the issue states). {plain_sigmoid_note(result)}",
        "",
        "Where the rest of the time goes: eager (a) spends it in per-op Python work: building "
        "a Tensor and a node per op (about 0.55 us each, measured with an op that does "
        "nothing), the argument checks and module calls around them, and the backward "
        "pass's bookkeeping (a heap of waiting nodes in creation order, which replaced a "
        "separate topological sort, and the gradients handed to the leaves). "
        "`gradstep.compile` removes that: its replay is one generated Python function calling "
        "the ops' own forward/backward methods (bit-identical to eager). The optimizer keeps "
        "each parameter group in one flat buffer, as the floor does, so one update is 2 calls "
        "(SGD) or 13 (Adam) for all parameters; a replay also skips the argument checks its "
        "signature fixes (docs/compile.md). What remains above the floor in compiled (a): "
        "each op is a Python method call around the same NumPy calls (0.1-0.7 us per op), "
        "the backward's bookkeeping and the copy of the gradients into the optimizer's "
        "buffer. The native step (`backend='native'`) removes the rest: the whole step is "
        "one numba function over one work buffer, the gradients written straight into the "
        "optimizer's buffer, small matrix products as loops; at (a) what is left is the "
        "Python call around it (~3 us: the signature check, the optimizer's scalars, the "
        "result Tensor) and 512 scalar `exp` calls of the sigmoid (~2 us; numba here has no "
        "vectorized exp). At (c) and (d) every system waits on the same GEMMs.",
    ]
    kept = os.path.join(os.path.dirname(path), "performance-tables.md")
    if os.path.exists(kept):  # hand-measured sections this script does not make
        with open(kept) as fh:
            lines += ["", fh.read().rstrip()]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def coretype_other_steps(tiny: bool) -> dict:
    """The step table at 1 thread from a child process with the other OPENBLAS_CORETYPE
    setting: unset if this process has it, Haswell if it has not (OpenBLAS reads the variable
    when it loads, so it cannot change inside this process)."""
    import subprocess
    import tempfile

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if not os.environ.get("OPENBLAS_CORETYPE"):
        env["OPENBLAS_CORETYPE"] = "Haswell"
    env["GRADSTEP_BENCH_NO_TORCH_COMPILE"] = "1"  # its compile minutes add no BLAS kernel news
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "other.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--steps-only", "--threads", "1"]
        subprocess.run([*cmd, "--out", out, *(["--tiny"] if tiny else [])], env=env, check=True)
        with open(out) as fh:
            child = json.load(fh)
    blas = "; ".join(
        f"{b['internal_api']} {b.get('architecture')}" for b in child["environment"]["blas"]
    )
    setting = env.get("OPENBLAS_CORETYPE", "unset")
    return {"setting": setting, "blas": blas, "steps": child["steps"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke run, no docs update")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--memory", action="store_true", help="also measure peak RSS for (c), (d)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results.json)")
    p.add_argument("--steps-only", action="store_true", help="only the step table (JSON)")
    p.add_argument(
        "--coretype-row",
        action="store_true",
        help="also time the steps at 1 thread in a process with the other OPENBLAS_CORETYPE "
        "(unset if set here, Haswell if unset)",
    )
    args = p.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    if args.steps_only:
        result = {
            "environment": environment(),
            "steps": bench_steps(args.tiny, [int(t) for t in args.threads.split(",")]),
        }
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
        return result
    result = {
        "command": "python benchmarks/bench.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "environment": environment(),
        "steps": bench_steps(args.tiny, [int(t) for t in args.threads.split(",")]),
        "surface": bench_surface(args.tiny),
        "fit": bench_fit(args.tiny),
    }
    if args.coretype_row:
        result["steps_coretype_other"] = coretype_other_steps(args.tiny)
    if args.memory:
        result["memory"] = {k: {s: peak_rss_mb(k, s) for s in SYSTEMS} for k in ("c", "d")}
    result["peak_rss_mb_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = args.out or os.path.join(here, "results-tiny.json" if args.tiny else "results.json")
    with open(out, "w") as fh:
        json.dump(result, fh, indent=2)
    if not args.tiny:
        write_markdown(result, os.path.join(here, "..", "docs", "performance.md"))
    print(
        f"(e) surface {result['surface']['speedup']:.0f}x faster than point by point; "
        f"(f) fit {result['fit']['speedup']:.2f}x PyTorch's loop; JSON: {out}"
    )
    return result


if __name__ == "__main__":
    main()
