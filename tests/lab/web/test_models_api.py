"""The /models API without a browser: Starlette's TestClient against the real app and engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from starlette.testclient import TestClient

import gradstep as gs
from gradstep.io import loads
from gradstep.lab.checkpoints import load_model
from gradstep.lab.experiments import experiments, windows
from gradstep.lab.live import train_live
from gradstep.lab.web.app import SurfaceData, create_app

SMALL = {"model": "1 layer of 100 ReLU", "batch_size": 128, "lr": 0.004, "epochs": 4, "seed": 3}


@pytest.fixture(scope="module")
def client():
    x = np.arange(10.0)
    return TestClient(create_app(SurfaceData(x, 2 * x, "test data")))


def _events(client, params) -> list[dict]:
    """The data of the stream's messages; the stream must close with its ``end`` event."""
    with client.stream("GET", "/api/models/train", params=params) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        blocks = r.read().decode().split("\n\n")
    assert blocks[-2].startswith("event: end") and blocks[-1] == ""
    data = [b for b in blocks[:-2] if b]
    assert all(b.startswith("data: ") for b in data)
    return [json.loads(b[len("data: ") :]) for b in data]


def test_the_page_offers_every_model_and_the_controls(client):
    r = client.get("/models")
    assert r.status_code == 200
    for e in experiments():
        assert f'<option value="{e.name}"' in r.text
    for id_ in ("batch-size", "lr", "epochs", "seed", "train", "reset", "epoch-count"):
        assert f'id="{id_}"' in r.text
    assert "one gradient step, on one batch" in r.text and "hyperparameters" in r.text


def test_the_stream_is_the_librarys_training_epoch_by_epoch(client):
    events = _events(client, SMALL)
    ref = list(train_live("1 layer of 100 ReLU", 128, 0.004, 4, seed=3))
    assert [e["epoch"] for e in events] == [1, 2, 3, 4]
    for got, want in zip(events, ref):
        # JSON carries a float's shortest repr, so the numbers arrive exactly
        assert {k: got[k] for k in want} == want
    assert len({e["run"] for e in events}) == 1
    assert events[-1]["status"] == "done"
    assert events[-1]["updates"] == 4 * -(-len(windows(56)[1]) // 128)


def test_check_gives_the_settings_with_their_defaults(client):
    body = client.get("/api/models/check", params={"lr": "0.01"}).json()
    assert body["settings"] == {
        "model": "2 layers of 100 ReLU",
        "batch_size": 64,
        "lr": 0.01,
        "epochs": 30,
        "seed": 0,
        "optimizer": "adam",
    }
    assert body["train_days"] == len(windows(56)[1])
    assert body["batches"] == -(-body["train_days"] // 64)


def test_the_export_is_a_checkpoint_that_predicts_degrees(client):
    events = _events(client, SMALL)
    r = client.get("/api/models/model", params={"run": events[-1]["run"]})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    ckpt = loads(r.content)
    s = ckpt["settings"]
    assert s["model"] == SMALL["model"] and s["epochs_done"] == 4 and s["lr"] == 0.004
    model = load_model(ckpt)
    _, _, Xte, yte = windows(56)
    x = gs.tensor((Xte - s["x_mean"]) / s["x_scale"], dtype=np.float64)
    degrees = model(x).numpy()[:, 0] * s["y_std"] + s["y_mean"]
    assert float(np.mean(np.abs(degrees - yte))) == pytest.approx(events[-1]["val_mae"], abs=1e-9)


def test_two_runs_are_two_models(client):
    a = _events(client, SMALL)[-1]
    b = _events(client, {**SMALL, "seed": 4})[-1]
    assert a["run"] != b["run"] and a["val_mae"] != b["val_mae"]
    ma = loads(client.get("/api/models/model", params={"run": a["run"]}).content)
    mb = loads(client.get("/api/models/model", params={"run": b["run"]}).content)
    assert (ma["settings"]["seed"], mb["settings"]["seed"]) == (3, 4)
    assert not np.array_equal(ma["model"]["0.weight"], mb["model"]["0.weight"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": 0}, "lr must be greater than 0"),
        ({"lr": -1}, "lr must be greater than 0"),
        ({"lr": "abc"}, "lr must be a number"),
        ({"lr": "nan"}, "lr must be a finite number"),
        ({"lr": 50}, "lr must be at most 10"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"batch_size": 2.5}, "batch_size must be a whole number"),
        ({"batch_size": 100000}, "(the number of training days)"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"epochs": 2001}, "epochs must be at most 2000"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"model": "cubic"}, "model must be one of 'linear, 1 day'"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of adam, sgd"),
        ({"learning_rate": 0.1}, "unknown parameter 'learning_rate'"),
    ],
)
def test_bad_input_is_a_400_with_a_message(client, params, message):
    for path in ("/api/models/check", "/api/models/train"):
        r = client.get(path, params=params)
        assert r.status_code == 400 and message in r.json()["error"], r.text
    assert client.get("/api/models/check").status_code == 200  # still up


def test_an_earlier_epoch_can_be_exported_as_the_page_shows_it(client):
    events = _events(client, {**SMALL, "epochs": 12})
    run = events[-1]["run"]
    ckpt = loads(client.get("/api/models/model", params={"run": run, "epoch": 9}).content)
    assert ckpt["settings"]["epochs_done"] == 9
    model = load_model(ckpt)
    s = ckpt["settings"]
    _, _, Xte, yte = windows(56)
    x = gs.tensor((Xte - s["x_mean"]) / s["x_scale"], dtype=np.float64)
    degrees = model(x).numpy()[:, 0] * s["y_std"] + s["y_mean"]
    assert float(np.mean(np.abs(degrees - yte))) == pytest.approx(events[8]["val_mae"], abs=1e-9)
    r = client.get("/api/models/model", params={"run": run, "epoch": 2})
    assert r.status_code == 400
    assert "cannot export that epoch: epoch 2 is not kept" in r.json()["error"]
    r = client.get("/api/models/model", params={"run": run, "epoch": "last"})
    assert r.status_code == 400 and "epoch must be a number" in r.json()["error"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "run is required: train a model first"),
        ({"run": "x", "epoch": "last"}, "no trained model 'x'"),
        ({"run": "nope"}, "no trained model 'nope'"),
        ({"run": "x", "w": 1}, "unknown parameter 'w'"),
    ],
)
def test_a_bad_export_is_a_400_with_a_message(client, params, message):
    r = client.get("/api/models/model", params=params)
    assert r.status_code == 400 and message in r.json()["error"]
