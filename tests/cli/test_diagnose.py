"""``gradstep diagnose`` on a run from ``gradstep train``: the numbers are those of
inspect_critical_point on the run's training loss over the same rows; bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from gradstep import nn
from gradstep.cli.main import main
from gradstep.data.tabular import read_table
from gradstep.lab.critical_points import inspect_critical_point
from gradstep.train.tabular import TabularModel


def write_table(path, n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    df = pd.DataFrame(
        {
            "a": X[:, 0],
            "b": X[:, 1],
            "c": X[:, 2],
            "y": 10 + 3 * np.tanh(X @ [1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(n),
            "kind": np.where(X[:, 0] + X[:, 1] > 0, "up", "down"),
        }
    )
    df.loc[[4, 7], "y"] = np.nan  # rows without a target are left out, and counted
    df.to_csv(path, index=False)
    return df


def train(folder, data, *options):
    argv = ["train", "--data", str(data), "--hidden", "4", "--epochs", "8", "--quiet"]
    assert main([*argv, *options, "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diagnose")
    data = tmp / "data.csv"
    write_table(data)
    mse = train(tmp / "mse", data, "--target", "y", "--features", "a,b,c")
    mae = train(tmp / "mae", data, "--target", "y", "--features", "a,b,c", "--loss", "mae")
    ce = train(tmp / "ce", data, "--target", "kind", "--features", "a,b")
    return {"data": data, "mse": mse, "mae": mae, "ce": ce, "tmp": tmp}


def diagnose_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["diagnose", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def by_hand(run_dir, data, loss_fn, rows=None, tol=1e-6):
    """The run's training loss on the rows with a target, prepared as train/predict do."""
    run = TabularModel.load(run_dir)
    df = read_table(data)
    df = df[df[run.config.target].notna()]
    df = df.iloc[:rows] if rows else df
    X = run.encoder.transform(df)
    if run.task == "regression":
        y = ((df[run.config.target].to_numpy(np.float64) - run.y_mean) / run.y_std)[:, None]
    else:
        y = np.array([run.classes.index(v) for v in df[run.config.target]])
    return run, X, y, inspect_critical_point(run.model, loss_fn, X, y, tol=tol)


def test_the_numbers_are_inspect_critical_points_on_the_runs_training_loss(runs, capsys):
    d = diagnose_json(capsys, "--model", runs["mse"], "--data", runs["data"])
    run, X, y, ref = by_hand(runs["mse"], runs["data"], nn.MSELoss())
    assert (d["rows"], d["rows_in_file"], d["left_out"]) == (88, 90, {"missing target": 2})
    assert d["parameters"] == ref["parameters"] == 3 * 4 + 4 + 4 + 1
    for key in ("loss", "grad_norm", "n_positive", "n_negative", "n_zero", "verdict"):
        assert d[key] == ref[key], key
    assert d["minimum_ratio"] == ref["minimum_ratio"]
    assert d["minimum_ratio_gauss_newton"] == ref["minimum_ratio_gauss_newton"]
    assert d["eigenvalues"] == ref["eigenvalues"].tolist()
    assert d["smallest_eigenvalue"] == ref["eigenvalues"][0]
    assert d["largest_eigenvalue"] == ref["eigenvalues"][-1]
    assert d["n_positive"] + d["n_negative"] + d["n_zero"] == d["parameters"]
    assert (d["loss_name"], d["trained_with"], d["tol"], d["grad_tol"]) == (
        "mse",
        "mse",
        1e-6,
        1e-3,
    )
    # the gradient norm, independently: PyTorch's autograd on the same float64 network
    lin = [m for m in run.model.modules() if isinstance(m, nn.Linear)]
    params = [
        torch.tensor(np.array(p.data, np.float64), requires_grad=True)
        for m in lin
        for p in (m.weight, m.bias)
    ]
    w1, b1, w2, b2 = params
    out = torch.relu(torch.from_numpy(X) @ w1.T + b1) @ w2.T + b2
    torch.nn.functional.mse_loss(out, torch.from_numpy(y)).backward()
    g = torch.cat([p.grad.reshape(-1) for p in params])
    np.testing.assert_allclose(d["grad_norm"], float(torch.linalg.vector_norm(g)), rtol=1e-9)


def test_the_text_report_prints_those_numbers_and_what_the_verdict_means(runs, capsys):
    d = diagnose_json(
        capsys, "--model", runs["mse"], "--data", runs["data"], "--rows", 40, "--tol", 1e-4
    )
    assert (
        main(
            [
                "diagnose",
                "--model",
                str(runs["mse"]),
                "--data",
                str(runs["data"]),
                "--rows",
                "40",
                "--tol",
                "1e-4",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    _, _, _, ref = by_hand(runs["mse"], runs["data"], nn.MSELoss(), rows=40, tol=1e-4)
    assert d["rows"] == 40 and d["grad_norm"] == ref["grad_norm"] and d["tol"] == 1e-4
    assert f"rows: 40 of 90 in {runs['data']} (left out: 2 with a missing target)" in text
    assert f"parameters P: {ref['parameters']}\n" in text
    assert f"loss: {ref['loss']:.6g}\n" in text
    assert f"gradient norm: {ref['grad_norm']:.6g} (--grad-tol 0.001)" in text
    assert (
        f"{ref['n_positive']} positive, {ref['n_negative']} negative, {ref['n_zero']} zero "
        "(|lambda| <= 0.0001 x max|lambda|" in text
    )
    eig = ref["eigenvalues"]
    assert f"smallest eigenvalue: {eig[0]:.6g}, largest: {eig[-1]:.6g}" in text
    assert f"minimum ratio (positive eigenvalues / P, exact): {ref['minimum_ratio']:.4g}" in text
    assert f"(Gauss-Newton, the course's): {ref['minimum_ratio_gauss_newton']:.4g}" in text
    assert f"verdict: {ref['verdict']}\n  {d['meaning']}" in text


def test_a_classification_run_is_diagnosed_with_its_cross_entropy(runs, capsys):
    d = diagnose_json(capsys, "--model", runs["ce"], "--data", runs["data"])
    _, _, _, ref = by_hand(runs["ce"], runs["data"], nn.CrossEntropyLoss())
    assert d["rows"] == 90 and d["loss_name"] == "ce"
    assert (d["loss"], d["grad_norm"], d["n_positive"]) == (
        ref["loss"],
        ref["grad_norm"],
        ref["n_positive"],
    )
    assert d["minimum_ratio_gauss_newton"] is None  # the course's ratio is the MSE's


def test_a_kinked_loss_is_refused_in_one_line_unless_the_mse_is_asked_for(runs, capsys):
    capsys.readouterr()
    assert main(["diagnose", "--model", str(runs["mae"]), "--data", str(runs["data"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained with the mae loss" in err and "--loss mse" in err
    d = diagnose_json(capsys, "--model", runs["mae"], "--data", runs["data"], "--loss", "mse")
    _, _, _, ref = by_hand(runs["mae"], runs["data"], nn.MSELoss())
    assert (d["loss_name"], d["trained_with"]) == ("mse", "mae")
    assert d["grad_norm"] == ref["grad_norm"] and d["notes"][0].startswith(
        "the run was trained with the mae loss"
    )
    assert (
        main(
            ["diagnose", "--model", str(runs["mae"]), "--data", str(runs["data"]), "--loss", "mse"]
        )
        == 0
    )
    assert "not the run's mae" in capsys.readouterr().out


def text_in_row_3(df):
    return df.assign(y=df["y"].astype(object).where(df.index != 3, "abc"))


def unknown_class_in_row_0(df):
    return df.assign(kind=df["kind"].where(df.index != 0, "sideways"))


# (run, how the CSV is changed, words the one line must hold); run None: no run folder there
BAD = {
    "no such run": ("nowhere", None, ["nowhere", "does not exist"]),
    "not a run": ("notarun", None, ["notarun", "no model.ckpt"]),
    "feature missing": ("mse", lambda df: df.drop(columns="b"), ["feature column 'b'"]),
    "target missing": ("mse", lambda df: df.drop(columns="y"), ["target column 'y'"]),
    "empty file": ("mse", "", ["the file is empty"]),
    "header only": ("mse", "a,b,c,y\n", ["no data rows"]),
    "no target value": ("mse", lambda df: df.assign(y=np.nan), ["'y'", "no row has a target"]),
    "text target": ("mse", text_in_row_3, ["line 5", "'y'", "abc"]),
    "unknown class": ("ce", unknown_class_in_row_0, ["line 2", "'kind'", "'sideways'"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_naming_the_file_and_exit_2(runs, capsys, tmp_path, case):
    run, change, words = BAD[case]
    data = tmp_path / "bad.csv"
    if change is None:
        data = runs["data"]
    elif isinstance(change, str):
        data.write_text(change)
    else:
        change(pd.read_csv(runs["data"])).to_csv(data, index=False)
    (tmp_path / "notarun").mkdir()
    folder = runs[run] if run in runs else tmp_path / run
    capsys.readouterr()
    code = main(["diagnose", "--model", str(folder), "--data", str(data)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: ")
    assert (str(folder) if change is None else str(data)) in err, err
    for w in words:
        assert w in err, (w, err)
