"""The /optimizers panel's API without a browser: every number it sends is the library's
(``gradstep.lab.valley.optimizer_paths`` on the raw-degree Seattle pairs), bad requests are 400s
naming the parameter, and the exported model is the chosen optimizer's end point."""

from __future__ import annotations

import json

import numpy as np
import pytest
from starlette.testclient import TestClient

import gradstep as gs
from gradstep.io import loads
from gradstep.lab import valley
from gradstep.lab.checkpoints import load_model
from gradstep.lab.surface import error_surface
from gradstep.lab.web.app import SurfaceData, create_app
from gradstep.lab.web.panels import optimizers

X, Y = valley.seattle_pairs()
LABELS = {"gd": "GD", "momentum": "Momentum", "adagrad": "Adagrad", "rmsprop": "RMSProp"}
LABELS["adam"] = "Adam"


@pytest.fixture(scope="module")
def client():
    # the panel uses the lecture's pairs whatever data the lab was started with
    return TestClient(create_app(SurfaceData([0.0, 1.0, 2.0], [1.0, 0.0, 2.0], "test data")))


def _reference(start=valley.START, steps=valley.STEPS, lrs=None, keys=LABELS):
    settings = valley.default_settings(X)
    chosen = {}
    for k in keys:
        name, kwargs = settings[LABELS[k]]
        chosen[LABELS[k]] = (name, {**kwargs, "lr": (lrs or {}).get(k, kwargs["lr"])})
    return valley.optimizer_paths(X, Y, start, steps, chosen)


def test_defaults_are_the_librarys_numbers(client):
    r = client.get("/api/optimizers/run")
    assert r.status_code == 200
    got = r.json()
    ref = valley.summary(valley.optimizer_paths(X, Y))
    for key in ("hessian_eigenvalues", "gd_lr_limit", "min_loss", "steps", "tolerance"):
        assert got[key] == ref[key], key
    assert got["least_squares"] == list(ref["least_squares"])
    assert got["hessian_eigenvalues"] == pytest.approx([0.349, 569.9], rel=1e-3)
    assert list(got["settings"]) == ["GD", "Momentum", "Adagrad", "RMSProp", "Adam"]
    for label, r_ref in ref["settings"].items():
        readout = {k: got["settings"][label][k] for k in r_ref}
        assert readout == json.loads(json.dumps(r_ref)), label
    # the documented step counts (docs/optimizers.md)
    reach = {k: v["steps_to_tolerance"] for k, v in got["settings"].items()}
    assert reach == {"GD": 1809, "Momentum": 169, "Adagrad": 139, "RMSProp": 739, "Adam": 94}


def test_paths_are_sampled_from_the_full_path_and_end_at_its_end(client):
    got = client.get("/api/optimizers/run").json()
    ref = _reference()
    for label, r in got["settings"].items():
        path = ref["settings"][label]["path"]
        steps = r["step"]
        assert steps[:200] == list(range(200)) and steps[-1] == len(path) - 1
        assert len(steps) < 1300 < len(path)  # downsampled: 3,001 points each
        np.testing.assert_array_equal(r["w"], path[steps, 0])
        np.testing.assert_array_equal(r["b"], path[steps, 1])
        floor = ref["min_loss"] * 1e-15
        excess = np.maximum(path[steps, 2] - ref["min_loss"], floor)
        np.testing.assert_array_equal(r["excess"], excess)
    g = got["grid"]
    i, j = 17, 40
    expected = error_surface(X, Y, [g["w"][j]], [g["b"][i]])[0, 0]
    assert g["log10_loss"][i][j] == pytest.approx(np.log10(expected), abs=1e-4)
    w, b = ref["least_squares"]
    assert g["w"][0] < min(w, -1) and g["w"][-1] > max(w, -1)
    assert g["b"][0] < min(b, -5) and g["b"][-1] > max(b, -5)


def test_changed_settings_and_divergence(client):
    params = {"lr_adam": 0.3, "lr_gd": 0.0036, "steps": 500, "w0": 2, "b0": -3}
    params["optimizers"] = "gd,adam"
    got = client.get("/api/optimizers/run", params=params).json()
    ref = valley.summary(_reference((2.0, -3.0), 500, {"adam": 0.3, "gd": 0.0036}, ("gd", "adam")))
    assert list(got["settings"]) == ["GD", "Adam"]
    for label, r_ref in ref["settings"].items():
        r = got["settings"][label]
        assert r["hyperparameters"] == r_ref["hyperparameters"]
        assert r["steps_to_tolerance"] == r_ref["steps_to_tolerance"]
        assert r["final_loss"] == r_ref["final_loss"]
    # just above 2 / lambda_max, GD diverges, and the page is told so (JSON, no inf)
    assert got["settings"]["GD"]["diverged"] and got["settings"]["GD"]["diverged_at"] > 0
    # a rate so large that the loss overflows: the page gets null, never inf or NaN
    r = client.get("/api/optimizers/run", params={"lr_gd": 1e200, "steps": 20})
    assert r.status_code == 200
    gd = json.loads(r.text, parse_constant=lambda c: pytest.fail(c))["settings"]["GD"]
    assert gd["diverged"] and gd["diverged_at"] == 1 and gd["final_loss"] is None
    assert gd["w"][0] == -1.0 and gd["excess"][-1] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr_gd": 0}, "lr_gd must be greater than 0"),
        ({"lr_adam": -1}, "lr_adam must be greater than 0"),
        ({"lr_momentum": "nan"}, "lr_momentum must be a finite number"),
        ({"lr_rmsprop": "fast"}, "lr_rmsprop must be a number"),
        ({"steps": 0}, "steps must be at least 1"),
        ({"steps": 10_001}, "steps must be at most 10000"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"optimizers": "gd,sgd"}, "optimizers: unknown optimizer 'sgd'"),
        ({"w0": "inf"}, "w0 must be a finite number"),
        ({"b0": "left"}, "b0 must be a number"),
        ({"b0": 1000}, "b0 must be at most 100"),
        ({"lr_sgd": 0.1}, "unknown parameter 'lr_sgd'"),
        ({"which": "sgd"}, "which must be one of best, gd"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(client, params, message):
    for path in ("/api/optimizers/run", "/api/optimizers/model"):
        r = client.get(path, params=params)
        assert r.status_code == 400 and message in r.json()["error"], (path, r.text)
    assert client.get("/api/optimizers/run", params={"steps": 5}).status_code == 200


def _exported(client, params):
    r = client.get("/api/optimizers/model", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].startswith("attachment")
    return loads(r.content)


@pytest.mark.parametrize(("which", "label"), [("best", "Adam"), ("gd", "GD")])
def test_the_model_export_is_the_optimizers_end_point(client, which, label):
    ckpt = _exported(client, {"which": which, "steps": 300})
    model = load_model(ckpt)
    ref = _reference(steps=300)["settings"][label]["path"][-1]
    assert ckpt["panel"] == "optimizers" and ckpt["settings"]["exported"] == label
    assert float(model[0].weight.data[0, 0]) == ref[0]
    assert float(model[0].bias.data[0]) == ref[1]
    x = gs.Tensor(X[:5, None], dtype=np.float64)
    np.testing.assert_allclose(model(x).numpy()[:, 0], ref[1] + ref[0] * X[:5], rtol=1e-14)


def test_best_is_the_one_that_settles_soonest_among_the_shown(client):
    # at 300 steps only Momentum, Adagrad and Adam settle; Adam (94) soonest
    ckpt = _exported(client, {"which": "best", "steps": 300, "optimizers": "gd,adagrad"})
    assert ckpt["settings"]["exported"] == "Adagrad"
    ref = _reference(steps=300, keys=("gd", "adagrad"))
    assert optimizers.best_label(ref) == "Adagrad"
    # none settles: the lowest final loss; all diverged: nothing to export
    ckpt = _exported(client, {"which": "best", "steps": 20, "optimizers": "gd,rmsprop"})
    ref = valley.summary(_reference(steps=20, keys=("gd", "rmsprop")))["settings"]
    assert ckpt["settings"]["exported"] == min(ref, key=lambda k: ref[k]["final_loss"])
    r = client.get("/api/optimizers/model", params={"which": "gd", "lr_gd": 1})
    assert r.status_code == 400 and "GD diverged" in r.json()["error"]
    r = client.get("/api/optimizers/model", params={"optimizers": "gd", "lr_gd": 1})
    assert r.status_code == 400 and "every chosen optimizer diverged" in r.json()["error"]


def test_the_page_carries_the_librarys_defaults(client):
    html = client.get("/optimizers").text
    for k, label in LABELS.items():
        lr = valley.default_settings(X)[label][1]["lr"]
        assert f'id="lr-{k}"' in html and f'value="{lr!r}"' in html
        assert f'id="show-{k}"' in html and f'id="reach-{k}"' in html
    assert '<script src="/static/optimizers.js">' in html
