"""/one-parameter's API: the library's numbers, 400s for bad input, the export."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

import gradstep as gs
from gradstep.lab import one_parameter as lib
from gradstep.lab.web.app import SurfaceData, create_app


@pytest.fixture(scope="module")
def client():
    x = np.linspace(0, 1, 20)
    return TestClient(create_app(SurfaceData(x, 2 * x, "line")))


def test_steps_and_stream_are_the_librarys(client):
    r = client.get("/api/one-parameter/step", params={"w0": -0.3, "lr": 0.05, "steps": 40})
    assert r.status_code == 200
    assert r.json()["points"] == list(lib.descend(-0.3, 0.05, 40))
    with client.stream("GET", "/api/one-parameter/run", params={"w0": -0.3, "lr": 0.05}) as s:
        text = "".join(s.iter_text())
    assert '"status": "converged"' in text and '"where": "local minimum"' in text
    curve = client.get("/api/one-parameter/curve").json()
    assert curve["loss"] == pytest.approx(lib.loss(np.array(curve["w"])).tolist())
    point = client.get("/api/one-parameter/point", params={"w": 1.0}).json()
    assert (point["loss"], point["slope"]) == lib.loss_and_slope(1.0)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"lr": 0}, "lr must be greater than 0"),
        ({"lr": "fast"}, "lr must be a number"),
        ({}, "lr is required"),
        ({"lr": 0.1, "w0": "nan"}, "w0 must be a finite number"),
        ({"lr": 0.1, "w0": 1e9}, "w0 must be at most"),
        ({"lr": 0.1, "steps": 2.5}, "steps must be a whole number"),
    ],
)
def test_bad_input_is_a_400(client, params, message):
    for path in ("/api/one-parameter/step", "/api/one-parameter/run"):
        r = client.get(path, params=params)
        assert r.status_code == 400 and message in r.json()["error"]


def test_export_is_a_checkpoint_of_w(client, tmp_path):
    r = client.get("/api/one-parameter/model", params={"w": 0.25, "lr": 0.05})
    assert r.status_code == 200 and "one-parameter.safetensors" in r.headers["content-disposition"]
    path = tmp_path / "w.safetensors"
    path.write_bytes(r.content)
    ckpt = gs.load(path)
    assert ckpt["model"]["w"].tolist() == [0.25] and ckpt["function"] == lib.FORMULA
    assert client.get("/api/one-parameter/model", params={"w": "x"}).status_code == 400
