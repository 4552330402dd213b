"""A sweep's statistics: mean ± sd per configuration, and the paired comparison of the best
against each other configuration, checked against scipy and against a hand calculation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from gradstep.errors import InputError
from gradstep.sweep.stats import VERDICTS, compare, metric_mode, summarize


def trial_rows(scores: dict[int, dict[int, float]], metric: str = "val_rmse", **status) -> list:
    """Rows for {config_id: {seed: score}}; ``status={(cid, seed): "failed"}`` overrides."""
    rows = []
    for cid, by_seed in scores.items():
        for seed, value in by_seed.items():
            s = status.get("status", {}).get((cid, seed), "ok")
            rows.append(
                {
                    "trial_id": len(rows),
                    "config_id": cid,
                    "config": {"lr": 10.0**-cid},
                    "seed": seed,
                    "status": s,
                    "metrics": {metric: value} if s == "ok" else {},
                    "message": "" if s == "ok" else f"{s} on purpose",
                    "seconds": 0.1,
                    "worker": "here",
                }
            )
    return rows


def test_the_interval_is_scipys_paired_t_interval():
    rng = np.random.default_rng(7)
    luck = rng.normal(0, 1.0, 8)  # what each seed does to every configuration alike
    best = 10 + luck + rng.normal(0, 0.2, 8)
    other = 10.3 + luck + rng.normal(0, 0.2, 8)
    rows = trial_rows({0: dict(enumerate(best)), 1: dict(enumerate(other))})
    (c,) = compare(rows, "val_rmse", "min")
    ci = st.ttest_rel(other, best).confidence_interval(0.95)
    assert c["n_pairs"] == 8 and c["best_id"] == 0 and c["config_id"] == 1
    assert c["diff"] == pytest.approx(np.mean(other - best), rel=1e-12)
    assert c["diff_sd"] == pytest.approx(np.std(other - best, ddof=1), rel=1e-12)
    assert c["ci_low"] == pytest.approx(ci.low, rel=1e-12)
    assert c["ci_high"] == pytest.approx(ci.high, rel=1e-12)
    assert c["best_sd"] == pytest.approx(np.std(best, ddof=1), rel=1e-12)


def test_the_interval_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2 df) = 4.3027 from a printed t table
    rows = trial_rows({0: {0: 5.0, 1: 5.0, 2: 5.0}, 1: {0: 6.0, 1: 7.0, 2: 8.0}})
    (c,) = compare(rows, "val_rmse", "min")
    half = 4.3027 * 1.0 / math.sqrt(3)
    assert c["diff"] == pytest.approx(2.0) and c["diff_sd"] == pytest.approx(1.0)
    assert c["ci_low"] == pytest.approx(2 - half, abs=1e-4)
    assert c["ci_high"] == pytest.approx(2 + half, abs=1e-4)
    assert c["verdict"] == "within seed noise"  # -0.48 to 4.48 contains 0
    assert "within seed noise" in c["sentence"] and "3 paired seeds" in c["sentence"]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_better_on_every_seed_with_tiny_noise_is_beyond_seed_noise(mode):
    rng = np.random.default_rng(0)
    luck = rng.normal(0, 5.0, 5)  # large seed luck, shared: pairing removes it
    base = 20 + luck
    step = 1.0 if mode == "min" else -1.0  # the other is 1.0 worse on every seed
    rows = trial_rows(
        {
            3: dict(enumerate(base + rng.normal(0, 1e-3, 5))),
            4: dict(enumerate(base + step + rng.normal(0, 1e-3, 5))),
        }
    )
    summary = summarize(rows, "val_rmse", mode)
    assert [s["config_id"] for s in summary] == [3, 4]
    (c,) = compare(rows, "val_rmse", mode)
    assert c["verdict"] == "better beyond seed noise"
    assert c["diff"] == pytest.approx(step, abs=0.01)
    assert c["ci_low"] <= c["diff"] <= c["ci_high"] and not c["ci_low"] <= 0 <= c["ci_high"]
    # 1.0 is far below the seed noise (sd ~5), yet pairing tells it apart
    assert c["best_sd"] > 2.0
    assert "config 3 is better beyond seed noise" in c["sentence"]


def test_equal_means_with_big_noise_are_within_seed_noise():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.5, 0.3, 6), rng.normal(0.5, 0.3, 6)
    rows = trial_rows({0: dict(enumerate(a)), 1: dict(enumerate(b))})
    (c,) = compare(rows, "val_rmse", "min")
    assert c["verdict"] == "within seed noise" and c["ci_low"] < 0 < c["ci_high"]


def test_a_given_best_that_is_worse_says_so():
    rows = trial_rows({0: {s: 1.0 + 0.01 * s for s in range(4)}, 1: {s: 2.0 for s in range(4)}})
    (c,) = compare(rows, "val_rmse", "min", best=1)
    assert c["config_id"] == 0 and c["diff"] < 0
    assert c["verdict"] == "worse beyond seed noise"
    assert "config 0 is better on these seeds" in c["sentence"]
    with pytest.raises(InputError, match="config 9 is not in the trial rows"):
        compare(rows, "val_rmse", "min", best=9)


def test_the_verdict_agrees_with_scipys_test_on_random_sweeps():
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(2, 9))
        luck = rng.normal(0, 1, n)
        a = luck + rng.normal(0, 0.3, n)
        b = luck + rng.normal(0, 0.3, n) + rng.normal(0, 0.3)
        rows = trial_rows({0: dict(enumerate(a)), 1: dict(enumerate(b))})
        (c,) = compare(rows, "val_rmse", "min", best=0)
        p = st.ttest_rel(b, a).pvalue
        assert (c["verdict"] == "within seed noise") == (p >= 0.05)


def test_missing_seeds_are_not_paired():
    best = {s: 1.0 + 0.1 * s for s in range(5)}  # seeds 0..4
    other = {s: 1.5 + 0.1 * s for s in range(2, 7)}  # seeds 2..6
    rows = trial_rows({0: best, 1: other})
    (c,) = compare(rows, "val_rmse", "min")
    assert c["seeds"] == [2, 3, 4] and c["n_pairs"] == 3
    assert c["diff"] == pytest.approx(0.5) and c["diff_sd"] == pytest.approx(0.0, abs=1e-12)
    assert c["verdict"] == "better beyond seed noise"


def test_failed_rows_are_excluded_and_counted():
    scores = {0: {s: 1.0 + s for s in range(4)}, 1: {s: 9.0 for s in range(4)}}
    status = {(0, 1): "failed", (0, 3): "diverged", (1, 0): "failed"}
    rows = trial_rows(scores, status=status)
    rows[2]["metrics"] = {"val_rmse": float("nan")}  # config 0, seed 2: "ok" but NaN
    s0, s1 = summarize(rows, "val_rmse", "min")
    assert (s0["config_id"], s0["n_ok"], s0["n_failed"]) == (0, 1, 3)
    assert s0["values"] == {0: 1.0} and s0["mean"] == 1.0 and s0["sd"] is None
    assert (s1["n_ok"], s1["n_failed"], s1["values"]) == (3, 1, {1: 9.0, 2: 9.0, 3: 9.0})
    (c,) = compare(rows, "val_rmse", "min")
    assert c["n_pairs"] == 0 and c["verdict"] == "too few seeds to tell"
    assert c["diff"] is None and c["ci_low"] is None
    assert "nothing to compare" in c["sentence"]


def test_one_pair_is_too_few_seeds_to_tell():
    rows = trial_rows({0: {0: 1.0}, 1: {0: 3.0}})
    (c,) = compare(rows, "val_rmse", "min")
    assert (c["n_pairs"], c["diff"], c["diff_sd"], c["verdict"]) == (
        1,
        2.0,
        None,
        "too few seeds to tell",
    )
    assert c["sentence"].endswith("too few seeds to tell.")


def test_summarize_sorts_best_first_with_unfinished_configs_last():
    scores = {
        0: {0: 3.0, 1: 5.0},
        1: {0: 1.0, 1: 2.0, 2: 3.0},
        2: {0: 7.0},
        3: {0: 0.0, 1: 0.0},
    }
    rows = trial_rows(scores, status={(3, 0): "failed", (3, 1): "diverged"})
    low = summarize(rows, "val_rmse", "min")
    assert [s["config_id"] for s in low] == [1, 0, 2, 3]
    assert low[0]["mean"] == 2.0 and low[0]["sd"] == pytest.approx(1.0)
    assert (low[0]["min"], low[0]["max"]) == (1.0, 3.0)
    assert low[1]["sd"] == pytest.approx(math.sqrt(2.0))
    assert low[2]["sd"] is None and low[2]["n_ok"] == 1
    assert low[3]["mean"] is None and low[3]["n_failed"] == 2 and low[3]["values"] == {}
    high = summarize(rows, "val_rmse", "max")
    assert [s["config_id"] for s in high] == [2, 0, 1, 3]
    assert compare(rows, "val_rmse", "max")[0]["best_id"] == 2


def test_every_config_failed_gives_nothing_to_compare():
    rows = trial_rows({0: {0: 1.0}, 1: {0: 1.0}}, status={(0, 0): "failed", (1, 0): "failed"})
    assert compare(rows, "val_rmse", "min") == []
    assert all(s["mean"] is None for s in summarize(rows, "val_rmse", "min"))
    with pytest.raises(InputError, match="config 0 finished no trial"):
        compare(rows, "val_rmse", "min", best=0)
    assert summarize([], "val_rmse", "min") == [] and compare([], "val_rmse", "min") == []


@pytest.mark.parametrize(
    "metric, mode",
    [
        ("val_rmse", "min"),
        ("mse", "min"),
        ("train_mae", "min"),
        ("val_loss", "min"),
        ("log_loss", "min"),
        ("val_r2", "max"),
        ("accuracy", "max"),
        ("macro_f1", "max"),
        ("roc_auc", "max"),
        ("val_score", "max"),
    ],
)
def test_metric_mode(metric, mode):
    assert metric_mode(metric) == mode


def test_bad_input_is_one_line_naming_it():
    rows = trial_rows({0: {0: 1.0, 1: 2.0}})
    with pytest.raises(InputError, match="metric 'epochs_run'.*give the mode"):
        metric_mode("epochs_run")
    with pytest.raises(InputError, match="mode 'median'"):
        summarize(rows, "val_rmse", "median")
    with pytest.raises(InputError, match=r"metric 'val_rsme': not in the trials' metrics \(val_"):
        summarize(rows, "val_rsme", "min")
    with pytest.raises(InputError, match="config 0 seed 1 appears more than once"):
        summarize(rows + [dict(rows[1], trial_id=9)], "val_rmse", "min")
    with pytest.raises(InputError, match="config 0 has two different configs"):
        summarize(rows + [dict(rows[1], seed=5, config={"lr": 2})], "val_rmse", "min")


def test_verdicts_are_the_four_sentences():
    assert VERDICTS == (
        "within seed noise",
        "better beyond seed noise",
        "worse beyond seed noise",
        "too few seeds to tell",
    )
