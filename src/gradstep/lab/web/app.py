"""The lab's Starlette app: the shared pages and files, and each panel's routes."""

from __future__ import annotations

import importlib
import os

from gradstep.lab.web.common import BadRequestError, RunStore, engine_held
from gradstep.lab.web.panels import PANELS
from gradstep.lab.web.panels.surface import SurfaceData

__all__ = ["BadRequestError", "Lab", "SurfaceData", "create_app"]
_HERE = os.path.dirname(os.path.abspath(__file__))


class Lab:
    """What the panels share: the surface data, the page templates and the trained models."""

    def __init__(self, data: SurfaceData):
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        self.data = data
        self.runs = RunStore()
        self.env = Environment(
            loader=FileSystemLoader(os.path.join(_HERE, "templates")),
            autoescape=select_autoescape(["j2"]),
        )

    def page(self, template: str, status: int = 200, **context):
        from starlette.responses import HTMLResponse

        titles = {name: title for name, (_, title) in PANELS.items()}
        html = self.env.get_template(f"{template}.html.j2").render(
            panels=titles, data=self.data.name, **context
        )
        return HTMLResponse(html, status_code=status)

    @staticmethod
    def api(fn):
        """An API endpoint: a bad request is a 400 with its message, anything else a 500 with
        one line (the server goes on either way)."""
        from starlette.responses import JSONResponse

        async def endpoint(request):
            try:
                async with engine_held():
                    return await fn(request)
            except BadRequestError as e:
                return JSONResponse({"error": str(e)}, status_code=400)
            except Exception as e:  # noqa: BLE001 - a request never stops the lab
                message = f"the lab failed on this request: {type(e).__name__}: {e}"
                return JSONResponse({"error": message}, status_code=500)

        return endpoint


def create_app(data: SurfaceData):
    """The ASGI app for ``data`` (Starlette is imported here: an optional extra)."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    lab = Lab(data)

    async def index(request):
        return lab.page("index")

    async def unknown(request):
        name = request.path_params["name"]
        known = ", ".join(f"/{p}" for p in PANELS)
        message = f"unknown panel {name!r}; the panels are {known}"
        if "application/json" in request.headers.get("accept", "") or name.startswith("api/"):
            return JSONResponse({"error": message}, status_code=400)
        return lab.page("index", status=400, error=message)

    async def plotly_js(request):
        import plotly

        path = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
        return FileResponse(path, media_type="text/javascript")

    async def plotly_license(request):  # the vendored file's license, from its own package
        from importlib.metadata import distribution

        dist = distribution("plotly")
        names = [str(f) for f in dist.files or () if ".dist-info/" in str(f)]
        names = [n.split(".dist-info/")[-1] for n in names if "LICENSE" in n.upper()]
        text = dist.read_text(names[0]) if names else None
        return PlainTextResponse(text or "plotly: MIT license (see https://plotly.com)")

    async def favicon(request):
        return Response(status_code=204)  # browsers ask; there is none

    routes = [
        Route("/", index),
        Route("/favicon.ico", favicon),
        Route("/vendor/plotly.min.js", plotly_js),
        Route("/vendor/plotly-LICENSE.txt", plotly_license),
        Mount("/static", StaticFiles(directory=os.path.join(_HERE, "static")), name="static"),
    ]
    for module, _ in PANELS.values():
        routes += importlib.import_module(f"gradstep.lab.web.panels.{module}").routes(lab)
    routes.append(Route("/{name:path}", unknown))
    return Starlette(routes=routes)
