"""The /critical panel's API without a browser: every number it sends is the library's
(``gradstep.lab.critical_points`` on ``gradstep.lab.hw2_2``'s data and network), bad requests
are 400s with a message, and the exported model is the run's network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from starlette.testclient import TestClient

import gradstep as gs
from gradstep import nn
from gradstep.io import loads
from gradstep.lab import hw2_2
from gradstep.lab.checkpoints import load_model
from gradstep.lab.critical_points import (
    escape_direction,
    find_critical_point,
    inspect_critical_point,
)
from gradstep.lab.network_hessian import LossFunction
from gradstep.lab.web.app import SurfaceData, create_app

X, Y = hw2_2.data()
MINIMUM = {"hidden": 1, "activation": "tanh", "epochs": 500, "lr": 0.05, "grad_tol": 1e-8}


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(SurfaceData([0.0, 1.0, 2.0], [1.0, 0.0, 2.0], "test data")))


def _events(client, params) -> list[dict]:
    with client.stream("GET", "/api/critical/run", params=params) as r:
        assert r.status_code == 200
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    return [json.loads(line) for line in lines if '"phase"' in line]


def _exported(client, params):
    """The module the export button's file rebuilds."""
    r = client.get("/api/critical/model", params=params)
    assert r.status_code == 200 and "critical.safetensors" in r.headers["content-disposition"]
    return load_model(loads(r.content))


def _theta(model) -> np.ndarray:
    return np.concatenate([p.data.ravel() for p in model.parameters()])


def _saddle(hidden: int = 16):
    return hw2_2.origin_saddle(hw2_2.network(0, hidden), X, Y)


def test_the_panel_is_listed_and_its_page_names_the_limit(client):
    assert 'href="/critical"' in client.get("/").text
    page = client.get("/critical").text
    assert 'id="spectrum"' in page and "1 to 128" in page and "385 parameters" in page


def test_inspecting_the_saddle_start_is_inspect_critical_point(client):
    r = client.get("/api/critical/inspect", params={"start": "saddle", "hidden": 16}).json()
    ref = inspect_critical_point(_saddle(), nn.MSELoss(), X, Y, tol=1e-6, grad_tol=1e-3)
    assert r["verdict"] == ref["verdict"] == "saddle point"
    for key in ("n_positive", "n_negative", "n_zero", "parameters", "minimum_ratio"):
        assert r[key] == ref[key], key
    assert r["minimum_ratio_gauss_newton"] == ref["minimum_ratio_gauss_newton"]
    np.testing.assert_array_equal(r["eigenvalues"], ref["eigenvalues"])
    assert r["zero"] == pytest.approx(1e-6 * np.abs(ref["eigenvalues"]).max(), rel=1e-15)
    assert "16 direction(s) curve down" in r["meaning"]
    assert "cannot see the 16 negative" in r["gauss_newton"]
    assert len(r["run"]) == 32  # the network now lives on the server


def test_the_homeworks_128_units_work(client):
    # each of the 128 (w_j, v_j) pairs couples by -2 Cov(x, y): 128 negative eigenvalues
    r = client.get("/api/critical/inspect", params={"start": "saddle", "hidden": 128}).json()
    cov = np.cov(X.ravel(), Y.ravel(), bias=True)[0, 1]
    assert r["parameters"] == 385 and r["n_negative"] == 128 and r["verdict"] == "saddle point"
    assert r["eigenvalues"][0] == pytest.approx(-2 * abs(cov), rel=1e-9)
    s = client.post("/api/critical/step", json={"run": r["run"], "t": 1.0}).json()
    assert s["loss"] < r["loss"]


def test_inspecting_fresh_weights_uses_hw2_2s_network_and_the_tolerances(client):
    q = {"hidden": 8, "seed": 3, "tol": 1e-4, "grad_tol": 0.5}
    r = client.get("/api/critical/inspect", params=q).json()
    ref = inspect_critical_point(hw2_2.network(3, 8), nn.MSELoss(), X, Y, tol=1e-4, grad_tol=0.5)
    assert (r["n_negative"], r["n_zero"], r["verdict"]) == (
        ref["n_negative"],
        ref["n_zero"],
        ref["verdict"],
    )
    assert r["grad_norm"] == ref["grad_norm"] and r["loss"] == ref["loss"]


def test_a_run_streams_find_critical_point_and_keeps_its_model(client):
    q = {"hidden": 8, "seed": 1, "epochs": 300, "grad_tol": 1e-4, "max_steps": 20}
    events = _events(client, q)
    model = hw2_2.network(1, 8)
    ref = find_critical_point(model, nn.MSELoss(), X, Y, 300, 0.01, grad_tol=1e-4, max_steps=20)
    train = [e for e in events if e["phase"] == "train"]
    second = [e for e in events if e["phase"] == "gradient norm"]
    done = events[-1]
    assert [e["step"] for e in train] == list(range(0, 300, 3))  # at most 100 reports
    g0 = np.linalg.norm(LossFunction(hw2_2.network(1, 8), nn.MSELoss(), X, Y).grad())
    assert train[0]["grad_norm"] == pytest.approx(g0, rel=1e-12)
    assert [e["grad_norm"] for e in second] == ref["grad_norm_history"]
    assert done["phase"] == "done" and done["reached"] == ref["reached"]
    assert done["loss"] == ref["loss"] and done["stop"] in ("reached", "stalled", "max steps")
    assert second[-1]["grad_norm"] < train[0]["grad_norm"]
    assert len({e["run"] for e in events}) == 1
    got = _exported(client, {"run": done["run"]})
    np.testing.assert_array_equal(_theta(got), _theta(model))
    # inspecting the run is inspecting the model find_critical_point left
    r = client.get("/api/critical/inspect", params={"run": done["run"], "grad_tol": 1e-4}).json()
    ref_i = inspect_critical_point(model, nn.MSELoss(), X, Y, grad_tol=1e-4)
    assert r["verdict"] == ref_i["verdict"] and r["n_negative"] == ref_i["n_negative"]


def test_escape_and_a_step_along_u_leave_the_saddle(client):
    run = client.get("/api/critical/inspect", params={"start": "saddle"}).json()["run"]
    e = client.get("/api/critical/escape", params={"run": run, "t": 0.5}).json()
    ref = escape_direction(_saddle(), nn.MSELoss(), X, Y, ts=np.linspace(0, 1.0, 21))
    assert e["negative"] and e["eigenvalue"] == ref["eigenvalue"] and e["step"] == 0.5
    assert e["t"] == pytest.approx(np.linspace(-1.0, 1.0, 41).tolist(), abs=1e-15)
    assert e["loss"][20:] == ref["loss_plus"].tolist()
    assert e["loss"][:20] == ref["loss_minus"][:0:-1].tolist()
    assert e["model"][20:] == ref["model_plus"].tolist()
    assert max(e["loss"][19], e["loss"][21]) < e["loss"][20]  # falls on both sides
    s = client.post("/api/critical/step", json={"run": run, "t": 0.5}).json()
    theta = LossFunction(_saddle(), nn.MSELoss(), X, Y).theta + 0.5 * ref["direction"]
    moved = LossFunction(_saddle(), nn.MSELoss(), X, Y, freeze=False)
    assert s["loss"] == pytest.approx(moved.value(theta), rel=1e-12)
    assert s["loss"] == pytest.approx(e["loss"][30], rel=1e-12) and s["run"] != run
    assert s["loss"] < e["loss"][20]
    # Run from the moved network trains on from there (the saddle itself would not move)
    events = _events(client, {"run": s["run"], "epochs": 100, "max_steps": 0})
    assert events[0]["loss"] == pytest.approx(s["loss"], rel=1e-12)
    assert events[-1]["loss"] < 0.5 * s["loss"]
    got = _exported(client, {"run": s["run"]})
    np.testing.assert_allclose(_theta(got), theta, rtol=0, atol=1e-15)


def test_a_local_minimum_has_nothing_to_escape_along(client):
    events = _events(client, MINIMUM)
    run = events[-1]["run"]
    r = client.get("/api/critical/inspect", params={"run": run, "grad_tol": 1e-6}).json()
    assert r["verdict"] == "local minimum" and r["n_negative"] == 0
    e = client.get("/api/critical/escape", params={"run": run}).json()
    assert e["negative"] is False and "No negative eigenvalue" in e["message"]
    assert e["smallest"] == r["eigenvalues"][0] > 0
    s = client.post("/api/critical/step", json={"run": run, "t": 1})
    assert s.status_code == 400 and "no negative eigenvalue" in s.json()["error"]


def test_the_export_is_the_network_the_settings_make(client, tmp_path):
    for activation in ("tanh", "sigmoid"):
        q = {"hidden": 5, "seed": 7, "activation": activation}
        path = tmp_path / f"{activation}.safetensors"
        path.write_bytes(client.get("/api/critical/model", params=q).content)
        ckpt = gs.load(str(path))  # the file a user saves, read as a user would
        assert ckpt["panel"] == "critical" and ckpt["architecture"]["activation"] == activation
        assert ckpt["settings"]["hidden"] == 5 and ckpt["settings"]["start"] == "trained"
        model = load_model(ckpt)
        gs.manual_seed(7)
        ref = nn.mlp(1, [5], 1, activation).double()
        xt = gs.Tensor(X, dtype=np.float64)
        np.testing.assert_array_equal(model(xt).data, ref(xt).data)
        assert isinstance(model[1], nn.Tanh if activation == "tanh" else nn.Sigmoid)
    saddle = _exported(client, {"start": "saddle"})
    np.testing.assert_array_equal(_theta(saddle), _theta(_saddle()))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden": 0}, "hidden must be at least 1"),
        ({"hidden": 129}, "hidden must be at most 128"),
        ({"hidden": "abc"}, "hidden must be a number"),
        ({"hidden": 2.5}, "hidden must be a whole number"),
        ({"activation": "gelu"}, "activation must be one of relu, tanh, sigmoid"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"start": "top"}, "start must be one of trained, saddle"),
        ({"epochs": -1}, "epochs must be at least 0"),
        ({"epochs": 5001}, "epochs must be at most 5000"),
        ({"lr": 0}, "lr must be greater than 0"),
        ({"lr": "inf"}, "lr must be a finite number"),
        ({"grad_tol": 0}, "grad_tol must be greater than 0"),
        ({"grad_tol": "nan"}, "grad_tol must be a finite number"),
        ({"max_steps": 201}, "max_steps must be at most 200"),
        ({"tol": -1e-6}, "tol must be greater than 0"),
        ({"t": 11}, "t must be at most 10"),
        ({"colour": "red"}, "unknown parameter 'colour'"),
        ({"run": "feed"}, "no trained model 'feed'"),
    ],
)
def test_bad_input_is_a_400_with_a_message(client, params, message):
    for path in ("check", "run", "inspect", "escape", "model"):
        r = client.get(f"/api/critical/{path}", params=params)
        assert r.status_code == 400, (path, r.text)
        assert message in r.json()["error"], (path, r.json())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "the request body is not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "run is required"),
        (b'{"run": "feed", "t": 1}', "no trained model 'feed'"),
        (b'{"run": "x", "t": 1, "hidden": 3}', "unknown parameter 'hidden'"),
        (b'{"run": "x", "t": "far"}', "t must be a number"),
    ],
)
def test_a_bad_step_is_a_400_with_a_message(client, body, message):
    r = client.post("/api/critical/step", content=body)
    assert r.status_code == 400 and message in r.json()["error"]


def test_a_step_of_zero_is_refused_and_the_lab_goes_on(client):
    run = client.get("/api/critical/inspect", params={"start": "saddle", "hidden": 2}).json()["run"]
    r = client.post("/api/critical/step", json={"run": run, "t": 0})
    assert r.status_code == 400 and "t must not be 0" in r.json()["error"]
    assert client.post("/api/critical/step", json={"run": run, "t": 1}).status_code == 200


# --- the landscape and the minimum-ratio study ---------------------------------------------
def test_the_weights_landscape_is_weight_landscape_at_the_largest_output_weight(client):
    from gradstep.lab.landscape import weight_landscape

    r = client.get("/api/critical/landscape", params={"hidden": 16, "seed": 2, "span": 0.5})
    assert r.status_code == 200
    r = r.json()
    model = hw2_2.network(2, 16)
    unit = int(np.argmax(np.abs(model[2].weight.data[0])))
    first, second = f"0.weight[{unit}, 0]", f"2.weight[0, {unit}]"
    ref = weight_landscape(model, nn.MSELoss(), X, Y, first, second, 0.5, 31)
    assert r["names"] == [first, second] and r["plane"] == "weights"
    assert r["x"] == ref["first_grid"].tolist() and r["y"] == ref["second_grid"].tolist()
    np.testing.assert_array_equal(np.array(r["loss"]), ref["loss"])
    assert r["center"] == list(ref["center"]) and r["center_loss"] == ref["center_loss"]
    assert np.array(r["loss"]).shape == (31, 31) and r["loss"][15][15] == ref["center_loss"]
    # named weights, on the run the request names (the inspected saddle, here)
    run = client.get("/api/critical/inspect", params={"start": "saddle", "hidden": 4}).json()["run"]
    q = {"run": run, "first": "0.bias[1]", "second": "2.weight[0,3]", "span": 2}
    r = client.get("/api/critical/landscape", params=q).json()
    saddle = _saddle(4)
    ref = weight_landscape(saddle, nn.MSELoss(), X, Y, "0.bias[1]", "2.weight[0,3]", 2.0, 31)
    assert r["run"] == run and r["names"] == ["0.bias[1]", "2.weight[0, 3]"]
    np.testing.assert_array_equal(np.array(r["loss"]), ref["loss"])


def test_the_random_landscape_is_direction_landscape_with_the_panels_seed(client):
    from gradstep.lab.landscape import direction_landscape, filter_normalized_directions

    q = {"hidden": 12, "seed": 5, "activation": "tanh", "plane": "random", "span": 1.5}
    r = client.get("/api/critical/landscape", params=q).json()
    gs.manual_seed(5)
    model = nn.mlp(1, [12], 1, "tanh").double()
    d1, d2 = filter_normalized_directions(model, seed=5)
    grid = 1.5 * np.linspace(-1, 1, 31)
    grid[15] = 0.0
    ref = direction_landscape(model, nn.MSELoss(), X, Y, d1, d2, grid, grid)
    assert r["x"] == grid.tolist() == r["y"] and r["center"] == [0.0, 0.0]
    np.testing.assert_array_equal(np.array(r["loss"]), ref["loss"])
    assert r["center_loss"] == ref["center_loss"] == r["loss"][15][15]
    other = client.get("/api/critical/landscape", params={**q, "seed": 6}).json()
    assert other["loss"] != r["loss"]  # another seed, another network and plane


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"first": "3.weight[0, 0]"}, "first: no parameter '3.weight'"),
        ({"second": "0.weight[99, 0]"}, "second: index 99 in '0.weight[99, 0]' is outside"),
        ({"first": "0.weight[1]"}, "first: '0.weight' has shape (4, 1)"),
        ({"second": "w[[1"}, "second: cannot read 'w[[1' as a weight"),
        ({"first": "0.bias[0]", "second": "0.bias[-4]"}, "first and second name the same"),
        ({"first": "x" * 101}, "first must be a weight's name"),
        ({"span": 0}, "span must be greater than 0"),
        ({"span": "wide"}, "span must be a number"),
        ({"span": 11}, "span must be at most 10"),
        ({"plane": "pca"}, "plane must be one of weights, random"),
    ],
)
def test_a_bad_landscape_is_a_400_naming_the_parameter(client, params, message):
    r = client.get("/api/critical/landscape", params={"hidden": 4, **params})
    assert r.status_code == 400 and message in r.json()["error"], r.json()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"study_seeds": 0}, "study_seeds must be at least 1"),
        ({"study_seeds": 31}, "study_seeds must be at most 30"),
        ({"study_seeds": "many"}, "study_seeds must be a number"),
        ({"hidden": 129}, "hidden must be at most 128"),
    ],
)
def test_a_bad_study_is_a_400(client, params, message):
    for path in ("check", "study"):
        r = client.get(f"/api/critical/{path}", params=params)
        assert r.status_code == 400 and message in r.json()["error"], (path, r.json())


def test_the_study_streams_minimum_ratio_study_one_seed_at_a_time(client):
    q = {"hidden": 6, "seed": 3, "study_seeds": 2, "max_steps": 4, "activation": "tanh"}
    with client.stream("GET", "/api/critical/study", params=q) as r:
        assert r.status_code == 200
        rows = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith('data: {"seed')]
    assert [(row["seed"], row["done"], row["of"]) for row in rows] == [(3, 1, 2), (4, 2, 2)]
    for row in rows:
        (ref,) = hw2_2.minimum_ratio_study(
            seeds=[row["seed"]], hidden=6, max_steps=4, activation="tanh"
        )
        for key in set(ref) - {"seconds"}:
            assert row[key] == ref[key], key
        assert 0 <= row["minimum_ratio"] <= 1 and row["seconds"] > 0
    # the study's tanh network is the panel's: hw2_2.network takes the activation now
    gs.manual_seed(3)
    panel = nn.mlp(1, [6], 1, "tanh").double()
    np.testing.assert_array_equal(_theta(hw2_2.network(3, 6, "tanh")), _theta(panel))
    assert isinstance(hw2_2.network(3, 6, "tanh")[1], nn.Tanh)
