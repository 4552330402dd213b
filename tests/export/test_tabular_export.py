"""Exporting a ``gradstep train`` run: the ONNX graph takes raw columns and agrees with
``TabularModel.predict`` / ``predict_proba`` on the same table."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from gradstep import nn
from gradstep.data import columns as cols
from gradstep.data.tabular import read_table
from gradstep.export import onnx_bytes, to_onnx, to_torch, torch_files
from gradstep.train.tabular import TabularModel, TrainConfig, train_tabular

from .test_export import load_module

COLOURS = ["red", "green", "blue"]


def table(n: int, seed: int, unseen: bool = False, date: bool = False) -> str:
    """CSV text: numbers with missing cells, a boolean, two categories, a target of each kind.

    The column 'label' shares an output's name and 'num rooms' needs sanitising."""
    rng = np.random.default_rng(seed)
    head = ["age", "num rooms", "income", "member", "colour", "label", "y", "kind"]
    lines = [",".join(head + (["when"] if date else []))]
    for i in range(n):
        age = rng.normal(40, 12)
        rooms = int(rng.integers(1, 6))
        income = rng.normal(52000, 9000)
        member = bool(rng.integers(0, 2))
        colour = COLOURS[i % 3]
        tag = "ab"[int(rng.integers(0, 2))]
        y = 0.05 * age + 0.8 * rooms + income / 20000 + (colour == "red") + rng.normal(0, 0.2)
        kind = "low" if y < 6.5 else ("mid" if y < 8 else "high")
        row = [f"{age:.2f}", str(rooms), f"{income:.1f}", str(member).lower(), colour, tag]
        if i % 7 == 3:
            row[0] = ""  # age missing: an indicator
        if i % 11 == 5:
            row[3] = "" if i % 2 else "NA"  # member missing
        if i % 9 == 4:
            row[4] = ""  # colour missing: filled with the most frequent level + an indicator
        if unseen and i % 4 == 1:
            row[4] = "purple"  # never seen in training: an all-zero one-hot block
        if unseen and i % 5 == 2:
            row[1] = ""  # num rooms was never missing in training: filled, no indicator
        cells = row + [f"{y:.4f}", kind]
        if date:
            cells.append(f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" if i % 6 else "")
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def train(tmp, name: str, target: str, features: list | None = None, date: bool = False):
    csv = tmp / f"{name}.csv"
    csv.write_text(table(90, 0, date=date))
    cfg = TrainConfig(
        target=target,
        features=features or [],
        hidden=[8],
        epochs=5,
        batch_size=16,
        val_fraction=0.0,
        seed=0,
    )
    if not features:
        other = "kind" if target == "y" else "y"
        cfg.features = [c for c in read_table(csv).columns if c not in (target, other)]
    train_tabular(csv, cfg, tmp / name, verbose=0)
    return TabularModel.load(tmp / name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    new = tmp / "new.csv"
    new.write_text(table(40, 1, unseen=True))
    return {
        "regression": train(tmp, "reg", "y"),
        "classification": train(tmp, "cls", "kind"),
        "numeric": train(tmp, "num", "y", ["age", "num rooms", "income", "member"]),
        "new": read_table(new),
    }


def inputs_of(path) -> list[dict]:
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return json.loads(meta["inputs"])


def feeds(path, df, missing: str = "") -> dict:
    """The raw columns of ``df`` as the graph's inputs (what a user would pass)."""
    out = {}
    for inp in inputs_of(path):
        col = df[inp["column"]]
        if inp["kind"] == "categorical":
            cells = [missing if v is None or v != v else str(v) for v in col]
            out[inp["name"]] = np.array(cells, dtype=object)[:, None]
        elif inp["kind"] == "boolean":
            out[inp["name"]] = cols.booleans(col)[:, None]
        elif inp["kind"] == "date":
            out[inp["name"]] = cols.date_parts(col)
        else:
            out[inp["name"]] = cols.to_numbers(col)[:, None]
    return out


def run(path, inputs: dict) -> dict:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, inputs)))


def test_regression_graph_takes_raw_columns_and_matches_predict(runs, tmp_path):
    tm, df = runs["regression"], runs["new"]
    assert tm.encoder.num_indicator_ and tm.encoder.cat_indicator_  # both kinds of indicator
    path = to_onnx(tm, tmp_path / "reg.onnx")
    described = inputs_of(path)
    assert [d["column"] for d in described] == tm.encoder.used
    assert [d["name"] for d in described] == [
        "age",
        "num_rooms",
        "income",
        "member",
        "colour",
        "label_2",
    ]
    assert [d["dtype"] for d in described] == ["float64"] * 4 + ["string"] * 2
    expected = tm.predict(df)
    got = run(path, feeds(path, df))["prediction"]
    assert got.shape == (len(df), 1)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-5, atol=1e-5 * tm.y_std)
    # read_table's missing markers are missing inside the graph too
    marked = run(path, feeds(path, df, missing="NA"))["prediction"]
    np.testing.assert_array_equal(marked, got)


def test_classification_graph_gives_predict_proba_and_labels(runs, tmp_path):
    tm, df = runs["classification"], runs["new"]
    path = to_onnx(tm, tmp_path / "cls.onnx")
    out = run(path, feeds(path, df))
    np.testing.assert_allclose(out["probabilities"], tm.predict_proba(df), atol=1e-5)
    assert out["label"].tolist() == tm.predict(df).tolist()
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["classes"]) == list(tm.classes) and meta["target"] == "kind"


def test_an_unseen_level_is_all_zeros_like_a_level_of_its_own(runs, tmp_path):
    tm = runs["classification"]
    path = to_onnx(tm, tmp_path / "cls.onnx")
    df = runs["new"].iloc[:1].copy()
    inputs = feeds(path, df)
    inputs["colour"] = np.array([["purple"]], dtype=object)
    a = run(path, inputs)["probabilities"]
    inputs["colour"] = np.array([["never seen either"]], dtype=object)
    np.testing.assert_array_equal(run(path, inputs)["probabilities"], a)


def test_date_columns_are_refused_unless_given_as_parts(tmp_path):
    tm = train(tmp_path, "dated", "y", ["age", "colour", "when"], date=True)
    assert [c.kind for c in tm.encoder.columns_][-1] == "date"
    with pytest.raises(ValueError, match="date column 'when' cannot be parsed inside ONNX"):
        to_onnx(tm, tmp_path / "d.onnx")
    assert not (tmp_path / "d.onnx").exists()
    path = to_onnx(tm, tmp_path / "d.onnx", date_parts=True)
    assert inputs_of(path)[-1]["name"] == "when__parts"
    df = read_table(tmp_path / "dated.csv")
    got = run(path, feeds(path, df))["prediction"][:, 0]
    np.testing.assert_allclose(got, tm.predict(df), rtol=1e-5, atol=1e-5 * tm.y_std)


def test_options_a_run_decides_itself_are_refused(runs, tmp_path):
    tm = runs["regression"]
    for kwargs, message in (
        ({"input_transform": {"mean": [0.0]}}, "come from its run"),
        ({"classes": [0, 1]}, "come from its run"),
        ({"task": "classification"}, "is a regression model, not classification"),
        ({"input_name": "x"}, "named after its columns"),
    ):
        with pytest.raises(ValueError, match=message):
            to_onnx(tm, tmp_path / "m.onnx", **kwargs)
    with pytest.raises(ValueError, match="date_parts= is for a TabularModel"):
        to_onnx(nn.mlp(3, [4], 1), tmp_path / "m.onnx", date_parts=True)
    with pytest.raises(ValueError, match="come from its run"):
        to_torch(tm, tmp_path / "m.pt", output_transform={"mean": 1.0})
    assert list(tmp_path.iterdir()) == []


def test_onnx_bytes_is_what_to_onnx_writes(runs, tmp_path):
    tm = runs["classification"]
    path = to_onnx(tm, tmp_path / "cls.onnx")
    assert onnx_bytes(tm) == (tmp_path / "cls.onnx").read_bytes()
    model = nn.mlp(3, [4], 1)
    blob = onnx_bytes(model, input_name="x", output_transform={"mean": 2.0})
    assert onnx.load_from_string(blob).graph.input[0].name == "x"
    assert path.endswith("cls.onnx")


def test_torch_files_is_what_to_torch_writes(runs, tmp_path):
    tm = runs["numeric"]
    weights, module_path = to_torch(tm, tmp_path / "w.pt")
    blob, source = torch_files(tm, weights_name="w.pt")
    assert source == (tmp_path / "w.py").read_text()
    written = torch.load(weights, weights_only=True)
    again = torch.load(io.BytesIO(blob), weights_only=True)
    assert written.keys() == again.keys()
    assert all(torch.equal(written[k], again[k]) for k in written)
    with pytest.raises(ValueError, match="weights_name"):
        torch_files(tm, weights_name="")


def test_torch_export_of_a_numeric_run_takes_raw_columns(runs, tmp_path):
    tm, df = runs["numeric"], runs["new"]
    _, module_path = to_torch(tm, tmp_path / "num.pt")
    module = load_module(module_path)
    assert tm.encoder.used == module.FEATURES
    raw = np.column_stack(
        [cols.to_numbers(df[c]) for c in ("age", "num rooms", "income")]
        + [cols.booleans(df["member"])]
    )
    with torch.no_grad():
        got = module.load()(torch.from_numpy(raw)).numpy()[:, 0]
    np.testing.assert_allclose(got, tm.predict(df), rtol=1e-5, atol=1e-5 * tm.y_std)


def test_torch_export_of_a_run_with_categories_takes_the_encoded_matrix(runs, tmp_path):
    tm, df = runs["classification"], runs["new"]
    _, module_path = to_torch(tm, tmp_path / "cls.pt")
    assert "the encoded matrix of TableEncoder.transform" in Path(module_path).read_text()
    module = load_module(module_path)
    X = tm.encoder.transform(df).astype(np.float32)
    np.testing.assert_allclose(
        module.predict_proba(module.load(), X).numpy(), tm.predict_proba(df), atol=1e-5
    )
    assert module.predict(module.load(), X) == tm.predict(df).tolist()
