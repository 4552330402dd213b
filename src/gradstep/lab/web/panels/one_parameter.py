"""/one-parameter: w <- w - lr dL/dw on the lecture's curve, with the tangent at each step."""

from __future__ import annotations

import numpy as np

from gradstep.lab import one_parameter as lib
from gradstep.lab.web.common import download, event_stream, integer, number

MAX_STEPS = 100_000
STREAM_RATE = 30  # slow enough to watch the tangent turn


def _walk(params):
    return (
        number(params, "w0", -0.3, low=-1e6, high=1e6),
        number(params, "lr", positive=True),
        integer(params, "steps", 1, low=1, high=MAX_STEPS),
    )


def routes(lab):
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def page(request):
        return lab.page("one_parameter", formula=lib.FORMULA)

    @lab.api
    async def curve(request):
        w = np.linspace(-1.4, 2.8, 300)
        m = lib.minima()
        return JSONResponse(
            {
                "w": w.tolist(),
                "loss": lib.loss(w).tolist(),
                "formula": lib.FORMULA,
                "local_minima": m["local"],
                "global_minimum": m["global"],
            }
        )

    @lab.api
    async def point(request):  # L and the slope at one w: the start's tangent
        w = number(request.query_params, "w", low=-1e6, high=1e6)
        value, slope = lib.loss_and_slope(w)
        return JSONResponse({"w": w, "loss": value, "slope": slope})

    @lab.api
    async def step(request):
        w0, lr, n = _walk(request.query_params)
        return JSONResponse({"points": list(lib.descend(w0, lr, n))})

    @lab.api
    async def run(request):
        w0, lr, _ = _walk(request.query_params)
        return event_stream(request, lib.descend(w0, lr, MAX_STEPS), STREAM_RATE)

    @lab.api
    async def model(request):
        q = request.query_params
        w = number(q, "w", -0.3, low=-1e6, high=1e6)
        ckpt = {
            "model": {"w": np.array([w])},
            "function": lib.FORMULA,
            "panel": "one-parameter",
            "settings": dict(q),
        }
        return download(ckpt, "one-parameter.safetensors")

    return [
        Route("/one-parameter", page),
        Route("/api/one-parameter/curve", curve),
        Route("/api/one-parameter/point", point),
        Route("/api/one-parameter/step", step),
        Route("/api/one-parameter/run", run),
        Route("/api/one-parameter/model", model),
    ]
