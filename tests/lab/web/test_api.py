"""The lab's API without a browser: Starlette's TestClient against the real app and engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from starlette.testclient import TestClient

from gradstep.lab.surface import gradient_descent_path
from gradstep.lab.web.app import SurfaceData, create_app

RNG = np.random.default_rng(0)
X = RNG.uniform(0, 10, 50)
Y = 3 * X + 2 + RNG.standard_normal(50)


@pytest.fixture(scope="module")
def data():
    return SurfaceData(X, Y, "test data")


@pytest.fixture(scope="module")
def client(data):
    return TestClient(create_app(data))


def test_steps_are_the_engines_own_gradient_descent(client, data):
    r = client.get("/api/surface/step", params={"w": 0.5, "b": -1, "lr": 0.05, "steps": 30})
    assert r.status_code == 200
    points = r.json()["points"]
    ref = gradient_descent_path(data.x, data.y, 0.5, -1, 0.05, 30)
    got = np.array([[p["w"], p["b"], p["loss"]] for p in points])
    np.testing.assert_allclose(got, ref[1:], rtol=1e-12)
    # one step at a time from the last point gives the same path (the page's Step button)
    w, b = 0.5, -1.0
    for _ in range(30):
        p = client.get("/api/surface/step", params={"w": w, "b": b, "lr": 0.05}).json()
        w, b = p["points"][0]["w"], p["points"][0]["b"]
    assert (w, b) == (ref[-1, 0], ref[-1, 1])


def test_divergence_and_convergence_are_named(client):
    # x is standardised, so the MSE's Hessian is 2 I: lr 0.5 lands on the minimum in one step
    pts = client.get("/api/surface/step", params={"lr": 0.5, "steps": 5}).json()["points"]
    assert pts[-1]["status"] == "converged" and len(pts) == 2
    pts = client.get("/api/surface/step", params={"lr": 1.5, "steps": 500}).json()["points"]
    assert pts[-1]["status"] == "diverged" and len(pts) < 500
    json.dumps(pts, allow_nan=False)  # no inf/NaN reaches the page


def test_the_grid_is_the_error_surface(client, data):
    g = client.get("/api/surface/grid", params={"loss": "mae"}).json()
    assert len(g["w"]) == len(g["log10_loss"][0]) and len(g["b"]) == len(g["log10_loss"])
    i, j = 7, 11
    expected = np.mean(np.abs(g["b"][i] + g["w"][j] * data.x - data.y))
    assert g["log10_loss"][i][j] == pytest.approx(np.log10(expected), abs=1e-4)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": 0}, "lr must be greater than 0"),
        ({"lr": -1}, "lr must be greater than 0"),
        ({"lr": "abc"}, "lr must be a number"),
        ({"lr": "nan"}, "lr must be a finite number"),
        ({}, "lr is required"),
        ({"lr": 0.1, "loss": "hinge"}, "loss must be one of mse, mae"),
        ({"lr": 0.1, "w": "inf"}, "w must be a finite number"),
        ({"lr": 0.1, "steps": 0}, "steps must be at least 1"),
        ({"lr": 0.1, "steps": 10**9}, "steps must be at most"),
    ],
)
def test_bad_input_is_a_400_with_a_message(client, params, message):
    for path in ("/api/surface/step", "/api/surface/run"):
        r = client.get(path, params=params)
        assert r.status_code == 400 and message in r.json()["error"]
    assert client.get("/api/surface/step", params={"lr": 0.1}).status_code == 200  # still up


def test_unknown_panels_and_the_pages(client):
    r = client.get("/nope", headers={"accept": "application/json"})
    assert r.status_code == 400 and "/surface" in r.json()["error"]
    r = client.get("/nope")
    assert r.status_code == 400 and "unknown panel" in r.text
    page = client.get("/surface").text
    for element in ("lr", "loss-kind", "step", "run", "reset", "w", "b", "loss", "step-count"):
        assert f'id="{element}"' in page
    assert "cdn" not in page.lower() and "/vendor/plotly.min.js" in page
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000


def test_the_stream_sends_the_same_points(client, data):
    with client.stream("GET", "/api/surface/run", params={"lr": 0.05, "w": 1, "b": 1}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        points = []
        for line in r.iter_lines():
            if line.startswith("data: "):
                points.append(json.loads(line[6:]))
            if len(points) == 20:
                break
    ref = gradient_descent_path(data.x, data.y, 1, 1, 0.05, 20)
    np.testing.assert_allclose([[p["w"], p["b"]] for p in points], ref[1:, :2], rtol=1e-12)


def test_the_command_line_refuses_what_it_cannot_serve(tmp_path, capsys):
    import socket

    from gradstep.cli.main import main

    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n2,4\n3,7\n")
    assert main(["lab", "--no-browser", "--data", str(csv)]) == 2
    assert "--data needs --x and --y" in capsys.readouterr().err
    assert main(["lab", "--no-browser", "--data", str(csv), "--x", "a", "--y", "zz"]) == 2
    assert "zz" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["lab", "--no-browser", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_surface_line_exports_as_a_model_on_the_raw_x(client, data, tmp_path):
    from gradstep.lab.checkpoints import load_model

    r = client.get("/api/surface/model", params={"w": 1.5, "b": -2.0, "lr": 0.1})
    assert r.status_code == 200
    path = tmp_path / "line.safetensors"
    path.write_bytes(r.content)
    model = load_model(str(path))
    raw = np.array([[0.0], [4.0], [9.5]])
    expected = -2.0 + 1.5 * (raw[:, 0] - data.x_mean) / data.x_std
    np.testing.assert_allclose(model(raw).data[:, 0], expected, rtol=1e-5)
    assert client.get("/api/surface/model", params={"w": 1e13}).status_code == 400


def test_the_vendored_plotly_comes_with_its_license(client):
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and b"plotly.js" in js.content[:200]
    lic = client.get("/vendor/plotly-LICENSE.txt")
    assert lic.status_code == 200 and "MIT" in lic.text and "Plotly" in lic.text
