"""/surface: the error surface L(w, b) of y = b + w x, and gradient descent walking on it."""

from __future__ import annotations

import math

import numpy as np

from gradstep.lab.surface import error_surface, gradient_descent_path, least_squares_line
from gradstep.lab.web.common import BadRequestError, choice, download, event_stream, number

MAX_STEPS = 100_000
STREAM_RATE = 60  # updates per second while running (the page draws each one)


class SurfaceData:
    """The (x, y) pairs of the surface panel: x standardised (so one learning-rate scale fits
    any data set), y as it is."""

    def __init__(self, x, y, name: str):
        x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
        self.name, self.x_mean, self.x_std = name, float(x.mean()), float(x.std())
        self.x, self.y = (x - self.x_mean) / self.x_std, y
        self.least_squares = least_squares_line(self.x, self.y)

    def grid(self, loss: str, resolution: int = 90) -> dict:
        ws, bs = self.least_squares
        margin = 0.6 * float(np.std(self.y)) + 1.0
        w = np.linspace(min(0.0, ws) - margin, max(0.0, ws) + margin, resolution)
        b = np.linspace(min(0.0, bs) - margin, max(0.0, bs) + margin, resolution)
        z = error_surface(self.x, self.y, w, b, loss)
        return {
            "w": w.tolist(),
            "b": b.tolist(),
            "log10_loss": np.log10(np.maximum(z, 1e-12)).round(4).tolist(),
            "least_squares": [ws, bs],
            "data": self.name,
        }

    def steps(self, w: float, b: float, lr: float, loss: str, n: int):
        """Yield one dict per update from (w, b): the new point, its loss and the gradient norm
        at the point it left, the engine's own numbers (gradient_descent_path)."""
        for k in range(1, n + 1):
            path = gradient_descent_path(self.x, self.y, w, b, lr, 1, loss)
            if len(path) < 2:  # the loss at (w, b) itself is not finite
                yield {"step": k, "w": w, "b": b, "loss": None, "status": "diverged"}
                return
            (w0, b0, _), (w, b, value) = path[0], path[1]
            grad = math.hypot((w0 - w) / lr, (b0 - b) / lr)
            status = "running"
            if not math.isfinite(value) or max(abs(w), abs(b), abs(value)) > 1e12:
                status = "diverged"
            elif grad < 1e-6:
                status = "converged"
            yield {  # JSON has no inf or NaN: a value past them is null (the page says why)
                "step": k,
                "w": w if math.isfinite(w) else None,
                "b": b if math.isfinite(b) else None,
                "loss": value if math.isfinite(value) else None,
                "grad_norm": grad,
                "status": status,
            }
            if status != "running":
                return

    def checkpoint(self, w: float, b: float, settings: dict) -> dict:
        """The line y = b + w x' (x' standardised) as a Linear(1, 1) on the raw x."""
        from gradstep.lab.checkpoints import lab_checkpoint
        from gradstep.nn import mlp

        model = mlp(1, [], 1)
        model[0].weight.data[...] = w / self.x_std
        model[0].bias.data[...] = b - w * self.x_mean / self.x_std
        return lab_checkpoint(model, "relu", "surface", settings)


def _walk(params):
    steps = number(params, "steps", 1, low=1, high=MAX_STEPS)
    return (
        number(params, "w", 0.0),
        number(params, "b", 0.0),
        number(params, "lr", positive=True),
        choice(params, "loss", ("mse", "mae"), "mse"),
        int(steps),
    )


def routes(lab):
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    data = lab.data

    async def page(request):
        return lab.page("surface")

    @lab.api
    async def grid(request):
        return JSONResponse(data.grid(choice(request.query_params, "loss", ("mse", "mae"), "mse")))

    @lab.api
    async def step(request):
        w, b, lr, loss, n = _walk(request.query_params)
        return JSONResponse({"points": list(data.steps(w, b, lr, loss, n))})

    @lab.api
    async def run(request):
        w, b, lr, loss, _ = _walk(request.query_params)
        return event_stream(request, data.steps(w, b, lr, loss, MAX_STEPS), STREAM_RATE)

    @lab.api
    async def model(request):
        q = request.query_params
        w, b = number(q, "w", 0.0), number(q, "b", 0.0)
        if max(abs(w), abs(b)) > 1e12:
            raise BadRequestError("this line diverged; there is no model to export")
        return download(data.checkpoint(w, b, dict(q)), "surface-line.safetensors")

    return [
        Route("/surface", page),
        Route("/api/surface/grid", grid),
        Route("/api/surface/step", step),
        Route("/api/surface/run", run),
        Route("/api/surface/model", model),
    ]
