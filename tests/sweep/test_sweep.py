"""gradstep.sweep: grids, random search and Optuna over seeds, on every executor; the journal,
resuming, failures, and the folder's safety."""

import csv
import json
import os
import signal

import pytest

import gradstep as gs
from gradstep.errors import InputError
from gradstep.sweep.journal import JOURNAL
from tests.sweep import trials


def read_csv(folder):
    with open(os.path.join(folder, "trials.csv"), newline="") as f:
        return list(csv.DictReader(f))


def journal_lines(folder):
    with open(os.path.join(folder, JOURNAL)) as f:
        return [json.loads(line) for line in f]


def test_grid_runs_every_configuration_once_per_seed(tmp_path):
    out = tmp_path / "s"
    r = gs.sweep(trials.quadratic, {"lr": [0.001, 0.01, 0.1]}, seeds=[3, 4], out=out, workers=1)
    rows = read_csv(out)
    assert [int(x["trial_id"]) for x in rows] == list(range(6))
    assert [(x["lr"], x["seed"]) for x in rows] == [
        (lr, s) for lr in ("0.001", "0.01", "0.1") for s in ("3", "4")
    ]
    assert {x["status"] for x in rows} == {"ok"}
    assert list(rows[0])[:6] == ["trial_id", "config_id", "lr", "seed", "status", "val_loss"]
    assert r.metric == "val_loss" and r.mode == "min"  # the first metric, lower is better
    assert r.best["config"] == {"lr": 0.01} and r.best["n_ok"] == 2
    header, *entries = journal_lines(out)
    assert header["gradstep_sweep"] == 1 and len(entries) == 6
    assert os.path.getsize(out / "report.html") > 1000
    marker = json.loads((out / ".gradstep.json").read_text())
    assert marker["kind"] == "sweep" and {"trials.jsonl", "trials.csv", "report.html"} <= set(
        marker["files"]
    )


def test_the_callable_module_and_the_function_are_one():
    from gradstep.sweep import sweep

    assert callable(gs.sweep) and gs.sweep.sweep is sweep


def test_executors_give_bit_identical_metrics(tmp_path, table):
    """Serial, a process pool and a Dask LocalCluster: the same numbers for every trial."""
    task = gs.sweep.tabular(table, target="y", epochs=4, hidden=[8])
    space = {"lr": [1e-3, 1e-2], "features": ["top:2", "all"]}
    runs = {}
    for name, kw in {
        "serial": {"workers": 1},
        "pool": {"workers": 2},
        "dask": {"executor": "dask", "workers": 2},
    }.items():
        runs[name] = gs.sweep(task, space, seeds=[0, 1], out=tmp_path / name, **kw)
    metrics = {k: [(r["trial_id"], r["metrics"]) for r in v.rows] for k, v in runs.items()}
    assert len(metrics["serial"]) == 8
    assert metrics["serial"] == metrics["pool"] == metrics["dask"]
    assert all(r["status"] == "ok" for r in runs["dask"].rows)
    assert {r["worker"] for r in runs["dask"].rows} <= {
        w for w in {r["worker"] for r in runs["dask"].rows} if w.startswith("tcp://127.0.0.1:")
    }
    assert len({r["worker"] for r in runs["pool"].rows}) == 2  # both processes worked
    # top:2 picks a and b (y = 2a - b + ...): better than all four columns with noise? at
    # least different, so the option reached the trainer
    by = {(r["config"]["features"], r["seed"], r["config"]["lr"]): r for r in runs["pool"].rows}
    assert by[("top:2", 0, 1e-2)]["metrics"] != by[("all", 0, 1e-2)]["metrics"]


def test_a_failing_or_diverging_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    r = gs.sweep(trials.flaky, {"lr": [0.01, 0.1, 1]}, seeds=[0, 1], out=tmp_path / "s", workers=1)
    status = {(row["config"]["lr"], row["seed"]): row for row in r.rows}
    assert status[(0.01, 0)]["status"] == "ok"
    assert status[(0.1, 1)]["status"] == "failed"
    assert "lr 0.1 is refused" in status[(0.1, 1)]["message"]
    assert status[(1, 0)]["status"] == "diverged" and "nan" in status[(1, 0)]["message"]
    assert r.best["config"] == {"lr": 0.01}


def test_a_diverging_training_is_diverged(tmp_path, table):
    task = gs.sweep.tabular(table, target="y", epochs=3, optimizer="sgd", hidden=[8])
    r = gs.sweep(task, {"lr": [1e-2, 1e6]}, seeds=[0], out=tmp_path / "s", workers=1)
    assert [row["status"] for row in r.rows] == ["ok", "diverged"]
    assert "learning rate" in r.rows[1]["message"]


def test_resume_runs_only_the_missing_trials_and_drops_a_torn_line(tmp_path):
    out, log = tmp_path / "s", tmp_path / "calls.txt"
    space = {"lr": [0.001, 0.01, 0.1]}
    first = gs.sweep(trials.logged, space, seeds=[0, 1], out=out, data=str(log), workers=1)
    assert len(log.read_text().splitlines()) == 6
    # as if killed after trial 2 was appended and while trial 3 was being written
    lines = (out / JOURNAL).read_bytes().split(b"\n")
    assert [json.loads(line)["trial_id"] for line in lines[1:-1]] == list(range(6))  # in order
    (out / JOURNAL).write_bytes(b"\n".join(lines[:4]) + b"\n" + lines[4][:25])
    log.write_text("")
    again = gs.sweep(trials.logged, space, seeds=[0, 1], out=out, data=str(log), workers=1)
    assert log.read_text().splitlines() == ["0.01 1", "0.1 0", "0.1 1"]
    assert [r["metrics"] for r in again.rows] == [r["metrics"] for r in first.rows]
    assert len(journal_lines(out)) == 7
    # a finished sweep run again runs nothing
    log.write_text("")
    gs.sweep(trials.logged, space, seeds=[0, 1], out=out, data=str(log), workers=1)
    assert log.read_text() == ""


def test_a_ctrl_c_during_an_append_never_splits_the_disk_from_the_count(tmp_path, monkeypatch):
    """The CI race behind 'interrupted: 1 of 32 kept' with 2 lines on disk: Ctrl-C landing
    between the journal's write and its in-memory count. Sent here at the worst moment."""
    from gradstep.sweep import journal as jm

    j = jm.Journal(str(tmp_path), {"x": 1})
    j.begin()
    real_fsync = os.fsync

    def fsync_then_ctrl_c(fd):
        os.kill(os.getpid(), signal.SIGINT)
        real_fsync(fd)

    monkeypatch.setattr(jm.os, "fsync", fsync_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        j.append({"trial_id": 0, "status": "ok", "metrics": {"m": 1.0}})
    assert j.done(0)  # the line is on disk and counted: the two agree
    assert len(journal_lines(tmp_path)) == 2


def test_a_damaged_journal_line_is_refused(tmp_path):
    out = tmp_path / "s"
    gs.sweep(trials.quadratic, {"lr": [0.01]}, seeds=[0, 1], out=out, workers=1)
    lines = (out / JOURNAL).read_text().splitlines()
    (out / JOURNAL).write_text("\n".join([lines[0], "{oops", lines[2]]) + "\n")
    with pytest.raises(InputError, match="line 2: not a JSON line"):
        gs.sweep(trials.quadratic, {"lr": [0.01]}, seeds=[0, 1], out=out, workers=1)


def test_random_search_is_reproducible_and_in_range(tmp_path):
    space = {"lr": gs.sweep.loguniform(1e-4, 1e-1), "k": gs.sweep.randint(1, 3)}
    a = gs.sweep(
        trials.optuna_objective,
        {"x": gs.sweep.uniform(0, 1), **space},
        seeds=[0],
        n_trials=7,
        out=tmp_path / "a",
        workers=1,
    )
    b = gs.sweep(
        trials.optuna_objective,
        {"x": gs.sweep.uniform(0, 1), **space},
        seeds=[0],
        n_trials=7,
        out=tmp_path / "b",
        workers=1,
    )
    configs = [r["config"] for r in a.rows]
    assert len(configs) == 7 and configs == [r["config"] for r in b.rows]
    assert all(1e-4 <= c["lr"] <= 1e-1 and c["k"] in (1, 2, 3) for c in configs)
    assert len({json.dumps(c) for c in configs}) == 7
    assert {c["k"] for c in configs} > {1}  # high is included, as written


def test_optuna_proposes_no_duplicates_and_resumes(tmp_path):
    out = tmp_path / "o"
    space = {"x": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], "k": [0, 1]}
    r = gs.sweep(
        trials.optuna_objective,
        space,
        seeds=[0, 1],
        strategy="optuna",
        n_trials=12,
        sample_seed=1,
        metric="loss",
        out=out,
        workers=2,
    )
    configs = [json.dumps(row["config"], sort_keys=True) for row in r.rows]
    assert len(r.rows) == 24 and len(set(configs)) == 12  # the whole grid, each config once
    assert r.best["config"] == {"x": 0.3, "k": 0}
    # continuous space: TPE after its random start; kill-like truncation, then resume
    out2 = tmp_path / "o2"
    space2 = {"x": gs.sweep.uniform(0, 1)}
    kw = {"seeds": [0, 1], "strategy": "optuna", "n_trials": 15, "metric": "loss", "workers": 2}
    gs.sweep(trials.optuna_objective, space2, out=out2, **kw)
    lines = (out2 / JOURNAL).read_text().splitlines()
    (out2 / JOURNAL).write_text("\n".join(lines[:12]) + "\n")
    done = gs.sweep(trials.optuna_objective, space2, out=out2, **kw)
    ids = [row["trial_id"] for row in done.rows]
    assert len(ids) == 30 and len(set(ids)) == 30
    per_config = {}
    for row in done.rows:
        per_config.setdefault(row["config_id"], set()).add(row["seed"])
    assert len(per_config) == 15 and all(s == {0, 1} for s in per_config.values())
    xs = {row["config_id"]: row["config"]["x"] for row in done.rows}
    assert len(set(xs.values())) == 15
    best = min(done.summary, key=lambda s: s["mean"])
    assert abs(best["config"]["x"] - 0.3) < 0.15  # TPE found the valley


def test_a_dead_worker_process_is_replaced_and_its_trial_rerun(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    r = gs.sweep(
        trials.crash_once,
        {"lr": [0.001, 0.01]},
        seeds=[0, 1],
        data=str(marks),
        out=tmp_path / "s",
        workers=2,
    )
    assert [row["status"] for row in r.rows] == ["ok"] * 4
    assert len(os.listdir(marks)) == 4
    dead = gs.sweep(trials.crash_always, {"lr": [0.01]}, seeds=[0], out=tmp_path / "d", workers=2)
    assert dead.rows[0]["status"] == "failed"
    assert "worker process died (3 tries)" in dead.rows[0]["message"]


def test_an_estimator_is_swept_on_data(tmp_path):
    import numpy as np

    from gradstep.estimators import MLPRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    y = X @ [1.0, -2.0, 0.5]
    est = MLPRegressor(hidden_layer_sizes=(8,), max_epochs=30)
    r = gs.sweep(
        est,
        {"learning_rate": [1e-3, 3e-2]},
        seeds=[0, 1],
        data=(X, y),
        out=tmp_path / "e",
        workers=1,
    )
    assert r.metric == "val_score" and r.mode == "max"
    assert all(row["status"] == "ok" for row in r.rows)
    assert r.best["config"] == {"learning_rate": 3e-2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"space": {"lr": []}}, "space 'lr' is an empty list"),
        ({"space": {}}, "the space is empty"),
        ({"space": {"lr": 0.01}}, "must be a list of values"),
        ({"space": {"lr": [0.01, 0.01]}}, "lists 0.01 twice"),
        ({"seeds": []}, "seeds: is empty"),
        ({"seeds": [0, 0]}, "listed twice"),
        ({"seeds": [-1]}, "not an integer"),
        ({"strategy": "bayes"}, "strategy must be one of"),
        ({"strategy": "optuna"}, "needs n_trials"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"executor": "sometimes"}, "executor 'sometimes'"),
        ({"out": ""}, "is empty"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, kwargs, message):
    args = {"space": {"lr": [0.01]}, "seeds": [0], "out": tmp_path / "s", "workers": 1}
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        gs.sweep(trials.quadratic, args.pop("space"), **args)
    assert not os.path.exists(tmp_path / "s")  # refused before anything was written


def test_distributions_refuse_bad_bounds():
    with pytest.raises(InputError, match="low 2 is greater than high 1"):
        gs.sweep.uniform(2, 1)
    with pytest.raises(InputError, match="needs low > 0"):
        gs.sweep.loguniform(0, 1)
    with pytest.raises(InputError, match="integer bounds"):
        gs.sweep.randint(0.5, 3)


def test_out_holding_another_sweep_is_refused_naming_the_difference(tmp_path):
    out = tmp_path / "s"
    gs.sweep(trials.quadratic, {"lr": [0.01]}, seeds=[0], out=out, workers=1)
    before = (out / JOURNAL).read_bytes()
    with pytest.raises(InputError, match=r"'space.lr' was \[0.01\], now \[0.02\]"):
        gs.sweep(trials.quadratic, {"lr": [0.02]}, seeds=[0], out=out, workers=1)
    with pytest.raises(InputError, match=r"'seeds' was \[0\], now \[0, 1\]"):
        gs.sweep(trials.quadratic, {"lr": [0.01]}, seeds=[0, 1], out=out, workers=1)
    assert (out / JOURNAL).read_bytes() == before
    r = gs.sweep(trials.quadratic, {"lr": [0.02]}, seeds=[0], out=out, workers=1, overwrite=True)
    assert [row["config"] for row in r.rows] == [{"lr": 0.02}]
    assert [e.get("config") for e in journal_lines(out)[1:]] == [{"lr": 0.02}]


def test_out_that_is_not_a_sweep_folder_is_never_touched(tmp_path, table):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(InputError):
            gs.sweep(
                trials.quadratic,
                {"lr": [0.01]},
                seeds=[0],
                out=mine,
                workers=1,
                overwrite=overwrite,
            )
    assert os.listdir(mine) == ["notes.txt"]
    task = gs.sweep.tabular(table, target="y", epochs=2)
    for out in (table, tmp_path):  # the data file; the folder that holds it
        with pytest.raises(InputError, match="input"):
            gs.sweep(task, {"lr": [0.01]}, seeds=[0], out=out, workers=1, overwrite=True)
    with open(table) as f:
        assert f.readline().startswith("a,b,noise,c,y")


def test_a_users_file_in_a_sweep_folder_blocks_overwrite_but_not_resume(tmp_path):
    out = tmp_path / "s"
    gs.sweep(trials.quadratic, {"lr": [0.01]}, seeds=[0], out=out, workers=1)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="notes.txt"):
        gs.sweep(trials.quadratic, {"lr": [0.02]}, seeds=[0], out=out, workers=1, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_tabular_space_errors_name_the_option(tmp_path, table):
    task = gs.sweep.tabular(table, target="y", epochs=2)
    cases = [
        ({"learning_rate": [0.1]}, "unknown option 'learning_rate'"),
        ({"seed": [1, 2]}, "'seed' is set per trial from seeds"),
        ({"lr": [0.01, -1]}, "'lr' must be positive"),
        ({"hidden": ["8,x"]}, "hidden '8,x' is not a list of integers"),
        ({"features": ["top:0"]}, "top:K needs a positive integer"),
        ({"features": [["a", "nope"]]}, "nope"),
        ({"activation": ["relu", "swish"]}, "'activation' must be relu"),
    ]
    for space, message in cases:
        with pytest.raises(InputError, match=message):
            gs.sweep(task, space, seeds=[0], out=tmp_path / "s", workers=1)
    assert not os.path.exists(tmp_path / "s")
    with pytest.raises(InputError, match="target 'nope'|'nope'"):
        gs.sweep(
            gs.sweep.tabular(table, target="nope"),
            {"lr": [0.1]},
            seeds=[0],
            out=tmp_path / "s",
            workers=1,
        )


def test_a_journal_whose_trials_differ_from_the_plan_is_refused(tmp_path):
    out = tmp_path / "s"
    gs.sweep(trials.quadratic, {"lr": [0.01, 0.02]}, seeds=[0], out=out, workers=1)
    text = (out / JOURNAL).read_text()
    (out / JOURNAL).write_text(text.replace('"config": {"lr": 0.01}', '"config": {"lr": 0.02}', 1))
    with pytest.raises(InputError, match="trial 0 there is {'lr': 0.02} seed 0"):
        gs.sweep(trials.quadratic, {"lr": [0.01, 0.02]}, seeds=[0], out=out, workers=1)


def test_train_options_as_a_dict_are_the_tabular_trainer(tmp_path, table):
    r = gs.sweep(
        {"data": table, "target": "y", "epochs": 2, "batch-size": 16},
        {"lr": [0.01]},
        seeds=[0],
        out=tmp_path / "s",
        workers=1,
    )
    assert r.metric == "val_rmse" and r.rows[0]["status"] == "ok"
    with pytest.raises(InputError, match="needs 'data'"):
        gs.sweep({"target": "y"}, {"lr": [0.01]}, seeds=[0], out=tmp_path / "t", workers=1)


def test_a_misspelt_metric_stops_after_the_first_trial_and_an_edited_function_is_refused(
    tmp_path,
):
    out = tmp_path / "s"
    with pytest.raises(InputError, match="metric 'val_los' is not among the trials' metrics"):
        gs.sweep(
            trials.quadratic,
            {"lr": [0.001, 0.01, 0.1]},
            seeds=[0, 1],
            out=out,
            workers=1,
            metric="val_los",
            mode="min",
        )
    assert len(journal_lines(out)) - 1 <= 2  # stopped at once; what finished is kept
    r = gs.sweep(
        trials.quadratic,
        {"lr": [0.001, 0.01, 0.1]},
        seeds=[0, 1],
        out=out,
        workers=1,
        metric="val_loss",
    )
    assert len(r.rows) == 6 and len(read_csv(out)) == 6
    header = journal_lines(out)[0]["identity"]["task"]
    assert header["function"] == "tests.sweep.trials.quadratic"
    assert len(header["source_sha256"]) == 64  # an edited body is another sweep
