"""/models: the lecture's experiment (linear models over k days, a sum of sigmoids, 1-4 layers
of ReLU on the Seattle data) trained live with the batch size, learning rate and epochs the
user picks; training and validation error stream in one epoch at a time."""

from __future__ import annotations

import functools

from gradstep.lab.web.common import BadRequestError, choice, event_stream, integer, number

MAX_EPOCHS = 2000  # 2000 epochs of 4 layers of ReLU take about half a minute here
MAX_SEED = 2**32 - 1
MAX_LR = 10.0
DEFAULTS = {
    "model": "2 layers of 100 ReLU",
    "batch_size": 64,
    "lr": 3e-3,
    "epochs": 30,
    "seed": 0,
    "optimizer": "adam",
}


@functools.lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    from gradstep.lab.experiments import experiments

    return tuple(e.name for e in experiments())


@functools.lru_cache(maxsize=1)
def _train_days() -> int:
    """The number of training days (every model is trained on the same target days)."""
    from gradstep.lab.experiments import windows

    return len(windows(1)[1])


def _check_known(params, allowed) -> None:
    extra = sorted(set(params) - set(allowed))
    if extra:
        raise BadRequestError(
            f"unknown parameter {extra[0]!r}; the parameters are {', '.join(allowed)}"
        )


def _model(params) -> str:
    name = params.get("model") or DEFAULTS["model"]
    if name not in _names():  # the names hold commas: quote each
        listed = "; ".join(repr(n) for n in _names())
        raise BadRequestError(f"model must be one of {listed}; got {name!r}")
    return name


def settings(params) -> dict:
    """The training settings in ``params`` (a query string), each checked with a message that
    names it."""
    from gradstep.lab.live import OPTIMIZERS

    _check_known(params, DEFAULTS)
    days = _train_days()
    batch_size = integer(params, "batch_size", DEFAULTS["batch_size"], low=1)
    if batch_size > days:
        raise BadRequestError(
            f"batch_size must be at most {days} (the number of training days), got {batch_size}"
        )
    return {
        "model": _model(params),
        "batch_size": batch_size,
        "lr": number(params, "lr", DEFAULTS["lr"], high=MAX_LR, positive=True),
        "epochs": integer(params, "epochs", DEFAULTS["epochs"], low=1, high=MAX_EPOCHS),
        "seed": integer(params, "seed", DEFAULTS["seed"], low=0, high=MAX_SEED),
        "optimizer": choice(params, "optimizer", tuple(OPTIMIZERS), DEFAULTS["optimizer"]),
    }


def _start(s: dict):
    from gradstep.lab.live import train_live

    return train_live(s["model"], s["batch_size"], s["lr"], s["epochs"], s["seed"], s["optimizer"])


def _events(training, run: str):
    """The library's per-epoch dicts, each tagged with the run the export button asks for."""
    for item in training:
        yield {**item, "run": run}


def routes(lab):
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def page(request):
        return lab.page(
            "models",
            names=_names(),
            defaults=DEFAULTS,
            max_epochs=MAX_EPOCHS,
            train_days=_train_days(),
        )

    @lab.api
    async def check(request):
        s = settings(request.query_params)
        batches = -(-_train_days() // s["batch_size"])
        return JSONResponse({"settings": s, "train_days": _train_days(), "batches": batches})

    @lab.api
    async def train(request):
        training = _start(settings(request.query_params))
        return event_stream(request, _events(training, lab.runs.add(training)))

    @lab.api
    async def model(request):
        from gradstep.lab.web.common import download

        q = request.query_params
        _check_known(q, ("run", "epoch"))
        if not q.get("run"):
            raise BadRequestError("run is required: train a model first, then export it")
        training = lab.runs.get(q["run"])
        trained = training.trained
        if q.get("epoch"):  # the epoch the page shows (the server may be an epoch ahead)
            try:
                trained = training.trained_at(integer(q, "epoch", low=1))
            except KeyError as e:
                raise BadRequestError(f"cannot export that epoch: {e.args[0]}") from None
        if trained.epochs_done == 0:
            raise BadRequestError("this run has not finished an epoch yet; nothing to export")
        return download(trained.checkpoint(), "models.safetensors")

    return [
        Route("/models", page),
        Route("/api/models/check", check),
        Route("/api/models/train", train),
        Route("/api/models/model", model),
    ]
