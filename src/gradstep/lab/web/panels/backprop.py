"""/backprop: a small network drawn; click a weight or bias to see its gradient as the sum over
samples of (forward pass: dz/dw) x (backward pass: dC/dz), next to the engine's ``.grad``.

The network is rebuilt for every request from its settings (activation, seed and the learning
rate of each gradient-descent step taken), all of which live in the page's address: nothing is
kept on the server, so two tabs never share a network and a link reproduces it exactly.
"""

from __future__ import annotations

import numpy as np

from gradstep.lab import backprop as lib
from gradstep.lab.web.common import BadRequestError, choice, download, integer, number, numbers
from gradstep.tensor import Tensor

MAX_STEPS = 200  # each request replays every step, so keep the replay short
MAX_LR = 100.0
MAX_SEED = 2**32 - 1


def _settings(params) -> tuple[str, int, list[float]]:
    """The network's settings: activation, seed, and the learning rates of the steps taken."""
    activation = choice(params, "activation", lib.PANEL_ACTIVATIONS, "sigmoid")
    seed = integer(params, "seed", 0, low=0, high=MAX_SEED)
    steps = numbers(params, "steps", default=[])
    if len(steps) > MAX_STEPS:
        raise BadRequestError(
            f"steps must hold at most {MAX_STEPS} learning rates, got {len(steps)}"
        )
    for lr in steps:
        if not 0 < lr <= MAX_LR:
            raise BadRequestError(
                f"steps must hold learning rates greater than 0 and at most {MAX_LR:g}, got {lr:g}"
            )
    return activation, seed, steps


def _network(activation: str, seed: int, steps: list[float]):
    try:
        return lib.panel_network(activation, seed, steps)
    except ValueError as e:  # the steps diverged: the page says so (and to reset)
        raise BadRequestError(f"{e} (reset to start again)") from None


def _selection(params, model) -> tuple[str, list[int]] | None:
    """The weight or bias asked for (``param`` and ``index``), or None when none is."""
    if not params.get("param"):
        if params.get("index"):
            raise BadRequestError("index needs param (which weight or bias it indexes)")
        return None
    shapes = lib.parameter_shapes(model)
    parameter = choice(params, "param", list(shapes))
    raw = params.get("index")
    if not raw:
        raise BadRequestError(f"index is required with param (for {parameter})")
    parts = raw.split(",")
    shape = shapes[parameter]
    if len(parts) != len(shape):
        raise BadRequestError(
            f"index must have {len(shape)} whole number{'s' * (len(shape) > 1)} for "
            f"{parameter} (shape {list(shape)}), got {raw!r}"
        )
    index = [integer({"index": p}, "index") for p in parts]
    if any(not 0 <= i < n for i, n in zip(index, shape)):
        raise BadRequestError(f"index {raw} is outside {parameter} of shape {list(shape)}")
    return parameter, index


def state(params, extra_lr: float | None = None) -> dict:
    """The page's whole state as JSON: the network's layout and values, the data with the
    network's predictions, C, and (when a weight is selected) its explained gradient."""
    activation, seed, steps = _settings(params)
    if extra_lr is not None:
        if len(steps) >= MAX_STEPS:
            raise BadRequestError(f"at most {MAX_STEPS} steps: reset to take more")
        steps = [*steps, extra_lr]
    model = _network(activation, seed, steps)
    selected = _selection(params, model)
    x, y = lib.PANEL_X, lib.PANEL_Y
    prediction = model(Tensor(x, dtype=np.float64)).data.ravel()
    out = {
        "activation": activation,
        "seed": seed,
        "steps": steps,
        "network": lib.network_layout(model),
        "data": {"x": x.tolist(), "y": y.tolist(), "prediction": prediction.tolist()},
        "loss": lib.mse_loss(model, x, y),
        "explanation": None,
    }
    if selected is not None:
        out["explanation"] = lib.explain_for_panel(model, activation, x, y, *selected)
    return out


def routes(lab):
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def page(request):
        return lab.page("backprop")

    @lab.api
    async def network(request):
        return JSONResponse(state(request.query_params))

    @lab.api
    async def step(request):  # one more gradient-descent step, then the same state
        q = request.query_params
        lr = number(q, "lr", positive=True, high=MAX_LR)
        return JSONResponse(state(q, extra_lr=lr))

    @lab.api
    async def model(request):
        from gradstep.lab.checkpoints import lab_checkpoint

        q = request.query_params
        activation, seed, steps = _settings(q)
        ckpt = lab_checkpoint(_network(activation, seed, steps), activation, "backprop", dict(q))
        return download(ckpt, "backprop-network.safetensors")

    return [
        Route("/backprop", page),
        Route("/api/backprop/network", network),
        Route("/api/backprop/step", step),
        Route("/api/backprop/model", model),
    ]
