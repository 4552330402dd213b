"""/critical: "When the gradient is small" - the course's HW2-2 on y = sin(3x). Train a
1 -> hidden -> 1 network, then minimise |g|^2 until the gradient is small (or start at a known
saddle point), and ask the exact Hessian what kind of point it is; escape a saddle along the
eigenvector of its most negative eigenvalue. The lecture report's two other views of the same
network: its loss landscape (two weights, or Li et al.'s two random filter-normalised
directions) and the homework's minimum-ratio study over many seeds.

Every number comes from ``gradstep.lab.critical_points`` (the search, the inspection, the
escape), ``gradstep.lab.network_hessian``, ``gradstep.lab.landscape`` and
``gradstep.lab.hw2_2``; this module parses, calls and serialises."""

from __future__ import annotations

import copy
import functools

import numpy as np

from gradstep.lab.web.common import (
    BadRequestError,
    choice,
    download,
    event_stream,
    finite_or_none,
    integer,
    json_body,
    number,
)

#: 128 hidden units (the homework's width) is 385 parameters: an exact Hessian takes about
#: 0.2 s and one step of the |g|^2 phase about 0.6 s on a 2-core machine. Far below the
#: library's 4,000-parameter limit for a full eigendecomposition.
MAX_HIDDEN = 128
MAX_EPOCHS = 5000
MAX_GN_STEPS = 200  # steps of the |g|^2 phase; one Hessian each
MAX_SEED = 2**32 - 1
MAX_T = 10.0
MAX_SPAN = 10.0
MAX_STUDY_SEEDS = 30  # 0.5 to 5 s each at 128 units: half a minute to a few minutes
#: 31 x 31 grid points: the batched landscape takes about 0.05 s at 128 hidden units
RESOLUTION = 31
PLANES = ("weights", "random")
MAX_NAME = 100  # characters of a weight's name
ACTIVATIONS = ("relu", "tanh", "sigmoid")
STARTS = ("trained", "saddle")
REPORTS = 100  # progress events of the Adam phase, at most
DEFAULTS = {
    "hidden": 16,
    "activation": "relu",
    "seed": 0,
    "start": "trained",
    "epochs": 200,
    "lr": 0.01,
    "grad_tol": 1e-3,
    "max_steps": 50,
    "tol": 1e-6,
    "t": 1.0,
    "plane": "weights",
    "first": "",  # empty: the unit with the largest |output weight| (see default_weights)
    "second": "",
    "span": 1.0,
    "study_seeds": 6,
}
ALLOWED = (*DEFAULTS, "run")

MEANINGS = {
    "saddle point": "The gradient is (nearly) zero, but {n_negative} direction(s) curve down: "
    "a saddle point, not a minimum. Gradient descent stalls here; a step along the eigenvector "
    "of the most negative eigenvalue leaves it (Escape).",
    "local minimum": "The gradient is (nearly) zero and every direction curves up: a local "
    "minimum. No small step lowers the loss.",
    "local maximum": "The gradient is (nearly) zero and every direction curves down: a local "
    "maximum.",
    "not a critical point": "|g| = {grad_norm:.3g} is not below the gradient tolerance "
    "{grad_tol:g}: this is not a critical point yet (Run to minimise |g|^2). The eigenvalues "
    "still show the curvature here.",
    "flat (undetermined)": "No direction curves down, but {n_zero} eigenvalue(s) are zero within "
    "the tolerance: second order cannot decide; higher-order terms do.",
}
GAUSS_NEWTON = (
    "The course's Gauss-Newton ratio is {gn:.3f} against {exact:.3f} exact: its per-layer "
    "matrices (2/N) J^T J leave out the network's own second derivatives and are positive "
    "semi-definite, so they cannot see the {n_negative} negative eigenvalue(s), and they count as "
    "positive whatever rounds above 0 (the exact count uses the tolerance)."
)


@functools.lru_cache(maxsize=1)
def _data() -> tuple[np.ndarray, np.ndarray]:
    from gradstep.lab import hw2_2

    return hw2_2.data()


def _check_known(params, allowed=ALLOWED) -> None:
    extra = sorted(set(params) - set(allowed))
    if extra:
        raise BadRequestError(
            f"unknown parameter {extra[0]!r}; the parameters are {', '.join(allowed)}"
        )


def settings(params) -> dict:
    """The panel's settings in ``params`` (a query string or JSON object), each checked with
    a message that names it."""
    _check_known(params)
    d = DEFAULTS
    return {
        "hidden": integer(params, "hidden", d["hidden"], low=1, high=MAX_HIDDEN),
        "activation": choice(params, "activation", ACTIVATIONS, d["activation"]),
        "seed": integer(params, "seed", d["seed"], low=0, high=MAX_SEED),
        "start": choice(params, "start", STARTS, d["start"]),
        "epochs": integer(params, "epochs", d["epochs"], low=0, high=MAX_EPOCHS),
        "lr": number(params, "lr", d["lr"], high=1.0, positive=True),
        "grad_tol": number(params, "grad_tol", d["grad_tol"], high=1.0, positive=True),
        "max_steps": integer(params, "max_steps", d["max_steps"], low=0, high=MAX_GN_STEPS),
        "tol": number(params, "tol", d["tol"], high=0.1, positive=True),
        "t": number(params, "t", d["t"], low=-MAX_T, high=MAX_T),
        "plane": choice(params, "plane", PLANES, d["plane"]),
        "first": _name(params, "first"),
        "second": _name(params, "second"),
        "span": number(params, "span", d["span"], high=MAX_SPAN, positive=True),
        "study_seeds": integer(params, "study_seeds", d["study_seeds"], 1, MAX_STUDY_SEEDS),
    }


def _name(params, key: str) -> str:
    """A weight's name as typed (``gradstep.lab.landscape`` reads it), or "" for the default."""
    raw = params.get(key) or ""
    if not isinstance(raw, str) or len(raw) > MAX_NAME:
        raise BadRequestError(f"{key} must be a weight's name like '0.weight[3, 0]', got {raw!r}")
    return raw.strip()


def network(s: dict):
    """The settings' network, float64: ``hw2_2.network``'s (seed, then ``nn.mlp``) with the
    chosen activation; at ``hw2_2.origin_saddle`` for the "saddle" start."""
    import gradstep as gs
    from gradstep import nn
    from gradstep.lab import hw2_2

    gs.manual_seed(s["seed"])
    model = nn.mlp(1, [s["hidden"]], 1, s["activation"]).double()
    if s["start"] == "saddle":
        hw2_2.origin_saddle(model, *_data())
    return model


class Run:
    """One network the page works on: its model (trained, stepped along u, ...) and the
    settings that made it."""

    def __init__(self, model, s: dict):
        self.model = model
        self.arch = {k: s[k] for k in ("hidden", "activation", "seed", "start")}


def _run(lab, params, s: dict) -> tuple[str, Run]:
    """The run the request names, or a new one from the settings (the current weights)."""
    if params.get("run"):
        return params["run"], lab.runs.get(params["run"])
    run = Run(network(s), s)
    return lab.runs.add(run), run


def _loss_fn():
    from gradstep import nn

    return nn.MSELoss()


def inspect(model, s: dict) -> dict:
    """``inspect_critical_point`` at the model's weights, as JSON, with the verdict's meaning."""
    from gradstep.lab.critical_points import inspect_critical_point

    r = inspect_critical_point(model, _loss_fn(), *_data(), tol=s["tol"], grad_tol=s["grad_tol"])
    eig = r["eigenvalues"]
    out = {k: r[k] for k in ("parameters", "n_positive", "n_negative", "n_zero", "verdict", "tol")}
    out.update(
        loss=r["loss"],
        grad_norm=r["grad_norm"],
        grad_tol=s["grad_tol"],
        eigenvalues=eig.tolist(),
        zero=float(s["tol"] * np.max(np.abs(eig))),
        minimum_ratio=r["minimum_ratio"],
        minimum_ratio_gauss_newton=r["minimum_ratio_gauss_newton"],
    )
    out["meaning"] = MEANINGS[r["verdict"]].format(**out)
    out["gauss_newton"] = GAUSS_NEWTON.format(
        gn=out["minimum_ratio_gauss_newton"], exact=out["minimum_ratio"], **out
    )
    return out


def escape(model, s: dict) -> dict:
    """The loss along theta + t u, t in [-2|t|, 2|t|], u the eigenvector of the most negative
    eigenvalue (``escape_direction``), beside the second-order model; or why there is none."""
    from gradstep.lab.critical_points import escape_direction

    r = inspect(model, s)
    if r["n_negative"] == 0:
        return {
            "negative": False,
            "smallest": r["eigenvalues"][0],
            "zero": r["zero"],
            "message": f"No negative eigenvalue (the smallest is {r['eigenvalues'][0]:.3g}, "
            f"zero within {r['zero']:.3g}): no direction curves down, so there is nothing to "
            "escape along.",
        }
    span = 2 * abs(s["t"]) or 1.0
    e = escape_direction(model, _loss_fn(), *_data(), ts=np.linspace(0.0, span, 21))
    return {
        "negative": True,
        "eigenvalue": e["eigenvalue"],
        "t": _both_sides(-e["t"], e["t"]),
        "loss": _both_sides(e["loss_minus"], e["loss_plus"]),
        "model": _both_sides(e["model_minus"], e["model_plus"]),
        "step": s["t"],
    }


def _both_sides(minus: np.ndarray, plus: np.ndarray) -> list[float]:
    """Values at -t (t descending, 0 left out) then at +t (t ascending): one curve over t."""
    return np.concatenate([minus[:0:-1], plus]).tolist()


def step_along(model, s: dict):
    """A copy of ``model`` moved to theta + t u (u as in :func:`escape`); its loss and |g|."""
    from gradstep.lab.critical_points import escape_direction
    from gradstep.lab.network_hessian import LossFunction

    if s["t"] == 0:
        raise BadRequestError("t must not be 0: the step is t times the eigenvector u")
    if inspect(model, s)["n_negative"] == 0:
        raise BadRequestError("no negative eigenvalue here: there is no direction to escape along")
    X, y = _data()
    u = escape_direction(model, _loss_fn(), X, y, ts=[0.0])["direction"]
    f = LossFunction(model, _loss_fn(), X, y, freeze=False)
    f.move_to(f.theta + s["t"] * u)
    moved = copy.deepcopy(model)
    f.write_back(moved)
    return moved, {"loss": f.value(), "grad_norm": float(np.linalg.norm(f.grad()))}


def default_weights(model) -> tuple[str, str]:
    """The input and output weight of the hidden unit the output leans on most (the largest
    |output weight|): the lecture report's choice, a plane where the loss moves."""
    unit = int(np.argmax(np.abs(model[2].weight.data[0])))
    return f"0.weight[{unit}, 0]", f"2.weight[0, {unit}]"


def landscape(model, s: dict) -> dict:
    """The loss over a ``RESOLUTION``-square grid through the model's weights: two named weights
    each within +/- span of its value (``weight_landscape``), or span times Li et al.'s two
    random filter-normalised directions drawn with the panel's seed (``direction_landscape``).
    A bad weight name is a 400 that says which of first and second it was."""
    from gradstep.lab import landscape as ls

    loss_fn, (X, y) = _loss_fn(), _data()
    if s["plane"] == "random":
        d1, d2 = ls.filter_normalized_directions(model, seed=s["seed"])
        grid = s["span"] * np.linspace(-1.0, 1.0, RESOLUTION)
        grid[RESOLUTION // 2] = 0.0  # the current point exactly on the grid
        r = ls.direction_landscape(model, loss_fn, X, y, d1, d2, grid, grid)
        x, yy, center = r["alphas"], r["betas"], (0.0, 0.0)
        names = ("alpha (random filter-normalised d1)", "beta (d2)")
    else:
        auto = default_weights(model)
        names = tuple(s[k] or auto[i] for i, k in enumerate(("first", "second")))
        for key, name in zip(("first", "second"), names):
            try:
                ls.scalar_parameter(model, name)
            except ValueError as e:
                raise BadRequestError(f"{key}: {e}") from None
        try:
            r = ls.weight_landscape(model, loss_fn, X, y, *names, s["span"], RESOLUTION)
        except ValueError as e:  # the same weight twice
            raise BadRequestError(str(e)) from None
        x, yy, center = r["first_grid"], r["second_grid"], r["center"]
        names = (r["first"], r["second"])
    return {
        "plane": s["plane"],
        "x": x.tolist(),
        "y": yy.tolist(),
        "loss": [[finite_or_none(v) for v in row] for row in r["loss"]],
        "center": [float(c) for c in center],
        "center_loss": r["center_loss"],
        "names": list(names),
        "span": s["span"],
    }


def study(s: dict):
    """The homework's minimum-ratio study, one seed per item (seeds seed, seed + 1, ...):
    ``hw2_2.minimum_ratio_study`` at the panel's width, activation and |g|^2 steps."""
    from gradstep.lab import hw2_2

    for i, seed in enumerate(range(s["seed"], s["seed"] + s["study_seeds"])):
        (row,) = hw2_2.minimum_ratio_study(
            seeds=[seed], hidden=s["hidden"], max_steps=s["max_steps"], activation=s["activation"]
        )
        row = {k: finite_or_none(v) if isinstance(v, float) else v for k, v in row.items()}
        yield {**row, "done": i + 1, "of": s["study_seeds"]}


def _events(steps, run: str):
    """The library's progress dicts as JSON events tagged with the run."""
    for item in steps:
        item = {k: v for k, v in item.items() if k != "grad_norm_history"}
        for k in ("loss", "grad_norm", "damping"):
            if k in item:
                item[k] = finite_or_none(item[k])
        yield {**item, "run": run}


def routes(lab):
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def page(request):
        return lab.page(
            "critical",
            defaults=DEFAULTS,
            max_hidden=MAX_HIDDEN,
            limits=_limits(),
            resolution=RESOLUTION,
        )

    @lab.api
    async def check(request):  # the page checks its inputs here (an EventSource hides a 400)
        q = request.query_params
        s = settings(q)
        if q.get("run"):
            lab.runs.get(q["run"])  # a run the lab no longer keeps is a 400 here
        return JSONResponse({"settings": s, "parameters": 3 * s["hidden"] + 1})

    @lab.api
    async def run(request):
        from gradstep.lab.critical_points import critical_point_steps

        q = request.query_params
        s = settings(q)
        if q.get("run"):  # go on from that run's weights (after a step along u, say)
            old = lab.runs.get(q["run"])
            new = Run(copy.deepcopy(old.model), {**s, **old.arch})
        else:
            new = Run(network(s), s)
        every = max(1, s["epochs"] // REPORTS)
        steps = critical_point_steps(
            new.model, _loss_fn(), *_data(), s["epochs"], s["lr"], s["grad_tol"],
            s["max_steps"], report_every=every,
        )  # fmt: skip
        return event_stream(request, _events(steps, lab.runs.add(new)))

    @lab.api
    async def inspect_point(request):
        s = settings(request.query_params)
        run_id, run = _run(lab, request.query_params, s)
        return JSONResponse({"run": run_id, **inspect(run.model, s)})

    @lab.api
    async def escape_point(request):
        s = settings(request.query_params)
        run_id, run = _run(lab, request.query_params, s)
        return JSONResponse({"run": run_id, **escape(run.model, s)})

    @lab.api
    async def step(request):
        body = await json_body(request)
        _check_known(body, ("run", "t", "tol", "grad_tol"))
        if not body.get("run"):
            raise BadRequestError("run is required: inspect or run a network first")
        s = settings(body)
        old = lab.runs.get(body["run"])
        moved, point = step_along(old.model, s)
        new = Run(moved, old.arch)
        return JSONResponse({"run": lab.runs.add(new), "t": s["t"], **point})

    @lab.api
    async def landscape_plane(request):
        s = settings(request.query_params)
        run_id, run = _run(lab, request.query_params, s)
        return JSONResponse({"run": run_id, **landscape(run.model, s)})

    @lab.api
    async def study_stream(request):
        return event_stream(request, study(settings(request.query_params)))

    @lab.api
    async def model(request):
        from gradstep.lab.checkpoints import lab_checkpoint

        s = settings(request.query_params)
        _, run = _run(lab, request.query_params, s)
        ckpt = lab_checkpoint(run.model, run.arch["activation"], "critical", {**s, **run.arch})
        return download(ckpt, "critical.safetensors")

    return [
        Route("/critical", page),
        Route("/api/critical/check", check),
        Route("/api/critical/run", run),
        Route("/api/critical/inspect", inspect_point),
        Route("/api/critical/escape", escape_point),
        Route("/api/critical/step", step, methods=["POST"]),
        Route("/api/critical/landscape", landscape_plane),
        Route("/api/critical/study", study_stream),
        Route("/api/critical/model", model),
    ]


def _limits() -> dict:
    return {
        "epochs": MAX_EPOCHS,
        "max_steps": MAX_GN_STEPS,
        "t": MAX_T,
        "span": MAX_SPAN,
        "study_seeds": MAX_STUDY_SEEDS,
    }
