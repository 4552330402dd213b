"""What every panel of the lab shares: reading request parameters (one clear message for each
bad one), JSON bodies, model downloads, live streams and the store of trained models."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import threading
import uuid


class BadRequestError(ValueError):
    """A request the API cannot take: answered with HTTP 400 and this message."""


def number(params, name: str, default=None, low=None, high=None, positive=False) -> float:
    """The finite number ``params[name]`` (a query string or a JSON object)."""
    raw = params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BadRequestError(f"{name} is required")
        return float(default)
    if isinstance(raw, bool):
        raise BadRequestError(f"{name} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadRequestError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise BadRequestError(f"{name} must be a finite number, got {raw!r}")
    if positive and value <= 0:
        raise BadRequestError(f"{name} must be greater than 0, got {raw}")
    if low is not None and value < low:
        raise BadRequestError(f"{name} must be at least {low}, got {raw}")
    if high is not None and value > high:
        raise BadRequestError(f"{name} must be at most {high}, got {raw}")
    return value


def integer(params, name: str, default=None, low=None, high=None) -> int:
    value = number(params, name, default, low, high)
    if value != int(value):
        raise BadRequestError(f"{name} must be a whole number, got {params.get(name)!r}")
    return int(value)


def choice(params, name: str, options, default=None) -> str:
    value = params.get(name) or default
    if value not in options:
        listed = ", ".join(map(str, options))
        raise BadRequestError(f"{name} must be one of {listed}, got {value!r}")
    return value


def numbers(params, name: str, length=None, default=None) -> list[float]:
    """A comma-separated list of finite numbers (``w=1,2.5,-3``) or a JSON list."""
    raw = params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BadRequestError(f"{name} is required")
        return list(default)
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise BadRequestError(f"{name} must be a list of numbers, got {raw!r}")
    values = [number({name: v}, name) for v in items]
    if length is not None and len(values) != length:
        raise BadRequestError(f"{name} must have {length} numbers, got {len(values)}")
    return values


async def json_body(request) -> dict:
    """The request's JSON object, or a 400 that says what was wrong with it."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequestError(f"the request body is not JSON ({e})") from None
    if not isinstance(body, dict):
        raise BadRequestError(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def finite_or_none(value):
    """JSON has no inf or NaN: such a value becomes null (the page says why)."""
    value = float(value)
    return value if math.isfinite(value) else None


def download(obj, filename: str):
    """``obj`` as a gradstep checkpoint (safetensors + JSON metadata; ``gradstep.load`` reads it)
    offered as a file download."""
    from starlette.responses import Response

    from gradstep.io import dumps

    return Response(
        dumps(obj),
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


#: The engine's switches (grad mode, default dtype, the global generator) are process-wide, as
#: in a script; the lab serves many tabs from threads, so each piece of engine work (one API
#: call, one update of a stream) holds this lock. Updates of two tabs' trainings interleave.
ENGINE = threading.Lock()


@contextlib.asynccontextmanager
async def engine_held():
    """Hold the engine lock in a coroutine, waiting for it in a thread (never on the event
    loop); a request cancelled while it waits releases the lock as soon as it gets it."""
    task = asyncio.ensure_future(asyncio.to_thread(ENGINE.acquire))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(lambda _: ENGINE.release())
        raise
    try:
        yield
    finally:
        ENGINE.release()


async def engine_locked(fn, *args):
    """``fn(*args)`` in a worker thread, holding the engine lock."""

    def locked():
        with ENGINE:
            return fn(*args)

    return await asyncio.to_thread(locked)


def event_stream(request, events, rate: float | None = None):
    """A Server-Sent Events response of the dicts ``events`` yields. Each is computed in a
    worker thread under the engine lock, so a long training never holds up other requests
    (another tab, a Step); the stream stops when the page goes away. A failure ends it with a
    ``failed`` event carrying the message, which the page shows."""
    from starlette.responses import StreamingResponse

    done = object()

    async def lines():
        iterator = iter(events)
        while True:
            try:
                item = await engine_locked(next, iterator, done)
            except Exception as e:  # noqa: BLE001 - the page is told; the lab goes on
                message = str(e) if isinstance(e, BadRequestError) else f"{type(e).__name__}: {e}"
                yield f"event: failed\ndata: {json.dumps({'error': message})}\n\n"
                return
            if item is done or await request.is_disconnected():
                break
            yield f"data: {json.dumps(item)}\n\n"
            if rate:
                await asyncio.sleep(1 / rate)
        yield 'event: end\ndata: {"status": "stopped"}\n\n'

    return StreamingResponse(lines(), media_type="text/event-stream")


class RunStore:
    """Trained models by run id, for the export button: the newest ``size`` runs are kept (a
    tab that trains again makes a new run, so two tabs never share one)."""

    def __init__(self, size: int = 32):
        self.size, self._runs, self._lock = size, collections.OrderedDict(), threading.Lock()

    def add(self, obj) -> str:
        run = uuid.uuid4().hex
        with self._lock:
            self._runs[run] = obj
            while len(self._runs) > self.size:
                self._runs.popitem(last=False)
        return run

    def get(self, run: str):
        with self._lock:
            if run not in self._runs:
                raise BadRequestError(
                    f"no trained model {run!r} here (the lab keeps the newest {self.size}; "
                    "train again to export)"
                )
            return self._runs[run]
