"""Feature ranking (``gradstep features``, a sweep's ``features = "top:K"``): univariate scores
are scikit-learn's on the trainer's encoding; permutation importance re-creates a run's
validation rows; bad input is one line and exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_selection import (
    f_classif,
    f_regression,
    mutual_info_regression,
)

from gradstep.cli.features import features as features_command
from gradstep.cli.main import cli, main
from gradstep.data.bundled import load_frame
from gradstep.data.tabular import read_table
from gradstep.errors import InputError
from gradstep.sweep.features import (
    F_MAX,
    parse_features_option,
    top_features,
    univariate_report,
    univariate_scores,
)
from gradstep.sweep.importance import permutation_report, permutation_scores
from gradstep.train.tabular import TrainConfig, read_run_table, select_rows

assert cli.commands["features"] is features_command  # registered in main.py


@pytest.fixture(scope="module")
def diabetes():
    return load_frame("diabetes")


def by_column(scores):
    return {s["column"]: s for s in scores}


# --- univariate scores ------------------------------------------------------------------------
def test_numeric_table_gives_scikit_learns_own_scores(diabetes):
    scores = univariate_scores(diabetes, "target", "diabetes.csv")
    names = [c for c in diabetes.columns if c != "target"]
    X, y = diabetes[names].to_numpy(np.float64), diabetes["target"].to_numpy(np.float64)
    f, p = f_regression(X, y)
    mi = mutual_info_regression(X, y, random_state=0)
    got = by_column(scores)
    assert sorted(got) == sorted(names)
    for j, name in enumerate(names):
        # F and p do not change when a column is standardised; the k-NN estimate of mutual
        # information scales each column itself, so it is scikit-learn's to the last bit
        assert got[name]["f"] == pytest.approx(f[j], rel=1e-12)
        assert got[name]["p"] == pytest.approx(p[j], rel=1e-10)
        assert got[name]["mi"] == mi[j]
        assert got[name]["kind"] == "numeric" and got[name]["parts"] == 1
        assert got[name]["skipped"] is None


def test_rank_is_f_descending_and_ties_go_by_name(diabetes):
    scores = univariate_scores(diabetes, "target", "diabetes.csv")
    assert [s["rank"] for s in scores] == list(range(1, 11))
    fs = [s["f"] for s in scores]
    assert fs == sorted(fs, reverse=True)
    assert [s["column"] for s in scores[:3]] == ["bmi", "s5", "bp"]
    twins = diabetes[["bmi", "target"]].assign(a=diabetes["bmi"]).rename(columns={"bmi": "b"})
    tied = univariate_scores(twins, "target", "twins.csv")
    assert [(s["column"], s["rank"]) for s in tied] == [("a", 1), ("b", 2)]
    assert tied[0]["f"] == tied[1]["f"]


def mixed_table(path, n=200, seed=0):
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], n)
    x = rng.standard_normal(n)
    y = pd.Series(color).map({"red": 0.0, "green": 3.0, "blue": -3.0}).to_numpy()
    y = y + 0.5 * x + 0.3 * rng.standard_normal(n)
    x_cells = np.where(rng.random(n) < 0.2, np.nan, x)
    df = pd.DataFrame(
        {
            "color": color,
            "x": x_cells,
            "noise": rng.standard_normal(n),
            "when": pd.to_datetime("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
            "flag": rng.choice(["yes", "no"], n),
            "id": [f"id{i:04d}" for i in range(n)],
            "const": 7,
            "y": y,
        }
    )
    df["when"] = df["when"].dt.strftime("%Y-%m-%d")
    df.to_csv(path, index=False)
    return read_table(path)


def test_categories_missing_values_and_dates_take_their_best_encoded_part(tmp_path):
    df = mixed_table(tmp_path / "mixed.csv")
    report = univariate_report(df, "y", "mixed.csv")
    assert (report["task"], report["rows"], report["columns"], report["skipped"]) == (
        "regression",
        200,
        5,
        2,
    )
    got = by_column(report["scores"])
    y = df["y"].to_numpy()
    onehot = pd.get_dummies(df["color"]).to_numpy(np.float64)  # the one-hot parts
    assert got["color"]["f"] == pytest.approx(f_regression(onehot, y)[0].max(), rel=1e-9)
    assert (got["color"]["kind"], got["color"]["parts"]) == ("categorical", 3)
    x = df["x"].to_numpy()
    miss = np.isnan(x)
    parts = np.column_stack([np.where(miss, np.nanmedian(x), x), miss])  # median + indicator
    f, p = f_regression(parts, y)
    assert got["x"]["f"] == pytest.approx(f.max(), rel=1e-9)
    assert got["x"]["p"] == pytest.approx(p.min(), rel=1e-9)
    assert got["x"]["parts"] == 2
    assert (got["when"]["kind"], got["when"]["parts"]) == ("date", 4)
    assert got["flag"]["kind"] == "boolean"
    assert got["color"]["rank"] == 1 and got["color"]["mi"] > got["noise"]["mi"]
    assert all(s["mi"] >= 0 and 0 <= s["p"] <= 1 for s in report["scores"] if s["rank"])
    # identifiers and one-value columns are listed last with the encoder's reason, not scored
    assert [s["column"] for s in report["scores"][-2:]] == ["id", "const"]
    assert got["id"]["rank"] is None and got["id"]["f"] is None
    assert "identifier" in got["id"]["skipped"]
    assert "same value" in got["const"]["skipped"]


def test_a_column_constant_on_the_scored_rows_gets_f0_p1_without_a_warning(tmp_path):
    df = mixed_table(tmp_path / "mixed.csv")
    df["rare"] = np.where(np.arange(len(df)) < 150, 0.0, 1.0)
    # filterwarnings=error: a division by its zero variance would fail this test
    got = by_column(univariate_scores(df, "y", "mixed.csv", rows=np.arange(150)))
    assert (got["rare"]["f"], got["rare"]["p"], got["rare"]["mi"]) == (0.0, 1.0, 0.0)
    assert got["rare"]["rank"] == 6  # last of the six scored
    rows = np.arange(150)
    color = pd.get_dummies(df["color"].iloc[rows]).to_numpy(np.float64)
    f = f_regression(color, df["y"].iloc[rows].to_numpy())[0].max()
    assert got["color"]["f"] == pytest.approx(f, rel=1e-9)


def test_classification_separating_and_equal_mean_columns_do_not_warn():
    df = pd.DataFrame(
        {
            "y": list("aaaabbbb"),
            "split": [0, 0, 0, 0, 1, 1, 1, 1],  # constant within each class: F infinite
            "even": [1, 3, 1, 3, 2, 2, 2, 2],  # equal class means: scikit-learn says "constant"
            "z": [0.3, -1.2, 0.5, 2.0, 1.1, -0.4, 0.9, 0.2],
        }
    )
    report = univariate_report(df, "y", "t.csv")
    got = by_column(report["scores"])
    assert report["task"] == "classification"
    assert (got["split"]["f"], got["split"]["p"], got["split"]["rank"]) == (F_MAX, 0.0, 1)
    assert got["even"]["f"] == 0.0 and got["even"]["p"] == pytest.approx(1.0)
    f, p = f_classif(df[["z"]].to_numpy(np.float64), np.array([0] * 4 + [1] * 4))
    assert got["z"]["f"] == pytest.approx(f[0], rel=1e-9)
    assert got["z"]["p"] == pytest.approx(p[0], rel=1e-9)


def test_univariate_refuses_what_it_cannot_score(diabetes):
    with pytest.raises(InputError, match="no column 'nope'"):
        univariate_scores(diabetes, "nope", "d.csv")
    with pytest.raises(InputError, match="univariate scores need 4"):
        univariate_scores(diabetes, "target", "d.csv", rows=[0, 1, 2])
    flat = diabetes.assign(target=1.5)
    with pytest.raises(InputError, match="same value in every row"):
        univariate_scores(flat, "target", "d.csv", task="regression")
    with pytest.raises(InputError, match="row position out of range"):
        univariate_scores(diabetes, "target", "d.csv", rows=[0, 1, 2, 3, 10_000])


# --- top:K and the features option ------------------------------------------------------------
def test_top_features_ranks_on_the_given_rows(diabetes):
    cfg = TrainConfig(target="target", seed=3)
    rows = select_rows(diabetes, cfg, "d.csv")
    names = [c for c in diabetes.columns if c != "target"]
    train = rows.df.iloc[rows.train]
    f = f_regression(train[names].to_numpy(np.float64), train["target"].to_numpy())[0]
    best = [names[j] for j in np.argsort(-f)]
    assert top_features(rows.df, cfg, "d.csv", 3, rows.train) == best[:3]
    assert top_features(rows.df, cfg, "d.csv", 100, rows.train) == best
    few = TrainConfig(target="target", features=["sex", "age", "s5"])
    assert top_features(diabetes, few, "d.csv", 2, None) == ["s5", "age"]
    fast = univariate_report(diabetes, "target", "d.csv", mutual_info=False)["scores"]
    full = univariate_scores(diabetes, "target", "d.csv")
    assert [(s["column"], s["f"]) for s in fast] == [(s["column"], s["f"]) for s in full]
    assert all(s["mi"] is None for s in fast)
    with pytest.raises(InputError, match="top:0"):
        top_features(diabetes, cfg, "d.csv", 0, None)


@pytest.mark.parametrize(
    "value, parsed",
    [
        ("top:5", ("top", 5)),
        (" TOP: 12 ", ("top", 12)),
        ("all", ("all", None)),
        (["bmi", "s5"], ("list", ["bmi", "s5"])),
        ("bmi, s5", ("list", ["bmi", "s5"])),
    ],
)
def test_features_option_forms(value, parsed):
    assert parse_features_option(value, ["age", "bmi", "s5"]) == parsed


@pytest.mark.parametrize(
    "value, message",
    [
        ("top:0", "'top:0': top:K needs a positive integer K"),
        ("top:-2", "'top:-2'"),
        ("top:x", "'top:x'"),
        ("top:1.5", "'top:1.5'"),
        ("top:", "'top:'"),
        ([], "names no column"),
        ("", "names no column"),
        (["bmi", "nope"], "no column 'nope'"),
        ("bmi,nope", "no column 'nope'"),
        (["bmi", 3], "3 in"),
        (5, "5 is not 'all', 'top:K'"),
        (["bmi", "bmi"], "'bmi' is listed twice"),
    ],
)
def test_features_option_errors_name_the_value_and_the_columns(value, message):
    with pytest.raises(InputError) as e:
        parse_features_option(value, ["age", "bmi", "s5"])
    text = str(e.value)
    assert message in text and "\n" not in text
    if "twice" not in message:
        assert "(columns: age, bmi, s5)" in text


# --- permutation importance -------------------------------------------------------------------
def signal_table(path, n=300, seed=1):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    kind = rng.choice(["p", "q"], n)
    y = 3.0 * a + np.where(kind == "p", 1.0, -1.0) + 0.2 * rng.standard_normal(n)
    label = np.where(a + 0.1 * rng.standard_normal(n) > 0, "hi", "lo")
    df = pd.DataFrame({"a": a, "noise": b, "kind": kind, "y": y, "label": label})
    df.loc[[3, 11], "y"] = np.nan  # rows without a target are left out as train leaves them
    df.to_csv(path, index=False)


def train(folder, data, *options):
    argv = ["train", "--data", str(data), "--hidden", "8", "--epochs", "60", "--quiet"]
    assert main([*argv, *options, "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("features")
    data = tmp / "signal.csv"
    signal_table(data)
    reg = train(tmp / "reg", data, "--target", "y", "--features", "a,noise,kind", "--lr", "0.01")
    cls = train(tmp / "cls", data, "--target", "label", "--features", "a,noise", "--lr", "0.01")
    flat = train(
        tmp / "noval", data, "--target", "y", "--features", "a,noise", "--val-fraction", "0"
    )
    return {"data": data, "reg": reg, "cls": cls, "noval": flat, "tmp": tmp}


def test_permutation_puts_noise_below_the_signal_on_the_runs_own_validation_rows(runs):
    report = permutation_report(runs["reg"], runs["data"], n_repeats=5, seed=0)
    metrics = json.loads((runs["reg"] / "metrics.json").read_text())
    # the same rows the run held out: their count and the run's own validation RMSE
    assert report["rows"] == metrics["validation"]["n"] == round(0.2 * 298)
    assert report["baseline"] == pytest.approx(metrics["validation"]["rmse"], rel=1e-6)
    assert report["metric"] == "rmse"
    got = by_column(report["scores"])
    assert set(got) == {"a", "noise", "kind"}
    assert got["a"]["importance_mean"] > got["kind"]["importance_mean"] > 0
    assert got["noise"]["importance_mean"] < 0.1 * got["a"]["importance_mean"]
    assert [s["column"] for s in report["scores"]][0] == "a"
    assert all(s["importance_sd"] >= 0 for s in report["scores"])
    assert permutation_scores(runs["reg"], runs["data"], 5, 0) == report["scores"]


def test_permutation_on_a_classification_run_is_the_drop_in_accuracy(runs):
    report = permutation_report(runs["cls"], runs["data"], n_repeats=3, seed=1)
    metrics = json.loads((runs["cls"] / "metrics.json").read_text())
    assert report["metric"] == "accuracy" and report["rows"] == metrics["validation"]["n"]
    assert report["baseline"] == pytest.approx(metrics["validation"]["accuracy"])
    got = by_column(report["scores"])
    assert got["a"]["importance_mean"] > 0.2 > abs(got["noise"]["importance_mean"])


def test_a_run_without_validation_rows_is_refused(runs):
    with pytest.raises(InputError, match="no validation rows .*val_fraction 0"):
        permutation_scores(runs["noval"], runs["data"])


# --- the command ------------------------------------------------------------------------------
def run_cli(capsys, *argv):
    capsys.readouterr()
    code = main(["features", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_both_tables(runs, capsys):
    code, out, _ = run_cli(capsys, "--data", runs["data"], "--target", "y", "--model", runs["reg"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("univariate scores against 'y' (regression, 298 rows, 4 columns")
    assert lines[1].split() == ["rank", "column", "F", "p", "MI"]
    assert lines[2].split()[:2] == ["1", "a"]
    assert any(
        line.startswith("permutation importance on the 60 validation rows") for line in lines
    )


def test_cli_json_is_one_document(runs, capsys):
    code, out, _ = run_cli(
        capsys, "--data", runs["data"], "--target", "y", "--model", runs["reg"], "--json"
    )
    assert code == 0
    doc = json.loads(out)
    ref = univariate_scores(read_run_table(runs["data"], TrainConfig()), "y", runs["data"])
    assert doc["scores"] == ref and doc["task"] == "regression"
    assert doc["permutation"]["scores"] == permutation_scores(runs["reg"], runs["data"])
    code, out, _ = run_cli(capsys, "--data", runs["data"], "--target", "y", "--top", "2", "--json")
    doc = json.loads(out)
    assert [s["rank"] for s in doc["scores"]] == [1, 2] and doc["permutation"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "{tmp}/missing.csv", "--target", "y"], "missing.csv"),
        (["--data", "{data}", "--target", "nope"], "no column 'nope'"),
        (["--data", "{data}", "--target", "y", "--model", "{tmp}"], "no model.ckpt"),
        (["--data", "{data}", "--target", "a", "--model", "{reg}"], "predicts 'y'"),
        (["--data", "{data}", "--target", "y", "--model", "{noval}"], "no validation rows"),
        (["--data", "{data}", "--target", "y", "--decimal", ";"], "'decimal'"),
        (["--data", "{data}", "--target", "y", "--top", "0"], "--top"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(runs, capsys, argv, message):
    names = {k: runs[k] for k in ("tmp", "data", "reg", "noval")}
    code, out, err = run_cli(capsys, *(a.format(**names) for a in argv))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
