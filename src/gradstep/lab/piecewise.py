"""A piecewise-linear curve as a constant plus a sum of k sigmoids or ReLUs.

The lecture's target on x in [0, 1] is the constant 0.3 plus three hard sigmoids (each 0 before
its start, a straight ramp to its height, flat after). The model is

    y = c0 + sum_i c_i act(b_i + w_i x),  act = sigmoid or ReLU,

which is ``nn.SigmoidSum(1, k)`` / ``nn.ReLUSum(1, k)``: ``model[0]`` holds w_i (weight) and
b_i (bias), ``model[2]`` holds c_i (weight) and c0 (bias). Units are set by hand (``curve``)
or trained by the engine (``train``), always in float64.
"""

from __future__ import annotations

import math

import numpy as np

from gradstep import functional as F
from gradstep import nn, optim
from gradstep.tensor import Tensor

#: The target's constant, and its hard sigmoids as (start, end, height).
CONSTANT = 0.3
HARD_SIGMOIDS = ((0.1, 0.3, 0.6), (0.45, 0.55, -0.8), (0.7, 0.8, 0.4))
#: The training grid: 201 points, so every corner of the target (0.1, 0.3, ...) is on it.
X = np.linspace(0.0, 1.0, 201)
KINDS = ("sigmoid", "relu")
MIN_UNITS, MAX_UNITS = 1, 10
DEFAULT_UNITS = {"sigmoid": 3, "relu": 6}
DIVERGED = 1e12  # a loss or unit past this is a walk to infinity


def hard_sigmoid(x, start: float, end: float, height: float) -> np.ndarray:
    """0 before ``start``, a straight ramp to ``height`` at ``end``, flat after."""
    return height * np.clip((np.asarray(x, np.float64) - start) / (end - start), 0.0, 1.0)


def target_parts(x) -> list[np.ndarray]:
    """The target's hard sigmoids at ``x``, one array each (the constant not included)."""
    return [hard_sigmoid(x, *h) for h in HARD_SIGMOIDS]


def target(x) -> np.ndarray:
    """The lecture's piecewise-linear curve: ``CONSTANT`` plus the three hard sigmoids."""
    return CONSTANT + sum(target_parts(x))


def _check(kind: str, w, b, c) -> int:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    k = len(w)
    if not MIN_UNITS <= k <= MAX_UNITS:
        raise ValueError(f"the number of units must be {MIN_UNITS} to {MAX_UNITS}, got {k}")
    if len(b) != k or len(c) != k:
        raise ValueError(f"w, b and c must have one number per unit, got {k}, {len(b)}, {len(c)}")
    return k


def default_units(kind: str, k: int | None = None) -> dict:
    """Units that start the page with a visible but imperfect fit (a staircase of the target).

    Sigmoids: unit i rises over the i-th of k equal segments of [0, 1] (w = 4k, centred on the
    segment) by the target's rise across that segment. ReLUs: unit i bends at i/k (w = k, so
    the ramp gains 1 per segment) by the change of slope of the line through the target at the
    knots 0, 1/k, ..., 1. Neither grid of knots meets the target's corners, hence the misfit
    (with one or two units the staircase is too coarse to beat a constant: Train fixes that).

    Returns
    -------
    dict
        ``{"kind", "w", "b", "c", "c0"}`` with lists of k floats.
    """
    k = DEFAULT_UNITS[kind] if k is None else int(k)
    _check(kind, [0.0] * k, [0.0] * k, [0.0] * k)
    knots = np.linspace(0.0, 1.0, k + 1)
    heights = target(knots)
    if kind == "sigmoid":
        centres = (knots[:-1] + knots[1:]) / 2
        w = np.full(k, 4.0 * k)
        b, c = -w * centres, np.diff(heights)
    else:
        w = np.full(k, float(k))
        b = -np.arange(k, dtype=np.float64)
        rises = np.diff(heights)  # the rise per segment: the slope in units of the ramp
        c = np.diff(rises, prepend=0.0)

    def tidy(values):  # short numbers for the address bar; + 0.0 turns -0.0 into 0.0
        return [round(float(v), 4) + 0.0 for v in values]

    return {"kind": kind, "w": tidy(w), "b": tidy(b), "c": tidy(c), "c0": tidy(heights[:1])[0]}


def build_model(kind: str, w, b, c, c0: float):
    """``nn.SigmoidSum(1, k)`` or ``nn.ReLUSum(1, k)`` in float64 holding these units."""
    k = _check(kind, w, b, c)
    # .double(), not gs.default_dtype: that switch is process-wide, and the lab builds models
    # in several threads at once (one per training tab), which would flip it under each other
    model = (nn.SigmoidSum(1, k) if kind == "sigmoid" else nn.ReLUSum(1, k)).double()
    model[0].weight.data[...] = np.asarray(w, np.float64).reshape(k, 1)
    model[0].bias.data[...] = np.asarray(b, np.float64)
    model[2].weight.data[...] = np.asarray(c, np.float64).reshape(1, k)
    model[2].bias.data[...] = float(c0)
    return model


def units_of(model) -> dict:
    """The units (w, b, c, c0) a SigmoidSum/ReLUSum holds, as plain floats."""
    return {
        "w": model[0].weight.data[:, 0].tolist(),
        "b": model[0].bias.data.tolist(),
        "c": model[2].weight.data[0].tolist(),
        "c0": float(model[2].bias.data[0]),
    }


def _column(x) -> Tensor:
    return Tensor(np.asarray(x, np.float64).reshape(-1, 1), dtype=np.float64)


def curve(kind: str, w, b, c, c0: float, x=None) -> dict:
    """The model's curve and its parts at ``x`` (default: the training grid ``X``).

    Returns
    -------
    dict
        ``x``; ``constant`` (c0 at every x); ``parts``, one array c_i act(b_i + w_i x) per unit;
        ``sum``, the model's output; ``target``; and ``loss``, the MSE of the model against
        the target on ``X`` (always the training grid, so it is the number training lowers).
    """
    x = X if x is None else np.asarray(x, np.float64).ravel()
    model = build_model(kind, w, b, c, c0)
    # no ``no_grad()`` here: the engine's grad switch is process-wide, and a curve computed
    # for one tab must not switch recording off under another tab's training (a graph of a
    # few thousand numbers costs nothing)
    hidden = model[1](model[0](_column(x))).data  # act(b_i + w_i x), one column per unit
    total = model(_column(x)).data[:, 0]
    on_grid = total if x is X else model(_column(X)).data[:, 0]
    return {
        "x": x,
        "constant": np.full(x.shape, float(c0)),
        "parts": [float(ci) * hidden[:, i] for i, ci in enumerate(c)],
        "sum": total,
        "target": target(x),
        "loss": float(np.mean((on_grid - target(X)) ** 2)),
    }


def _finite(units: dict, loss: float) -> bool:
    values = [*units["w"], *units["b"], *units["c"], units["c0"], loss]
    return all(math.isfinite(v) and abs(v) < DIVERGED for v in values)


def train(kind: str, w, b, c, c0: float, lr: float, steps: int, every: int = 1):
    """Train the units by full-batch Adam on the target grid; yield as it goes.

    Adam, not plain gradient descent: w and b are tens where c is tenths, and a sigmoid's
    gradient vanishes where it is flat, so one SGD learning rate either crawls on w and b or
    throws c away. Adam's step is about ``lr`` for every parameter, so each unit visibly moves.
    Each update is one pass over all of ``X`` (no mini-batches: the same start, rate and step
    count always give the same units).

    Parameters
    ----------
    kind : "sigmoid" or "relu"
    w, b, c : sequences of k floats; c0 : float
        The start.
    lr : float
        Adam's learning rate (> 0).
    steps : int
        How many updates at most.
    every : int
        Yield after every ``every``-th update (and after the last).

    Yields
    ------
    dict
        ``{"step", "w", "b", "c", "c0", "loss", "status"}``: the units after ``step`` updates
        and the MSE at those units; status is "running", "done" (``steps`` reached) or
        "diverged" (the loss or a unit is not finite or past 1e12; units and loss are None).
    """
    if not lr > 0:
        raise ValueError(f"lr must be greater than 0, got {lr}")
    model = build_model(kind, w, b, c, c0)
    opt = optim.Adam(model.parameters(), lr=lr)
    xt, yt = _column(X), _column(target(X))
    loss = F.mse_loss(model(xt), yt)
    for step in range(1, steps + 1):
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss = F.mse_loss(model(xt), yt)  # at the new units: the loss the page shows with them
        units, value = units_of(model), float(loss.item())
        if not _finite(units, value):
            yield {"step": step, "w": None, "b": None, "c": None, "c0": None, "loss": None,
                   "status": "diverged"}  # fmt: skip
            return
        if step % every == 0 or step == steps:
            status = "done" if step == steps else "running"
            yield {"step": step, **units, "loss": value, "status": status}


def checkpoint(kind: str, w, b, c, c0: float, settings: dict) -> dict:
    """The units as a lab checkpoint: ``load_model`` rebuilds ``nn.mlp(1, [k], 1, kind)``."""
    from gradstep.lab.checkpoints import lab_checkpoint

    return lab_checkpoint(build_model(kind, w, b, c, c0), kind, "piecewise", settings)
