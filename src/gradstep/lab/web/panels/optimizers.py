"""/optimizers: "Optimizers on a narrow valley" - GD, Momentum, Adagrad, RMSProp and Adam from
one start on the raw-degree Seattle error surface of y = b + w x (Hessian eigenvalues about 0.35
and 570), each at its own learning rate, for one budget of full-batch steps.

Every number comes from ``gradstep.lab.valley`` (``optimizer_paths`` and ``summary``) and
``gradstep.lab.surface.error_surface``; this module parses, calls and serialises."""

from __future__ import annotations

import asyncio
import functools
import math

import numpy as np

from gradstep.lab.web.common import (
    BadRequestError,
    choice,
    download,
    finite_or_none,
    integer,
    number,
)

#: Query key -> the library's label (default_settings' keys), in the page's order.
LABELS = {
    "gd": "GD",
    "momentum": "Momentum",
    "adagrad": "Adagrad",
    "rmsprop": "RMSProp",
    "adam": "Adam",
}
MAX_STEPS = 10_000  # five paths of 10,000 steps take about 2 s on a 2-core machine
MAX_START = 100.0  # |w0|, |b0|: the valley's minimum is near (0.92, 1.2)
FULL_HEAD = 200  # the first steps of a path are sent in full (GD's zig-zag lives there)
MAX_POINTS = 1000  # after them, every k-th point so that a path sends at most about this many
GRID = 120  # contour resolution (GRID x GRID losses)
WHICH = ("best", *LABELS)
ALLOWED = ("steps", "w0", "b0", "optimizers", "which", *(f"lr_{k}" for k in LABELS))


@functools.lru_cache(maxsize=1)
def _data():
    """The lecture's (x, y) pairs in raw degrees and the library's default settings."""
    from gradstep.lab import valley

    x, y = valley.seattle_pairs()
    return x, y, valley.default_settings(x)


def defaults() -> dict:
    """The page's starting values, as the inputs show them: the library's learning rates
    (exact, as ``repr``), its start and its budget."""
    from gradstep.lab import valley

    _, _, settings = _data()
    lrs = {f"lr_{k}": repr(settings[label][1]["lr"]) for k, label in LABELS.items()}
    w0, b0 = (f"{v:g}" for v in valley.START)
    return {**lrs, "steps": valley.STEPS, "w0": w0, "b0": b0}


def parse(params) -> dict:
    """The run's settings from a query string: a clear 400 for each bad or unknown parameter."""
    unknown = sorted(set(params) - set(ALLOWED))
    if unknown:
        raise BadRequestError(
            f"unknown parameter {unknown[0]!r}; the parameters are {', '.join(ALLOWED)}"
        )
    d = defaults()
    keys = list(LABELS)
    raw = params.get("optimizers")
    if raw:
        keys = [k.strip() for k in raw.split(",")]
        for k in keys:
            if k not in LABELS:
                raise BadRequestError(
                    f"optimizers: unknown optimizer {k!r}; expected some of {', '.join(LABELS)}"
                )
    lrs = {k: number(params, f"lr_{k}", float(d[f"lr_{k}"]), positive=True) for k in LABELS}
    return {
        "steps": integer(params, "steps", d["steps"], low=1, high=MAX_STEPS),
        "start": (
            number(params, "w0", d["w0"], low=-MAX_START, high=MAX_START),
            number(params, "b0", d["b0"], low=-MAX_START, high=MAX_START),
        ),
        "keys": list(dict.fromkeys(keys)),
        "lrs": lrs,
        "which": choice(params, "which", WHICH, "best"),
    }


def settings_for(run: dict, keys=None) -> dict:
    """``optimizer_paths``' settings {label: (optimizer, kwargs)} for the chosen optimizers: the
    library's defaults (Momentum's 0.9 included) with the page's learning rates."""
    _, _, base = _data()
    out = {}
    for k in run["keys"] if keys is None else keys:
        name, kwargs = base[LABELS[k]]
        out[LABELS[k]] = (name, {**kwargs, "lr": run["lrs"][k]})
    return out


def compute(run: dict, keys=None) -> dict:
    """The library's result for these settings (paths included)."""
    from gradstep.lab.valley import optimizer_paths

    x, y, _ = _data()
    return optimizer_paths(x, y, run["start"], run["steps"], settings_for(run, keys))


def _floats(values) -> list:
    """JSON has no inf or NaN: such a value becomes null."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, np.float64)]


def sample(n: int) -> np.ndarray:
    """Indices of a path of ``n`` points sent to the page: the first FULL_HEAD in full, then
    every k-th, and the last (the readouts use the full path on the server)."""
    k = max(1, -(-(n - FULL_HEAD) // MAX_POINTS))
    idx = np.concatenate([np.arange(min(n, FULL_HEAD)), np.arange(0, n, k), [n - 1]])
    return np.unique(idx)


def window(result: dict) -> tuple[tuple[float, float], tuple[float, float]]:
    """(w, b) limits holding the start, the minimum and every path that did not diverge."""
    pts = [np.array([result["start"], result["least_squares"]], np.float64)]
    pts += [r["path"][:, :2] for r in result["settings"].values() if not r["diverged"]]
    pts = np.concatenate(pts)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = np.maximum((hi - lo) * 0.08, 0.5)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def serialise(result: dict) -> dict:
    """The library's summary plus, per optimizer, its path sampled for drawing (w, b and the
    excess loss L - L*, floored at rounding level for the log axis) and the contour grid."""
    from gradstep.lab.surface import error_surface
    from gradstep.lab.valley import summary

    x, y, _ = _data()
    out = summary(result)
    out["least_squares"] = list(out["least_squares"])
    floor = result["min_loss"] * 1e-15  # an excess below this is rounding
    for label, r in result["settings"].items():
        p = r["path"]
        idx = sample(len(p))
        with np.errstate(invalid="ignore"):
            excess = np.maximum(p[idx, 2] - result["min_loss"], floor)
        readout = out["settings"][label]
        for key in ("final_loss", "max_loss", "final_distance"):  # inf or NaN when diverged
            readout[key] = finite_or_none(readout[key])
        readout.update(
            step=idx.tolist(), w=_floats(p[idx, 0]), b=_floats(p[idx, 1]), excess=_floats(excess)
        )
    (wl, wh), (bl, bh) = window(result)
    w, b = np.linspace(wl, wh, GRID), np.linspace(bl, bh, GRID)
    z = error_surface(x, y, w, b)
    out["grid"] = {
        "w": w.tolist(),
        "b": b.tolist(),
        "log10_loss": np.log10(np.maximum(z, 1e-12)).round(4).tolist(),
    }
    out["labels"] = {k: LABELS[k] for k in result_keys(result)}
    return out


def result_keys(result: dict) -> list[str]:
    by_label = {v: k for k, v in LABELS.items()}
    return [by_label[label] for label in result["settings"]]


def best_label(result: dict) -> str:
    """The optimizer whose end point the model export takes for ``which=best``: the one that
    settles within the tolerance soonest (the docs' rule), else the lowest final loss; a
    diverged one never."""
    runs = {k: v for k, v in result["settings"].items() if not v["diverged"]}
    if not runs:
        raise BadRequestError("every chosen optimizer diverged; there is no model to export")
    settled = {k: v["settled_at"] for k, v in runs.items() if v["settled_at"] is not None}
    if settled:
        return min(settled, key=settled.get)
    return min(runs, key=lambda k: runs[k]["final_loss"])


def checkpoint(w: float, b: float, settings: dict) -> dict:
    """The line y = b + w x (x in raw degrees) as a float64 Linear(1, 1)."""
    import gradstep as gs
    from gradstep.lab.checkpoints import lab_checkpoint
    from gradstep.nn import mlp

    with gs.default_dtype(np.float64):
        model = mlp(1, [], 1)
    model[0].weight.data[...] = w
    model[0].bias.data[...] = b
    return lab_checkpoint(model, "relu", "optimizers", settings)


def export(run: dict, params: dict) -> tuple[dict, str]:
    """The chosen optimizer's end point as a checkpoint, and the label it came from."""
    which = run["which"]
    result = compute(run, None if which == "best" else [which])
    label = best_label(result) if which == "best" else LABELS[which]
    r = result["settings"][label]
    if r["diverged"]:
        raise BadRequestError(f"{label} diverged; there is no model to export")
    w, b = r["path"][-1, :2]
    return checkpoint(float(w), float(b), {**params, "exported": label}), label


def routes(lab):
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def page(request):
        return lab.page(
            "optimizers", defaults=defaults(), labels=LABELS, max_steps=MAX_STEPS, limit=MAX_START
        )

    @lab.api
    async def run(request):
        settings = parse(request.query_params)
        # about 0.7 s for the default budget: off the event loop (the engine lock is held)
        result = await asyncio.to_thread(compute, settings)
        return JSONResponse(await asyncio.to_thread(serialise, result))

    @lab.api
    async def model(request):
        settings = parse(request.query_params)
        ckpt, label = await asyncio.to_thread(export, settings, dict(request.query_params))
        return download(ckpt, f"optimizers-{label.lower()}.safetensors")

    return [
        Route("/optimizers", page),
        Route("/api/optimizers/run", run),
        Route("/api/optimizers/model", model),
    ]
