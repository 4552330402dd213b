"""The command line: the lecture report, train/predict round trips, and bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from gradstep.cli.main import main
from gradstep.data.tabular import read_table
from gradstep.train.tabular import TabularModel


def write_data(path, n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    df = pd.DataFrame(
        {
            "a": X[:, 0],
            "b": X[:, 1],
            "c": X[:, 2],
            "y": X @ [1.0, -2.0, 0.5] + 0.05 * rng.standard_normal(n),
            "kind": np.where(X[:, 0] + X[:, 1] > 0, "up", "down"),
        }
    )
    df.to_csv(path, index=False)
    return df


def test_lecture_quick_writes_the_report_with_table_and_every_figure(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["lecture", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "linear, 56 days" in printed and "report.html" in printed
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    results = json.loads((out / "results.json").read_text())
    assert "linear, 1 day" in md and "train MAE" in md
    pngs = [
        "error_surface.png",
        "gd_one_parameter.png",
        "piecewise.png",
        "overfitting.png",
        "three_tasks.png",
        "backprop.png",
        "minimum_ratio.png",
        "saddle_escape.png",
        "landscape.png",
        "optimizers.png",
        "batch_size.png",
        "experiments.png",
        "learning_curves.png",
    ]
    for png in pngs:
        assert (out / png).stat().st_size > 1000
        assert f"]({png})" in md
    assert html.count("data:image/png;base64,") == len(pngs)  # self-contained
    assert results["gd_one_parameter"]["stuck"]
    assert results["three_tasks"]["accuracy"] > 0.9
    assert {r["name"] for r in results["experiments"]} >= {"linear, 1 day", "linear, 56 days"}
    for r in results["experiments"]:
        assert np.isfinite(r["train_mae"]) and r["test_mae"] < 10  # degrees C: it learned
    assert results["critical_points"]["x^2 - y^2"]["kind"] == "saddle point"
    ratio, escape = results["minimum_ratio"], results["saddle_escape"]
    assert ratio["seeds"] == len(ratio["rows"]) >= 5
    assert all(r["minimum_ratio"] == r["n_positive"] / 385 for r in ratio["rows"])
    assert ratio["exact_mean"] < ratio["gauss_newton_mean"]  # the course's method sees no saddle
    assert escape["verdict"] == "saddle point" and escape["eigenvalue"] < 0
    assert escape["loss_at_t_max"] < escape["loss_at_saddle"] == escape["gd_from_saddle_final"]
    assert "When the gradient is small" in md
    assert results["landscape"]["batched"] and results["landscape"]["pca_captured"] > 0.5
    gd, adam = (results["optimizers"]["settings"][k] for k in ("GD", "Adam"))
    assert adam["steps_to_tolerance"] < gd["steps_to_tolerance"]  # the narrow valley
    noise = [r["noise"]["start"]["relative_noise"] for r in results["batch_size"]["results"]]
    assert noise == sorted(noise, reverse=True) and noise[-1] == 0  # full batch: exact


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_train_then_predict_equals_the_python_api(tmp_path, task, capsys):
    data = tmp_path / "data.csv"
    write_data(data)
    target, extra = ("y", []) if task == "regression" else ("kind", ["--features", "a,b"])
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--target",
                target,
                "--epochs",
                "40",
                "--out",
                str(run),
                "--quiet",
                *extra,
            ]
        )
        == 0
    )
    for f in ("model.ckpt", "metrics.json", "history.csv", "learning_curves.png", "summary.txt"):
        assert (run / f).exists(), f
    new = tmp_path / "new.csv"
    write_data(new, n=50, seed=1)
    preds = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(run), "--data", str(new), "--out", str(preds)]) == 0
    cli = pd.read_csv(preds)[f"{target}_predicted"].to_numpy()
    api = TabularModel.load(run).predict(read_table(new), str(new))
    if task == "regression":
        np.testing.assert_array_equal(cli, api.astype(np.float64))
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["validation"]["mae"] < 0.3
    else:
        assert list(cli) == list(api)
        assert np.mean(cli == pd.read_csv(new)["kind"]) > 0.9
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run), "--data", str(new)]) == 0
    assert ("mae=" if task == "regression" else "accuracy=") in capsys.readouterr().out


GOOD_HEADER = "a,b,y"
GOOD_ROWS = ["1,2,3", "4,5,6", "7,8,9", "1.5,2.5,3.5"]


def _csv(*lines):
    return ("\n".join(lines) + "\n").encode()


def malformed_cases():
    """(name, file bytes or None for no file, extra CLI args, config text or None)."""
    cases = [
        ("missing-file", None, [], None),
        ("empty", b"", [], None),
        ("whitespace-only", b"  \n\n  \n", [], None),
        ("header-only", _csv(GOOD_HEADER), [], None),
        ("header-only-blank-lines", _csv(GOOD_HEADER, "", ""), [], None),
        ("latin-1", "a,b,y\n1,2,caf\xe9\n".encode("latin-1"), [], None),
        ("utf-16", "a,b,y\n1,2,3\n".encode("utf-16"), [], None),
        ("binary", bytes(range(256)) * 3, [], None),
        ("empty-column-name", _csv("a,,y", *GOOD_ROWS), [], None),
        ("unclosed-quote", _csv(GOOD_HEADER, '1,"2,3', "4,5,6"), [], None),
        (
            "single-class",
            _csv("a,b,y", "1,2,x", "3,4,x", "5,6,x"),
            ["--task", "classification"],
            None,
        ),
        ("target-in-features", _csv(GOOD_HEADER, *GOOD_ROWS), ["--features", "a,y"], None),
        ("unknown-feature", _csv(GOOD_HEADER, *GOOD_ROWS), ["--features", "a,zz"], None),
        ("no-target-option", _csv(GOOD_HEADER, *GOOD_ROWS), ["--no-target"], None),
    ]
    for name in ("z", "Y", "y ", "target"):
        cases.append(
            (
                f"missing-target-{name.strip() or 'space'}-{len(cases)}",
                _csv(GOOD_HEADER, *GOOD_ROWS),
                ["--target", name],
                None,
            )
        )
    for dup in ("a,a,y", "a,b,a", "y,b,y", "a,b,b"):
        cases.append((f"duplicate-{dup}", _csv(dup, *GOOD_ROWS), [], None))
    bad_values = [
        "n/a",
        "abc",
        "--",
        "1e",
        "",
        "1,5",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "0x10",
        "1.2.3",
        "NULL",
        " ",
    ]
    missing_markers = {"n/a", "", "nan", "NaN", "NULL", " "}
    for value in bad_values:
        for line in (2, 4):
            for col in (0, 2):
                rows = [r.split(",") for r in GOOD_ROWS]
                rows[line - 2][col] = f'"{value}"' if "," in value else value
                # A missing cell is imputed by default; it is an error only when asked.
                extra = ["--missing", "error"] if value in missing_markers else []
                cases.append(
                    (
                        f"cell-{value!r}-l{line}-c{col}",
                        _csv(GOOD_HEADER, *[",".join(r) for r in rows]),
                        extra,
                        None,
                    )
                )
    for line in (2, 3, 5):
        for extra in (",7", ",7,8"):
            rows = list(GOOD_ROWS)
            rows[line - 2] += extra
            cases.append((f"ragged-long-l{line}{extra}", _csv(GOOD_HEADER, *rows), [], None))
        rows = list(GOOD_ROWS)
        rows[line - 2] = rows[line - 2].rsplit(",", 1)[0]
        cases.append((f"ragged-short-l{line}", _csv(GOOD_HEADER, *rows), [], None))
    options = [
        ["--lr", "-1"],
        ["--lr", "0"],
        ["--lr", "abc"],
        ["--epochs", "0"],
        ["--batch-size", "0"],
        ["--hidden", "64,x"],
        ["--hidden", "0"],
        ["--val-fraction", "1.5"],
        ["--val-fraction", "-0.1"],
        ["--activation", "swish"],
        ["--loss", "ce"],
        ["--optimizer", "lbfgs"],
        ["--patience", "-3"],
        ["--lrr", "1"],
        ["--seed", "-1"],
        ["--task", "ranking"],
        ["--task", "classification", "--loss", "mse"],
    ]
    for opt in options:
        cases.append((f"option{' '.join(opt)}", _csv(GOOD_HEADER, *GOOD_ROWS), opt, None))
    configs = [
        "lrr = 0.1",
        'lr = "fast"',
        "lr = -0.5",
        "epochs = 1.5",
        "hidden = [0]",
        'hidden = "64"',
        'features = "a"',
        "target = 3",
        "seed = -1",
        "val_fraction = 2",
        "this is not toml",
        "lr = ",
        "[section]\nlr = 0.1",
        "batch_size = true",
        'activation = "gelu"',
        'loss = "hinge"',
        'patience = "ten"',
        "optimizer = 3",
    ]
    for text in configs:
        cases.append((f"config:{text}", _csv(GOOD_HEADER, *GOOD_ROWS), [], text))
    cases.append(
        ("config-missing-file", _csv(GOOD_HEADER, *GOOD_ROWS), ["--config", "nope.toml"], None)
    )
    return cases


CASES = malformed_cases()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 100


@pytest.mark.parametrize(("name", "data", "args", "config"), CASES, ids=[c[0] for c in CASES])
def test_malformed_input_exit_2_one_line_nothing_written(
    tmp_path, capsys, monkeypatch, name, data, args, config
):
    monkeypatch.chdir(tmp_path)
    csv_path = tmp_path / "train.csv"
    if data is not None:
        csv_path.write_bytes(data)
    argv = [
        "train",
        "--data",
        str(csv_path),
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        "--epochs",
        "2",
    ]
    if "--target" not in args and "--no-target" not in args and config is None:
        argv += ["--target", "y"]
    if config is not None:
        (tmp_path / "run.toml").write_text(config)
        argv += ["--config", "run.toml"] + ([] if "target" in config else ["--target", "y"])
    argv += [a for a in args if a != "--no-target"]
    before = set(os.listdir(tmp_path))
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (name, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
    assert "Traceback" not in err
    assert set(os.listdir(tmp_path)) == before, f"{name}: something was written"


def test_error_messages_name_the_place(tmp_path, capsys):
    p = tmp_path / "t.csv"
    p.write_text("a,b,y\n1,2,3\n4,5,6\n4,oops,6\n")
    assert main(["train", "--data", str(p), "--target", "y", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "line 4, column 'b': 'oops' could not be converted to a number" in err
    p.write_text("a,b,y\n1,2,3\n4,5\n")
    main(["train", "--data", str(p), "--target", "y", "--out", str(tmp_path / "r")])
    assert "line 3: 2 fields, the header has 3" in capsys.readouterr().err


def test_predict_with_a_folder_that_is_not_a_run(tmp_path, capsys):
    write_data(tmp_path / "d.csv", n=10)
    code = main(
        [
            "predict",
            "--model",
            str(tmp_path),
            "--data",
            str(tmp_path / "d.csv"),
            "--out",
            str(tmp_path / "p.csv"),
        ]
    )
    assert code == 2 and "no model.ckpt" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_a_damaged_model_file_is_a_one_line_error(tmp_path, capsys):
    write_data(tmp_path / "d.csv", n=10)
    (tmp_path / "model.ckpt").write_bytes(b"\x80\x04not a checkpoint")
    code = main(
        [
            "predict",
            "--model",
            str(tmp_path),
            "--data",
            str(tmp_path / "d.csv"),
            "--out",
            str(tmp_path / "p.csv"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "not a valid gradstep checkpoint" in err and len(err.splitlines()) == 1
