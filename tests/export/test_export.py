from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from sklearn.datasets import load_iris, make_regression

import gradstep as gs
from gradstep import nn
from gradstep.estimators import LinearRegression, MLPClassifier, MLPRegressor
from gradstep.export import to_onnx, to_torch

F = 4
TRANSFORM = {
    "fill": [0.5, -1.0, 2.0, 10.0],
    "indicator_columns": [1, 3],
    "mean": [0.1, -0.2, 0.3, 9.0, 0.25, 0.5],
    "scale": [1.5, 0.5, 2.0, 3.0, 0.4, 0.5],
}
TARGET = {"mean": 12.5, "scale": 3.0}


def data(n: int = 33, seed: int = 0) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(n, F)) * [1, 1, 2, 3] + [0, 0, 0, 9]
    X[[1, 4, 7], 1] = np.nan
    X[[2, 4], 3] = np.nan
    X[5, 0] = np.nan  # no indicator: only filled
    return X.astype(np.float32)


def reference(model, X, it=None, ot=None) -> np.ndarray:
    """gradstep's own answer: the transforms in float64 (as documented), the net in float32."""
    x = X.astype(np.float64)
    it = it or {}
    missing = np.isnan(x)
    if it.get("fill") is not None:
        x = np.where(missing, it["fill"], x)
    if it.get("indicator_columns"):
        x = np.concatenate([x, missing[:, it["indicator_columns"]]], axis=1)
    x = (x - it.get("mean", 0.0)) / it.get("scale", 1.0)
    with gs.no_grad():
        out = model.eval()(gs.Tensor(x.astype(np.float32))).data.astype(np.float64)
    ot = ot or {}
    return out * ot.get("scale", 1.0) + ot.get("mean", 0.0)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run_onnx(path, X) -> dict:
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"features": X})))


def load_module(path):
    spec = importlib.util.spec_from_file_location(f"exported_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_torch(module, X) -> np.ndarray:
    model = module.load()
    with torch.no_grad():
        return model(torch.from_numpy(X)).numpy().astype(np.float64)


def close(actual, expected, scale: float = 1.0):
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale)


# --- regression ----------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "leaky_relu"])
def test_regression_mlp_with_imputation_indicators_and_scaling_matches_gradstep(
    tmp_path, activation
):
    gs.manual_seed(1)
    model = nn.mlp(F + 2, [16, 8], 1, activation)
    X = data()
    expected = reference(model, X, TRANSFORM, TARGET)
    path = to_onnx(model, tmp_path / "m.onnx", input_transform=TRANSFORM, output_transform=TARGET)
    out = run_onnx(path, X)
    assert list(out) == ["prediction"] and out["prediction"].shape == (len(X), 1)
    assert out["prediction"].dtype == np.float32 and np.isfinite(out["prediction"]).all()
    close(out["prediction"], expected, TARGET["scale"])

    weights, module_path = to_torch(
        model, tmp_path / "m.pt", input_transform=TRANSFORM, output_transform=TARGET
    )
    assert module_path == os.fspath(tmp_path / "m.py")
    close(run_torch(load_module(module_path), X), expected, TARGET["scale"])


def test_every_supported_layer_without_transforms_and_several_outputs(tmp_path):
    gs.manual_seed(2)
    model = nn.Sequential(
        nn.Linear(F, 12),
        nn.Softplus(),
        nn.Dropout(0.3),
        nn.Sequential(nn.Linear(12, 12, bias=False), nn.LeakyReLU(0.2)),
        nn.Identity(),
        nn.Flatten(),
        nn.Sigmoid(),
        nn.Linear(12, 3),
    )
    X = np.random.default_rng(3).normal(size=(9, F)).astype(np.float32) * 4
    expected = reference(model, X)
    close(run_onnx(to_onnx(model, tmp_path / "m.onnx"), X)["prediction"], expected)
    weights, module_path = to_torch(model, tmp_path / "m.pt")
    module = load_module(module_path)
    close(run_torch(module, X), expected)
    assert isinstance(module.build(), torch.nn.Sequential)
    assert set(torch.load(weights, weights_only=True)) == {
        "0.weight",
        "0.bias",
        "3.weight",
        "8.weight",
        "8.bias",
    }


def test_graph_has_a_dynamic_batch_and_is_valid_onnx(tmp_path):
    model = nn.mlp(F + 2, [5], 2)
    path = to_onnx(model, tmp_path / "m.onnx", input_transform=TRANSFORM, opset=13)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    (graph_input,) = proto.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "features" and [dims[0].dim_param, dims[1].dim_value] == ["N", F]
    for n in (1, 50):
        X = data(n=50, seed=n)[:n]
        close(run_onnx(path, X)["prediction"], reference(model, X, TRANSFORM))


# --- classification ------------------------------------------------------------------------------
@pytest.mark.parametrize("classes", [["cat", "dog", "emu"], [3, 7, 11]], ids=["str", "int"])
def test_classifier_gives_softmax_probabilities_and_labels(tmp_path, classes):
    gs.manual_seed(4)
    model = nn.mlp(F + 2, [16], 3, "tanh")
    X = data(n=40)
    logits = reference(model, X, TRANSFORM)
    expected_labels = np.array(classes)[logits.argmax(axis=1)]
    kwargs = dict(input_transform=TRANSFORM, task="classification", classes=classes)
    out = run_onnx(to_onnx(model, tmp_path / "c.onnx", **kwargs), X)
    assert list(out) == ["probabilities", "label"]
    close(out["probabilities"], softmax(logits))
    assert out["label"].tolist() == expected_labels.tolist()
    if isinstance(classes[0], int):
        assert out["label"].dtype == np.int64

    module = load_module(to_torch(model, tmp_path / "c.pt", **kwargs)[1])
    close(run_torch(module, X), logits)
    assert classes == module.CLASSES
    assert module.predict(module.load(), X) == expected_labels.tolist()
    close(module.predict_proba(module.load(), X).numpy(), softmax(logits))


# --- estimators ----------------------------------------------------------------------------------
def test_mlp_regressor_exports_with_its_input_and_target_scaling(tmp_path):
    X, y = make_regression(n_samples=120, n_features=5, noise=5.0, random_state=0)
    X = (X * [1, 10, 100, 1, 0.1] + [0, 50, -300, 2, 0]).astype(np.float32)
    est = MLPRegressor(hidden_layer_sizes=(16,), max_epochs=15, random_state=0).fit(X, y + 100)
    expected = est.predict(X)
    scale = float(np.std(expected))
    close(run_onnx(to_onnx(est, tmp_path / "r.onnx"), X)["prediction"][:, 0], expected, scale)
    module = load_module(to_torch(est, tmp_path / "r.pt")[1])
    close(run_torch(module, X)[:, 0], expected, scale)


def test_mlp_classifier_exports_its_classes_and_probabilities(tmp_path):
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    est = MLPClassifier(hidden_layer_sizes=(8,), max_epochs=15, random_state=0).fit(X, names)
    out = run_onnx(to_onnx(est, tmp_path / "c.onnx"), X)
    close(out["probabilities"], est.predict_proba(X))
    assert out["label"].tolist() == est.predict(X).tolist()
    module = load_module(to_torch(est, tmp_path / "c.pt")[1])
    close(module.predict_proba(module.load(), X).numpy(), est.predict_proba(X))
    assert module.predict(module.load(), X) == est.predict(X).tolist()


def test_estimator_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="not fitted yet"):
        to_onnx(MLPRegressor(), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="LinearRegression is not supported"):
        to_onnx(LinearRegression(max_epochs=5).fit([[0.0], [1.0]], [0.0, 1.0]), tmp_path / "m")
    est = MLPRegressor(hidden_layer_sizes=(4,), max_epochs=2, random_state=0)
    est.fit(np.eye(3), [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="come from the estimator"):
        to_onnx(est, tmp_path / "m.onnx", input_transform={"mean": [0, 0, 0]})
    with pytest.raises(ValueError, match="is a regression model, not classification"):
        to_torch(est, tmp_path / "m.pt", task="classification")
    assert os.listdir(tmp_path) == []


# --- errors and atomic writes --------------------------------------------------------------------
class Square(nn.Module):
    def forward(self, x):
        return x * x


def test_unsupported_layer_is_named(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), Square(), nn.Linear(3, 1))
    for export, name in ((to_onnx, "m.onnx"), (to_torch, "m.pt")):
        with pytest.raises(ValueError, match=r"layer '1' \(Square\) is not supported"):
            export(model, tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_missing_folder_is_reported_and_nothing_is_created(tmp_path):
    model = nn.mlp(2, [3], 1)
    for export, name in ((to_onnx, "m.onnx"), (to_torch, "m.pt")):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            export(model, tmp_path / "nowhere" / name)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        to_onnx(model, tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_transform": {"mean": [0.0, 0.0]}}, r"must have shape \(3,\)"),
        ({"input_transform": {"scale": [1.0, 0.0, 1.0]}}, "non-zero"),
        ({"input_transform": {"fill": [0.0], "indicator_columns": [0, 0]}}, "distinct"),
        ({"input_transform": {"center": [0.0]}}, "unknown input_transform keys"),
        ({"n_features": 5}, "expects 3 inputs but receives 5"),
        ({"task": "classification", "classes": ["a"]}, "2 distinct labels"),
        ({"task": "classification", "output_transform": TARGET}, "output_transform is for"),
        ({"output_transform": {"scale": [1.0, 2.0, 3.0]}}, "output_transform"),
        ({"task": "ranking"}, "task must be"),
        ({"classes": [0, 1]}, "needs task='classification'"),
    ],
)
def test_bad_arguments_fail_before_anything_is_written(tmp_path, kwargs, message):
    model = nn.mlp(3, [4], 2)
    (tmp_path / "m.onnx").write_bytes(b"old")
    with pytest.raises(ValueError, match=message):
        to_onnx(model, tmp_path / "m.onnx", **kwargs)
    with pytest.raises(ValueError, match=message):
        to_torch(model, tmp_path / "m.pt", **kwargs)
    assert os.listdir(tmp_path) == ["m.onnx"] and (tmp_path / "m.onnx").read_bytes() == b"old"


def test_bad_onnx_options(tmp_path):
    model = nn.mlp(3, [4], 1)
    with pytest.raises(ValueError, match="opset must be"):
        to_onnx(model, tmp_path / "m.onnx", opset=9)
    with pytest.raises(ValueError, match="already a name"):
        to_onnx(model, tmp_path / "m.onnx", input_name="mean", input_transform={"mean": [0] * 3})
    with pytest.raises(ValueError, match="both be"):
        to_torch(model, tmp_path / "m.py")
    assert os.listdir(tmp_path) == []


def test_custom_input_name_and_module_path(tmp_path):
    model = nn.mlp(3, [4], 1)
    proto = onnx.load(to_onnx(model, tmp_path / "m.onnx", input_name="x"))
    assert proto.graph.input[0].name == "x"
    (tmp_path / "code").mkdir()
    weights, module_path = to_torch(model, tmp_path / "w.pt", module_path=tmp_path / "code/net.py")
    X = np.ones((2, 3), np.float32)
    close(run_torch(load_module(module_path), X), reference(model, X))


def test_importing_export_imports_neither_onnx_nor_torch():
    code = (
        "import sys, gradstep.export\n"
        "assert not {'onnx', 'torch', 'onnxruntime'} & set(sys.modules), 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_failed_module_write_removes_the_new_weights_file(tmp_path, monkeypatch):
    import gradstep.io

    real = gradstep.io.atomic_write_bytes

    def failing(path, blob):
        if os.fspath(path).endswith(".py"):
            raise OSError("disk full")
        real(path, blob)

    monkeypatch.setattr(gradstep.io, "atomic_write_bytes", failing)
    with pytest.raises(OSError, match="disk full"):
        to_torch(nn.mlp(3, [4], 1), tmp_path / "m.pt")
    assert os.listdir(tmp_path) == []


def test_other_numeric_labels_stay_numbers(tmp_path):
    model = nn.mlp(3, [4], 2)
    path = to_onnx(model, tmp_path / "c.onnx", task="classification", classes=[0.5, 2.5])
    labels = run_onnx(path, np.zeros((2, 3), np.float32))["label"]
    assert labels.dtype == np.float64 and set(labels.tolist()) <= {0.5, 2.5}
    assert onnx.load(path).metadata_props[0].key == "task"
