"""/piecewise: a piecewise-linear target as a constant plus k sigmoids or ReLUs, set by hand
(each unit's w, b, c on sliders) or trained by the engine while the page watches the units."""

from __future__ import annotations

import numpy as np

from gradstep.lab import piecewise as lib
from gradstep.lab.web.common import (
    BadRequestError,
    choice,
    download,
    event_stream,
    integer,
    number,
    numbers,
)

MAX_STEPS = 100_000
STREAM_RATE = 30  # updates per second on the page ...
STREAM_EVERY = 3  # ... of 3 Adam steps each: the units move fast enough to watch, not blur
LIMIT = 1e6  # |unit| past this is no curve a person can read (and sigmoid(1e6 x) is a step)
UNITS = ("kind", "w", "b", "c", "c0")
DRAWN_DIGITS = 6  # the plot's arrays are rounded (a fifth of the bytes); numbers shown are not


def _only(params, allowed) -> None:
    """Refuse a parameter this endpoint does not take: a typo is named, not ignored."""
    for name in params:
        if name not in allowed:
            raise BadRequestError(
                f"unknown parameter {name!r}; this endpoint takes {', '.join(allowed)}"
            )


def _bounded(name: str, values: list[float]) -> list[float]:
    for v in values:
        if abs(v) > LIMIT:
            raise BadRequestError(f"{name} must be between -{LIMIT:g} and {LIMIT:g}, got {v:g}")
    return values


def _units(params) -> tuple:
    """(kind, w, b, c, c0) from a query string; k is the length of w."""
    kind = choice(params, "kind", lib.KINDS, "sigmoid")
    w = _bounded("w", numbers(params, "w"))
    if not lib.MIN_UNITS <= len(w) <= lib.MAX_UNITS:
        raise BadRequestError(
            f"w must have {lib.MIN_UNITS} to {lib.MAX_UNITS} numbers (one per unit), got {len(w)}"
        )
    b = _bounded("b", numbers(params, "b", length=len(w)))
    c = _bounded("c", numbers(params, "c", length=len(w)))
    c0 = number(params, "c0", low=-LIMIT, high=LIMIT)
    return kind, w, b, c, c0


def _lr(params) -> float:
    return number(params, "lr", positive=True, high=10)


def _drawing(kind, w, b, c, c0) -> dict:
    """The curve's arrays for the plot (rounded) and its loss (exact)."""
    cv = lib.curve(kind, w, b, c, c0)

    def arr(a):
        return np.round(a, DRAWN_DIGITS).tolist()

    return {
        "constant": float(c0),
        "parts": [arr(p) for p in cv["parts"]],
        "sum": arr(cv["sum"]),
        "loss": cv["loss"],
    }


def _with_curves(kind, points):
    """The training's points, each with the curve at its units for the page to draw."""
    for p in points:
        if p["w"] is not None:
            p["curve"] = _drawing(kind, p["w"], p["b"], p["c"], p["c0"])
        yield p


def routes(lab):
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def page(request):
        return lab.page("piecewise", kinds=lib.KINDS, max_units=lib.MAX_UNITS)

    @lab.api
    async def defaults(request):
        q = request.query_params
        _only(q, ("kind", "units"))
        kind = choice(q, "kind", lib.KINDS, "sigmoid")
        k = integer(q, "units", lib.DEFAULT_UNITS[kind], low=lib.MIN_UNITS, high=lib.MAX_UNITS)
        return JSONResponse(lib.default_units(kind, k))

    @lab.api
    async def curve(request):
        q = request.query_params
        _only(q, UNITS)
        units = _units(q)
        return JSONResponse(
            {
                **dict(zip(UNITS, units)),  # as the server read them: the page takes these
                "x": lib.X.tolist(),
                "target": lib.target(lib.X).tolist(),
                **_drawing(*units),
            }
        )

    @lab.api
    async def train(request):  # a fixed number of updates at once (and the page's input check)
        q = request.query_params
        _only(q, (*UNITS, "lr", "steps"))
        units, lr = _units(q), _lr(q)
        steps = integer(q, "steps", 1, low=1, high=MAX_STEPS)
        return JSONResponse({"points": list(lib.train(*units, lr, steps))})

    @lab.api
    async def run(request):
        q = request.query_params
        _only(q, (*UNITS, "lr"))
        units, lr = _units(q), _lr(q)
        points = lib.train(*units, lr, MAX_STEPS, every=STREAM_EVERY)
        return event_stream(request, _with_curves(units[0], points), STREAM_RATE)

    @lab.api
    async def model(request):
        q = request.query_params
        _only(q, (*UNITS, "lr"))
        units = _units(q)
        return download(lib.checkpoint(*units, dict(q)), "piecewise.safetensors")

    return [
        Route("/piecewise", page),
        Route("/api/piecewise/defaults", defaults),
        Route("/api/piecewise/curve", curve),
        Route("/api/piecewise/train", train),
        Route("/api/piecewise/run", run),
        Route("/api/piecewise/model", model),
    ]
