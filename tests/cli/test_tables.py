"""Real tables: task inference, missing values, column kinds, outputs a user expects."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from gradstep.cli.main import main
from gradstep.data.bundled import load_frame
from gradstep.data.tabular import read_table
from gradstep.train.tabular import TabularModel


def train(capsys, *args):
    code = main(["train", "--quiet", *args])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    return cap.out


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("wine", "classification"),
        ("breast_cancer", "classification"),
        ("iris", "classification"),
        ("digits", "classification"),
        ("diabetes", "regression"),
        ("cars", "regression"),
        ("seattle-weather", "classification"),
    ],
)
def test_the_task_is_inferred_as_scikit_learn_would_and_said_why(here, capsys, name, task):
    assert main(["datasets", "--export", name, "d.csv"]) == 0
    target = {"cars": "Miles_per_Gallon", "seattle-weather": "weather"}.get(name, "target")
    out = train(capsys, "--data", "d.csv", "--target", target, "--epochs", "2", "--out", "r")
    assert f"task: {task} (target '{target}':" in out
    assert json.loads((here / "r" / "metrics.json").read_text())["task"] == task


def test_task_option_overrides_the_inference(here, capsys):
    main(["datasets", "--export", "wine", "d.csv"])
    out = train(
        capsys,
        "--data",
        "d.csv",
        "--target",
        "target",
        "--task",
        "regression",
        "--epochs",
        "2",
        "--out",
        "r",
    )
    assert "task: regression (target 'target': as --task says" in out


def test_missing_values_in_features_and_target(here, capsys):
    rng = np.random.default_rng(0)
    n = 120
    x = rng.standard_normal(n)
    cls = np.where(x > 0, "pos", "neg").astype(object)
    cells = [f"{v:.4f}" for v in x]
    for i, marker in zip(range(0, 30, 5), ["", "NA", "N/A", "NaN", "null", "?"]):
        cells[i] = marker
    cls[7], cls[9], cls[11] = "NA", "", "?"
    pd.DataFrame({"x": cells, "noise": rng.standard_normal(n), "label": cls}).to_csv(
        "m.csv", index=False
    )
    out = train(capsys, "--data", "m.csv", "--target", "label", "--epochs", "3", "--out", "r")
    assert "dropped 3 rows with missing target values" in out
    # counted on the training rows, where the imputation is learned
    assert re.search(r"x: numbers; [1-6] missing -> median \([-0-9.]+\) \+ missing indicator", out)
    model = TabularModel.load("r")
    assert model.classes == ["neg", "pos"]  # "NA" is not a class
    assert model.encoder.n_outputs == 3  # x, noise, and x's missing indicator
    code = main(
        ["train", "--data", "m.csv", "--target", "label", "--missing", "error", "--out", "r2"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "m.csv line 2, column 'label'" not in err and "line" in err
    out = train(
        capsys,
        "--data",
        "m.csv",
        "--target",
        "label",
        "--missing",
        "drop",
        "--epochs",
        "2",
        "--out",
        "r3",
    )
    assert "dropped 6 rows with missing feature values" in out


def test_numbers_with_thousands_separators_and_decimal_commas(here, capsys):
    # a spreadsheet export: semicolons, "3,25" decimal commas (a dot thousands separator, as in
    # "4.321", is read by pandas as a decimal point: that needs --thousands . --decimal ,)
    rows = ["weight;price;kind;ok;when;id;y"]
    rng = np.random.default_rng(1)
    weights = 1000 + rng.integers(0, 4000, 80)
    for i, w in enumerate(weights):
        p = rng.uniform(0, 10)
        y = w / 1000 + p
        rows.append(
            f"{w}"
            + f";{p:.2f}".replace(".", ",")
            + f";{'ab'[i % 2]};{'yes' if i % 3 else 'no'};2024-0{1 + i % 9}-1{i % 10}"
            + f";id{i};{y:.3f}".replace(".", ",")
        )
    (here / "eu.csv").write_text("\n".join(rows) + "\n")
    df = read_table("eu.csv")
    assert df.attrs["sep"] == ";"
    out = train(capsys, "--data", "eu.csv", "--target", "y", "--epochs", "2", "--out", "r")
    assert "weight: numbers\n" in out
    assert "decimal mark ','" in out  # seen in the first lines, used for every column
    assert df["price"].iloc[0] == float(rows[1].split(";")[1].replace(",", "."))
    assert "kind: categorical, one-hot over 2 levels" in out
    assert "ok: boolean -> 0/1" in out
    assert "when: dates" in out
    assert "skipped  id: an identifier" in out
    model = TabularModel.load("r")
    assert model.task == "regression"
    X = model.encoder.transform(df, "eu.csv")
    z = (weights - weights.mean()) / weights.std()
    assert np.corrcoef(X[:, 0], z)[0, 1] > 0.999
    (here / "eu2.csv").write_text(
        "\n".join(
            ["w;y"]
            + [
                f"{w:,};{w / 1000:.3f}".replace(",", "X").replace(".", ",").replace("X", ".")
                for w in weights
            ]
        )
        + "\n"
    )
    explicit = read_table("eu2.csv", decimal=",", thousands=".")
    np.testing.assert_array_equal(explicit["w"].to_numpy(), weights)
    # a comma file: a quoted "3,504" is three thousand five hundred and four
    lines = ["w,y"] + [f'"{w:,}",{w / 1000:.3f}' for w in weights]
    (here / "us.csv").write_text("\n".join(lines) + "\n")
    out = train(capsys, "--data", "us.csv", "--target", "y", "--epochs", "2", "--out", "r2")
    assert "w: numbers with thousands separators" in out
    from gradstep.data import columns as cols

    table = read_table("us.csv")
    np.testing.assert_array_equal(cols.to_numbers(table["w"], "thousands"), weights)
    eu = pd.Series(["0,125", "1,5", None, "2.000,25"], dtype=object)
    np.testing.assert_array_equal(
        cols.to_numbers(eu, cols.infer(eu, "x", ";").number_format), [0.125, 1.5, np.nan, 2000.25]
    )


def test_tab_files_are_sniffed(here, capsys):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 2))
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": X.sum(1)}).to_csv("t.tsv", sep="\t", index=False)
    train(capsys, "--data", "t.tsv", "--target", "y", "--epochs", "2", "--out", "r")
    assert TabularModel.load("r").features == ["a", "b"]


def test_preprocessing_is_learned_on_training_rows_and_applied_identically(here, capsys):
    rng = np.random.default_rng(3)
    n = 200
    x = rng.standard_normal(n) * 5 + 100
    colour = rng.choice(["red", "green", "blue"], n)
    y = x / 10 + (colour == "red")
    df = pd.DataFrame({"x": x, "colour": colour, "y": y})
    df.to_csv("c.csv", index=False)
    train(capsys, "--data", "c.csv", "--target", "y", "--epochs", "3", "--out", "r", "--seed", "4")
    model = TabularModel.load("r")
    perm = np.random.default_rng(4).permutation(n)
    train_rows = np.sort(perm[int(round(0.2 * n)) :])
    assert model.encoder.mean_[0] == pytest.approx(x[train_rows].mean(), rel=1e-12)
    new = pd.DataFrame({"x": [99.0, 101.0, None], "colour": ["red", "purple", None], "y": 0})
    new.to_csv("new.csv", index=False)
    assert main(["predict", "--model", "r", "--data", "new.csv", "--out", "p.csv"]) == 0
    capsys.readouterr()
    cli = pd.read_csv("p.csv")["y_predicted"].to_numpy()
    api = model.predict(read_table("new.csv"), "new.csv")
    np.testing.assert_array_equal(cli, api)
    X = model.encoder.transform(read_table("new.csv"))
    levels = model.encoder.categories_[0]
    onehot = X[:, -len(levels) :]
    assert onehot[1].sum() == 0  # "purple" was never seen: all zeros
    assert onehot[2][levels.index(model.encoder.cat_fill_[0])] == 1  # missing: most frequent


def test_predict_proba_and_evaluate_by_value(here, capsys):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((150, 2))
    label = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": label}).to_csv("k.csv", index=False)
    train(
        capsys,
        "--data",
        "k.csv",
        "--target",
        "label",
        "--epochs",
        "30",
        "--out",
        "r",
        "--class-weight",
        "balanced",
    )
    assert main(["predict", "--model", "r", "--data", "k.csv", "--out", "p.csv", "--proba"]) == 0
    p = pd.read_csv("p.csv")
    assert list(p.columns) == ["label_predicted", "proba_0", "proba_1", "proba_2"]
    np.testing.assert_allclose(p[["proba_0", "proba_1", "proba_2"]].sum(axis=1), 1, rtol=1e-9)
    assert (p["label_predicted"] == p[["proba_0", "proba_1", "proba_2"]].to_numpy().argmax(1)).all()
    # labels written as 1.0 compare equal to the class 1
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": label.astype(float)}).to_csv(
        "kf.csv", index=False
    )
    capsys.readouterr()
    assert main(["evaluate", "--model", "r", "--data", "kf.csv", "--out", "ev"]) == 0
    out = capsys.readouterr().out
    m = json.loads((here / "ev" / "metrics.json").read_text())
    assert m["unknown_labels"] == 0 and m["accuracy"] > 0.7
    assert {"macro_f1", "per_class", "confusion_matrix"} <= set(m)
    assert np.sum(m["confusion_matrix"]) == 150 and "accuracy=" in out and "macro_f1=" in out
    assert (here / "ev" / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")


def test_evaluate_regression_reports_mae_rmse_r2(here, capsys):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((100, 2))
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": X @ [2.0, 1.0]}).to_csv("r.csv", index=False)
    train(capsys, "--data", "r.csv", "--target", "y", "--epochs", "40", "--out", "run")
    assert main(["evaluate", "--model", "run", "--data", "r.csv"]) == 0
    out = capsys.readouterr().out
    assert "mae=" in out and "rmse=" in out and "r2=" in out
    model = TabularModel.load("run")
    m = model.evaluate(read_table("r.csv"), "r.csv")
    from sklearn.metrics import r2_score

    pred = model.predict(read_table("r.csv"))
    assert m["r2"] == pytest.approx(r2_score(X @ [2.0, 1.0], pred)) and m["r2"] > 0.8


def test_datasets_export_writes_the_bundled_table(here, capsys):
    assert main(["datasets", "--export", "iris", "iris.csv"]) == 0
    df = pd.read_csv("iris.csv")
    assert df.shape == (150, 5) and "target" in df
    assert main(["datasets", "--export", "iris", "iris.csv"]) == 2  # exists: not replaced
    assert main(["datasets", "--export", "nope", "x.csv"]) == 2
    assert load_frame("seattle-weather")["date"].iloc[0] == "2012-01-01"


def test_export_command_onnx_and_torch_agree_with_predict(here, capsys):
    import importlib.util

    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(7)
    X = rng.standard_normal((120, 3))
    X[::9, 1] = np.nan
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": np.nansum(X, 1)}).to_csv(
        "e.csv", index=False
    )
    train(capsys, "--data", "e.csv", "--target", "y", "--epochs", "5", "--out", "run")
    model = TabularModel.load("run")
    df = read_table("e.csv")
    want = model.predict(df, "e.csv")
    assert main(["export", "--model", "run", "--format", "onnx", "--out", "m.onnx"]) == 0
    session = ort.InferenceSession("m.onnx", providers=["CPUExecutionProvider"])
    feeds = {i.name: df[i.name].to_numpy(np.float64)[:, None] for i in session.get_inputs()}
    got = session.run(["prediction"], feeds)[0][:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert main(["export", "--model", "run", "--format", "torch", "--out", "m.pt"]) == 0
    spec = importlib.util.spec_from_file_location("exported_m", "m.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.load()
    with torch.no_grad():
        out = net(torch.tensor(df[["a", "b", "c"]].to_numpy(np.float64)))
    np.testing.assert_allclose(out.numpy().reshape(-1), want, rtol=1e-5, atol=1e-5)
    capsys.readouterr()
    assert main(["export", "--model", "run", "--format", "onnx", "--out", "m.onnx"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_auto_batch_patience_and_threads_follow_the_table_size():
    from gradstep.train.tabular import SMALL_GEMM, TrainConfig, choose_threads

    small, big = TrainConfig().for_rows(1_000), TrainConfig().for_rows(800_000)
    assert small == {"batch_size": 32, "patience": 20, "min_delta": 0.0}
    assert big["batch_size"] == 512 and big["patience"] == 5 and big["min_delta"] > 0
    assert TrainConfig(batch_size=64, patience=3).for_rows(800_000)["batch_size"] == 64
    cfg = TrainConfig(hidden=[64, 32])
    assert choose_threads(cfg, 20, 1, 512) == 1
    wide = TrainConfig(hidden=[2048, 2048])
    assert SMALL_GEMM < 2048 * 2048 * 512 and choose_threads(wide, 20, 1, 512) is None
    assert choose_threads(TrainConfig(threads=2), 20, 1, 32) == 2


@pytest.mark.parametrize("option", ["--seed", "--epochs", "--batch-size", "--patience"])
def test_huge_integers_are_one_line_errors(here, capsys, option):
    pd.DataFrame({"a": [1.0, 2, 3, 4], "y": [1.0, 2, 3, 5]}).to_csv("h.csv", index=False)
    code = main(["train", "--data", "h.csv", "--target", "y", "--out", "r", option, str(2**64)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error:")


def test_review_cases_of_reading_and_encoding(here, capsys):
    from gradstep.data import columns as cols
    from gradstep.train.scores import classification_scores

    # a first row with a field too many and a short one do not balance into a shifted table
    (here / "s.csv").write_text("a,b,c\n1,2,3,4\n4,5\n7,8,9\n")
    assert main(["train", "--data", "s.csv", "--target", "c", "--out", "r"]) == 2
    assert "s.csv line 2: 4 fields, the header has 3" in capsys.readouterr().err
    # codes trained as text match a prediction file that pandas reads as numbers
    rng = np.random.default_rng(8)
    code = rng.choice(["1", "2", "A", "B"], 200)
    y = np.where(np.isin(code, ["1", "A"]), 10.0, 0.0) + 0.01 * rng.standard_normal(200)
    pd.DataFrame({"code": code, "y": y}).to_csv("codes.csv", index=False)
    train(capsys, "--data", "codes.csv", "--target", "y", "--epochs", "60", "--out", "rc")
    pd.DataFrame({"code": ["1", "2", None], "y": 0}).to_csv("few.csv", index=False)
    assert read_table("few.csv")["code"].dtype.kind == "f"  # pandas: numbers
    pred = TabularModel.load("rc").predict(read_table("few.csv"))
    assert pred[0] > 7 and pred[1] < 3
    # daylight-saving offsets in ISO timestamps
    stamps = pd.Series(["2024-03-30T12:00:00+01:00", "2024-04-01T12:00:00+02:00", None])
    assert cols.date_parts(stamps)[1, 0] == 2024
    # macro-F1 averages over the classes present; unseen truth labels count against it
    perfect = classification_scores(np.array([0, 1]), np.array([0, 1]), ["a", "b", "c"])
    assert perfect["macro_f1"] == 1.0
    unknown = classification_scores(np.array([0, 1]), np.array([0, -1]), ["a", "b"])
    assert unknown["accuracy"] == 0.5 and unknown["macro_f1"] < 1


def test_task_edge_cases(here, capsys):
    n = 60
    labels = np.array(["1", "2", "3", "other"] * (n // 4))
    pd.DataFrame({"x": np.arange(n), "label": labels}).to_csv("l.csv", index=False)
    out = train(
        capsys,
        "--data",
        "l.csv",
        "--target",
        "label",
        "--task",
        "classification",
        "--epochs",
        "2",
        "--out",
        "r",
    )
    assert TabularModel.load("r").classes == ["1", "2", "3", "other"]
    dates = pd.date_range("2020-01-01", periods=n).strftime("%Y-%m-%d")
    pd.DataFrame({"x": np.arange(n), "day": dates}).to_csv("d.csv", index=False)
    assert main(["train", "--data", "d.csv", "--target", "day", "--out", "r2"]) == 2
    assert "holds dates" in capsys.readouterr().err
    assert "task: classification" in out


def test_new_user_trial_cases(here, capsys):
    # Excel's "sep=;" first line, and line numbers that count it
    (here / "excel.csv").write_text("sep=;\na;y\n1,5;2\n2,5;3\n3,5;4\n4,5;oops\n")
    df = read_table("excel.csv")
    assert list(df.columns) == ["a", "y"] and df["a"].iloc[0] == 1.5 and df.index[0] == 3
    # a 1e300-scale table trains with finite scores
    x = np.random.default_rng(0).standard_normal(100)
    pd.DataFrame({"x": x * 1e300, "y": x * 2e300}).to_csv("big.csv", index=False)
    train(capsys, "--data", "big.csv", "--target", "y", "--epochs", "3", "--out", "rb")
    m = json.loads((here / "rb" / "metrics.json").read_text())
    assert np.isfinite(m["train"]["rmse"]) and np.isfinite(m["train"]["r2"])
    assert main(["surface", "--data", "big.csv", "--x", "x", "--y", "y"]) == 2
    assert "too large for an error surface" in capsys.readouterr().err
    # two rows, all different: a regression; an all-missing and a constant column are skipped
    pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0], "none": [np.nan] * 4, "k": [7] * 4, "y": [1, 0, 3, 2]}
    ).to_csv("tiny.csv", index=False)
    out = train(capsys, "--data", "tiny.csv", "--target", "y", "--epochs", "2", "--out", "rt")
    assert "task: regression" in out
    assert "skipped  none: every cell is missing" in out and "skipped  k: the same value" in out
    # an output name of 240 characters is legal: its hidden temp name must be too
    name = "c" * 236 + ".csv"
    assert main(["datasets", "--export", "iris", name]) == 0
    assert (here / name).stat().st_size > 1000
    # export refuses an extension that is not its format's
    assert main(["export", "--model", "rt", "--format", "torch", "--out", "x.onnx"]) == 2
    assert (
        main(["export", "--model", "rt", "--format", "onnx", "--out", "tiny.csv", "--overwrite"])
        == 2
    )
    assert (here / "tiny.csv").read_text().startswith("x,none,k,y")


@pytest.mark.parametrize(("x_scale", "y_scale"), [(1e-320, 1.0), (1.0, 1e-310), (1e200, 1.0)])
def test_extreme_finite_scales_still_learn(here, capsys, x_scale, y_scale):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(300)
    pd.DataFrame({"x": x * x_scale, "n": rng.standard_normal(300), "y": 2 * x * y_scale}).to_csv(
        "e.csv", index=False
    )
    train(capsys, "--data", "e.csv", "--target", "y", "--epochs", "80", "--out", "r")
    m = json.loads((here / "r" / "metrics.json").read_text())
    assert m["validation"]["r2"] > 0.95  # a 1e200 column was zeroed by standardisation before


def test_the_same_training_twice_writes_the_same_model_bytes(here):
    import subprocess
    import sys

    write = pd.DataFrame({"a": np.arange(60.0), "y": np.arange(60.0) % 7})
    write.to_csv("s.csv", index=False)
    for out in ("one", "two"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gradstep.cli",
                "train",
                "--data",
                "s.csv",
                "--target",
                "y",
                "--epochs",
                "3",
                "--out",
                out,
                "--quiet",
            ],
            check=True,
            capture_output=True,
        )
    assert (here / "one" / "model.ckpt").read_bytes() == (here / "two" / "model.ckpt").read_bytes()
    assert (here / "one" / "metrics.json").read_bytes() == (
        here / "two" / "metrics.json"
    ).read_bytes()
