"""The /piecewise API without a browser: Starlette's TestClient against the real app, each
answer checked against gradstep.lab.piecewise itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from starlette.testclient import TestClient

import gradstep as gs
from gradstep.lab import piecewise as pw
from gradstep.lab.checkpoints import load_model
from gradstep.lab.web.app import SurfaceData, create_app
from gradstep.tensor import Tensor

UNITS = {"kind": "sigmoid", "w": "9,14,-11", "b": "-2.5,-7,8.2", "c": "0.7,-0.9,-0.35", "c0": 0.25}
START = ([9.0, 14.0, -11.0], [-2.5, -7.0, 8.2], [0.7, -0.9, -0.35], 0.25)


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(SurfaceData([0.0, 1.0, 2.0], [1.0, 2.0, 4.0], "test data")))


def test_the_page_has_its_controls(client):
    r = client.get("/piecewise")
    assert r.status_code == 200
    for id_ in ("kind", "units", "lr", "train", "reset", "c0", "loss", "step-count", "plot"):
        assert f'id="{id_}"' in r.text
    assert "/static/piecewise.js" in r.text and "/static/piecewise.css" in r.text
    assert client.get("/static/piecewise.js").status_code == 200


@pytest.mark.parametrize("kind", pw.KINDS)
def test_defaults_are_the_librarys(client, kind):
    got = client.get("/api/piecewise/defaults", params={"kind": kind}).json()
    assert got == pw.default_units(kind)
    assert len(got["w"]) == pw.DEFAULT_UNITS[kind]
    five = client.get("/api/piecewise/defaults", params={"kind": kind, "units": 5}).json()
    assert five == pw.default_units(kind, 5)


def test_the_curve_is_the_librarys(client):
    got = client.get("/api/piecewise/curve", params=UNITS).json()
    ref = pw.curve("sigmoid", *START)
    assert got["loss"] == ref["loss"]  # exact: the number the page shows
    assert (got["kind"], got["w"], got["b"], got["c"], got["c0"]) == ("sigmoid", *START)
    np.testing.assert_allclose(got["x"], pw.X)
    np.testing.assert_allclose(got["target"], pw.target(pw.X))
    np.testing.assert_allclose(got["sum"], ref["sum"], atol=1e-6)  # drawn: 6 decimals
    assert len(got["parts"]) == 3 and got["constant"] == 0.25
    for mine, theirs in zip(got["parts"], ref["parts"], strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)


def test_train_steps_are_the_librarys(client):
    r = client.get("/api/piecewise/train", params={**UNITS, "lr": 0.04, "steps": 25})
    points = r.json()["points"]
    assert points == list(pw.train("sigmoid", *START, 0.04, 25))
    assert points[-1]["status"] == "done" and points[-1]["step"] == 25


def test_the_stream_carries_the_units_step_numbers_and_curves(client):
    params = {**UNITS, "kind": "relu", "lr": 0.02}
    ref = list(pw.train("relu", *START, 0.02, 12))
    got = []
    with client.stream("GET", "/api/piecewise/run", params=params) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        for line in s.iter_lines():
            if line.startswith("data: "):
                got.append(json.loads(line[6:]))
            if len(got) == 4:
                break
    assert [p["step"] for p in got] == [3, 6, 9, 12]  # every third Adam step
    for p in got:
        expected = ref[p["step"] - 1]
        assert (p["w"], p["b"], p["c"], p["c0"], p["loss"]) == tuple(
            expected[k] for k in ("w", "b", "c", "c0", "loss")
        )
        assert p["curve"]["loss"] == pw.curve("relu", p["w"], p["b"], p["c"], p["c0"])["loss"]
        assert len(p["curve"]["parts"]) == 3


@pytest.mark.parametrize("kind", pw.KINDS)
def test_the_model_export_loads_and_matches(client, kind, tmp_path):
    r = client.get("/api/piecewise/model", params={**UNITS, "kind": kind, "lr": 0.02})
    assert r.status_code == 200
    assert 'filename="piecewise.safetensors"' in r.headers["content-disposition"]
    path = tmp_path / "piecewise.safetensors"
    path.write_bytes(r.content)
    ckpt = gs.load(str(path))
    assert ckpt["panel"] == "piecewise" and ckpt["settings"]["lr"] == "0.02"
    assert ckpt["architecture"]["activation"] == kind
    model = load_model(str(path))
    x = np.linspace(0, 1, 11)
    out = model(Tensor(x[:, None], dtype=np.float64)).data[:, 0]
    np.testing.assert_allclose(out, pw.curve(kind, *START, x=x)["sum"], rtol=1e-14)


BAD = [
    ({"lr": 0}, "lr must be greater than 0"),
    ({"lr": -1}, "lr must be greater than 0"),
    ({"lr": "abc"}, "lr must be a number"),
    ({"lr": "nan"}, "lr must be a finite number"),
    ({"lr": 11}, "lr must be at most 10"),
    ({"lr": None}, "lr is required"),
    ({"kind": "tanh"}, "kind must be one of sigmoid, relu"),
    ({"w": None}, "w is required"),
    ({"c0": None}, "c0 is required"),
    ({"w": "1,x,3"}, "w must be a number, got 'x'"),
    ({"b": "1,2"}, "b must have 3 numbers, got 2"),
    ({"c": "1,2,3,4"}, "c must have 3 numbers, got 4"),
    ({"w": ",".join(["1"] * 11)}, "w must have 1 to 10 numbers (one per unit), got 11"),
    ({"w": "1,2,inf"}, "w must be a finite number"),
    ({"b": "0,0,2e6"}, "b must be between -1e+06 and 1e+06, got 2e+06"),
    ({"c0": "-5e6"}, "c0 must be at least"),
    ({"steps": 0}, "steps must be at least 1"),
    ({"steps": 10**9}, "steps must be at most"),
    ({"steps": 2.5}, "steps must be a whole number"),
    ({"colour": "red"}, "unknown parameter 'colour'"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_input_is_a_400_with_a_message(client, change, message):
    params = {**UNITS, "lr": 0.02, "steps": 3, **change}
    params = {k: v for k, v in params.items() if v is not None}
    r = client.get("/api/piecewise/train", params=params)
    assert r.status_code == 400 and message in r.json()["error"], r.text
    if "steps" not in change:  # the stream takes no steps; its other checks are the same
        params.pop("steps")
        r = client.get("/api/piecewise/run", params=params)
        assert r.status_code == 400 and message in r.json()["error"], r.text
    assert client.get("/api/piecewise/curve", params=UNITS).status_code == 200  # still up


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/piecewise/curve", {**UNITS, "lr": 0.1}, "unknown parameter 'lr'"),
        ("/api/piecewise/curve", {**UNITS, "w": ""}, "w is required"),
        ("/api/piecewise/model", {**UNITS, "c": "1,2"}, "c must have 3 numbers, got 2"),
        ("/api/piecewise/defaults", {"kind": "relu", "units": 0}, "units must be at least 1"),
        ("/api/piecewise/defaults", {"kind": "relu", "units": 11}, "units must be at most 10"),
        ("/api/piecewise/defaults", {"kind": "softplus"}, "kind must be one of sigmoid, relu"),
    ],
)
def test_every_endpoint_names_its_bad_input(client, path, params, message):
    r = client.get(path, params=params)
    assert r.status_code == 400 and message in r.json()["error"], r.text
