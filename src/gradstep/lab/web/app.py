"""The lab's Starlette app: pages, the JSON API and the live stream (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import json
import math
import os

import numpy as np

from gradstep.lab.surface import error_surface, gradient_descent_path, least_squares_line

PANELS = {"surface": "The error surface and gradient descent on it"}
MAX_STEPS = 100_000
STREAM_RATE = 60  # updates per second while running (the page draws each one)
_HERE = os.path.dirname(os.path.abspath(__file__))


class BadRequestError(ValueError):
    """A request the API cannot take: answered with HTTP 400 and this message."""


def _number(params, name: str, default=None, low=None, positive=False) -> float:
    raw = params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BadRequestError(f"{name} is required")
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise BadRequestError(f"{name} must be a finite number, got {raw!r}")
    if positive and value <= 0:
        raise BadRequestError(f"{name} must be greater than 0, got {raw}")
    if low is not None and value < low:
        raise BadRequestError(f"{name} must be at least {low}, got {raw}")
    return value


def _loss(params) -> str:
    loss = params.get("loss", "mse")
    if loss not in ("mse", "mae"):
        raise BadRequestError(f"loss must be 'mse' or 'mae', got {loss!r}")
    return loss


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


def create_app(data: SurfaceData):
    """The ASGI app for ``data`` (Starlette is imported here: an optional extra)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from starlette.applications import Starlette
    from starlette.responses import (
        FileResponse,
        HTMLResponse,
        JSONResponse,
        Response,
        StreamingResponse,
    )
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    env = Environment(
        loader=FileSystemLoader(os.path.join(_HERE, "templates")),
        autoescape=select_autoescape(["j2"]),
    )

    def page(name: str, **context) -> HTMLResponse:
        html = env.get_template(f"{name}.html.j2").render(panels=PANELS, data=data.name, **context)
        return HTMLResponse(html)

    def bad(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def index(request):
        return page("index")

    async def surface(request):
        return page("surface")

    async def unknown(request):
        name = request.path_params["name"]
        known = ", ".join(f"/{p}" for p in PANELS)
        message = f"unknown panel {name!r}; the panels are {known}"
        if "application/json" in request.headers.get("accept", ""):
            return bad(message)
        return HTMLResponse(page("index", error=message).body, status_code=400)

    def api(fn):
        async def endpoint(request):
            try:
                return await fn(request)
            except BadRequestError as e:
                return bad(str(e))

        return endpoint

    def walk(params):
        steps = _number(params, "steps", 1, low=1)
        if steps > MAX_STEPS:
            raise BadRequestError(f"steps must be at most {MAX_STEPS}, got {params['steps']}")
        return (
            _number(params, "w", 0.0),
            _number(params, "b", 0.0),
            _number(params, "lr", positive=True),
            _loss(params),
            int(steps),
        )

    @api
    async def grid(request):
        return JSONResponse(data.grid(_loss(request.query_params)))

    @api
    async def step(request):
        w, b, lr, loss, n = walk(request.query_params)
        return JSONResponse({"points": list(data.steps(w, b, lr, loss, n))})

    @api
    async def run(request):
        w, b, lr, loss, _ = walk(request.query_params)

        async def events():
            for point in data.steps(w, b, lr, loss, MAX_STEPS):
                if await request.is_disconnected():
                    return
                yield f"data: {json.dumps(point)}\n\n"
                await asyncio.sleep(1 / STREAM_RATE)
            yield 'event: end\ndata: {"status": "stopped"}\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    async def plotly_js(request):
        import plotly

        path = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
        return FileResponse(path, media_type="text/javascript")

    async def favicon(request):
        return Response(status_code=204)  # browsers ask; there is none

    routes = [
        Route("/", index),
        Route("/favicon.ico", favicon),
        Route("/surface", surface),
        Route("/api/surface/grid", grid),
        Route("/api/surface/step", step),
        Route("/api/surface/run", run),
        Route("/vendor/plotly.min.js", plotly_js),
        Mount("/static", StaticFiles(directory=os.path.join(_HERE, "static")), name="static"),
        Route("/{name:path}", unknown),
    ]
    return Starlette(routes=routes)
