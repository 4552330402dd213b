"""The /backprop panel's API without a browser: Starlette's TestClient against the real app,
its numbers checked against the library (gradstep.lab.backprop) and its errors against their
messages."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

import gradstep as gs
from gradstep.lab import backprop as bp
from gradstep.lab.checkpoints import load_model
from gradstep.lab.web.app import SurfaceData, create_app
from gradstep.tensor import Tensor

RNG = np.random.default_rng(0)
X = RNG.uniform(0, 10, 20)


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(SurfaceData(X, 2 * X + 1, "test data")))


def test_the_network_is_the_librarys_seeded_network(client):
    r = client.get("/api/backprop/network", params={"activation": "tanh", "seed": 4})
    assert r.status_code == 200
    body = r.json()
    model = bp.panel_network("tanh", 4)
    assert body["network"] == bp.network_layout(model)
    assert body["loss"] == bp.mse_loss(model, bp.PANEL_X, bp.PANEL_Y)
    assert body["data"]["x"] == bp.PANEL_X.tolist() and body["data"]["y"] == bp.PANEL_Y.tolist()
    ref = model(Tensor(bp.PANEL_X, dtype=np.float64)).data.ravel()
    np.testing.assert_array_equal(body["data"]["prediction"], ref)
    assert body["explanation"] is None and body["steps"] == []
    # the defaults: sigmoid, seed 0
    default = client.get("/api/backprop/network").json()
    assert default["network"] == bp.network_layout(bp.panel_network("sigmoid", 0))


def test_a_selected_weight_is_explained_after_the_steps_taken(client):
    params = {"activation": "relu", "seed": 2, "steps": "0.5,0.1", "param": "2.weight"}
    body = client.get("/api/backprop/network", params={**params, "index": "1,2"}).json()
    model = bp.panel_network("relu", 2, [0.5, 0.1])
    e = bp.explain_for_panel(model, "relu", bp.PANEL_X, bp.PANEL_Y, "2.weight", (1, 2))
    assert body["explanation"] == e
    assert abs(e["sum"] - e["engine"]) <= 1e-12 and e["engine"] != 0
    assert body["network"] == bp.network_layout(model) and body["steps"] == [0.5, 0.1]
    bias = client.get("/api/backprop/network", params={"param": "4.bias", "index": "0"}).json()
    assert bias["explanation"]["forward"] == [1.0] * len(bp.PANEL_X)


def test_a_step_is_one_more_gradient_descent_step(client):
    params = {"seed": 1, "steps": "0.5", "param": "0.weight", "index": "0,1"}
    body = client.get("/api/backprop/step", params={**params, "lr": "0.25"}).json()
    assert body["steps"] == [0.5, 0.25]
    model = bp.panel_network("sigmoid", 1, [0.5, 0.25])
    assert body["network"] == bp.network_layout(model)
    assert body["loss"] < client.get("/api/backprop/network", params=params).json()["loss"]
    e = body["explanation"]
    assert e == bp.explain_for_panel(model, "sigmoid", bp.PANEL_X, bp.PANEL_Y, "0.weight", (0, 1))
    assert abs(e["sum"] - e["engine"]) <= 1e-12


def test_the_model_export_is_a_checkpoint_of_the_network(client, tmp_path):
    params = {"activation": "tanh", "seed": 7, "steps": "0.3,0.3"}
    r = client.get("/api/backprop/model", params=params)
    assert r.status_code == 200
    assert "backprop-network.safetensors" in r.headers["content-disposition"]
    path = tmp_path / "net.safetensors"
    path.write_bytes(r.content)
    ckpt = gs.load(str(path))
    assert ckpt["panel"] == "backprop" and ckpt["settings"]["steps"] == "0.3,0.3"
    assert ckpt["architecture"]["hidden"] == [3, 2]
    assert ckpt["architecture"]["activation"] == "tanh"
    loaded = load_model(str(path))
    x = Tensor(bp.PANEL_X, dtype=np.float64)
    expected = bp.panel_network("tanh", 7, [0.3, 0.3])(x).data
    np.testing.assert_array_equal(loaded(x).data, expected)
    assert loaded[0].weight.data.dtype == np.float64


BAD_NETWORK = [
    ({"activation": "softplus"}, "activation must be one of sigmoid, relu, tanh"),
    ({"seed": "-1"}, "seed must be at least 0"),
    ({"seed": "1.5"}, "seed must be a whole number"),
    ({"seed": "abc"}, "seed must be a number"),
    ({"seed": str(2**40)}, "seed must be at most"),
    ({"steps": "0.1,abc"}, "steps must be a number"),
    ({"steps": "0.1,-1"}, "steps must hold learning rates greater than 0 and at most 100"),
    ({"steps": "1000"}, "steps must hold learning rates greater than 0 and at most 100"),
    ({"steps": ",".join(["0.1"] * 201)}, "steps must hold at most 200 learning rates"),
    ({"steps": ",".join(["3"] * 20)}, "the network diverged at step"),
]
BAD_SELECTION = [
    ({"param": "9.weight", "index": "0,0"}, "param must be one of 0.weight, 0.bias"),
    ({"param": "0.weight"}, "index is required with param (for 0.weight)"),
    ({"param": "0.weight", "index": "1"}, "index must have 2 whole numbers for 0.weight"),
    ({"param": "0.bias", "index": "1,0"}, "index must have 1 whole number for 0.bias"),
    ({"param": "0.weight", "index": "3,0"}, "index 3,0 is outside 0.weight of shape [3, 2]"),
    ({"param": "2.weight", "index": "-1,0"}, "index -1,0 is outside 2.weight of shape [2, 3]"),
    ({"param": "0.weight", "index": "a,0"}, "index must be a number, got 'a'"),
    ({"param": "0.weight", "index": "0.5,0"}, "index must be a whole number"),
    ({"index": "1"}, "index needs param"),
]


@pytest.mark.parametrize(("params", "message"), BAD_NETWORK + BAD_SELECTION)
def test_bad_input_is_a_400_with_a_message(client, params, message):
    paths = ["/api/backprop/network", "/api/backprop/step"]
    if params in [p for p, _ in BAD_NETWORK]:
        paths.append("/api/backprop/model")  # the export refuses a bad network the same way
    for path in paths:
        r = client.get(path, params={**params, "lr": "0.1"})
        assert r.status_code == 400, (path, r.text)
        assert message in r.json()["error"], (path, r.json())
    assert client.get("/api/backprop/network").status_code == 200  # the server goes on


@pytest.mark.parametrize(
    ("lr", "message"),
    [
        (None, "lr is required"),
        ("0", "lr must be greater than 0"),
        ("-0.1", "lr must be greater than 0"),
        ("abc", "lr must be a number"),
        ("inf", "lr must be a finite number"),
        ("1000", "lr must be at most 100"),
    ],
)
def test_a_bad_learning_rate_is_a_400(client, lr, message):
    params = {} if lr is None else {"lr": lr}
    r = client.get("/api/backprop/step", params=params)
    assert r.status_code == 400 and message in r.json()["error"]


def test_no_step_past_the_last_one_allowed(client):
    r = client.get("/api/backprop/step", params={"steps": ",".join(["0.01"] * 200), "lr": 0.1})
    assert r.status_code == 400 and "at most 200 steps: reset" in r.json()["error"]
