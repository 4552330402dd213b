"""`gradstep sweep` on the command line: the TOML file, its errors (one line, exit 2), the
folder, and resuming."""

import csv
import os

import pytest

from gradstep.cli.main import main
from tests.sweep.conftest import write_table

GOOD = """
data = "table.csv"
target = "y"
seeds = [0, 1]
epochs = 3
hidden = "8"

[space]
lr = [0.001, 0.01]
batch-size = [16, 32]
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    write_table(tmp_path / "table.csv", n=120)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *args):
    code = main(["sweep", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_sweep_file_runs_and_resumes(folder, capsys):
    (folder / "sub").mkdir()
    (folder / "sub" / "s.toml").write_text(GOOD.replace('"table.csv"', '"../table.csv"'))
    code, out, err = run(capsys, "--config", "sub/s.toml", "--out", "runs/s", "--workers", "1")
    assert code == 0, err
    assert "8 trials (8 ok, 0 failed, 0 diverged)" in out
    assert "best: lr=" in out and "report:" in out
    with open(folder / "runs" / "s" / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["batch_size"] for r in rows[:4]] == ["16", "16", "32", "32"]
    assert {r["lr"] for r in rows} == {"0.001", "0.01"}
    assert all(r["val_rmse"] for r in rows)
    code, out, _ = run(capsys, "--config", "sub/s.toml", "--out", "runs/s")
    assert code == 0 and "resuming: 8 of 8 trials" in out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("lr = [0.001, 0.01]", "learning_rate = [0.1]"), "unknown option 'learning_rate'"),
        (("lr = [0.001, 0.01]", "lr = []"), "space 'lr' is an empty list"),
        (
            ("lr = [0.001, 0.01]", 'lr = {distribution = "uniform", low = 0.1, high = 0.01}'),
            "low 0.1 is greater than high 0.01",
        ),
        (
            ("lr = [0.001, 0.01]", 'lr = {distribution = "normal", low = 0, high = 1}'),
            "distribution must be one of",
        ),
        (("lr = [0.001, 0.01]", "lr = [0.001, -0.01]"), "'lr' must be positive"),
        (("lr = [0.001, 0.01]", "seed = [1, 2]"), "'seed' is set per trial"),
        (("seeds = [0, 1]", "seeds = []"), "seeds: is empty"),
        (('target = "y"', 'target = "nope"'), "nope"),
        (('target = "y"', ""), "'target' is required"),
        (("epochs = 3", "epoch = 3"), "unknown key 'epoch' (did you mean 'epochs'?"),
        (("[space]", "[spaces]"), "unknown key 'spaces' (did you mean 'space'?"),
        (("epochs = 3", "stratgy = 'random'"), "did you mean 'strategy'?"),
        (("epochs = 3", "epochs = 3\nmetric = 'val_rsme'"), "metric 'val_rsme' is not one"),
        (("lr = [0.001, 0.01]", 'lr = "0.01"'), "write [0.01]"),
        (("batch-size = [16, 32]", 'features = ["top:9"]'), "asks for 9 columns; the table has 4"),
        (('data = "table.csv"', 'data = "missing.csv"'), "missing.csv"),
        (("epochs = 3", "epochs = 3\nstrategy = 'optuna'"), "needs n_trials"),
        (("seeds = [0, 1]", "seeds = [0, 1"), "invalid TOML"),
    ],
)
def test_bad_sweep_files_are_one_line_and_exit_2(folder, capsys, edit, message):
    (folder / "s.toml").write_text(GOOD.replace(*edit))
    code, out, err = run(capsys, "--config", "s.toml", "--out", "out", "--workers", "1")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not os.path.exists(folder / "out")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", ""], "is empty"),
        (["--out", "."], "current folder"),
        (["--out", "table.csv"], "input"),
        (["--out", "s.toml"], "input"),
        (["--out", "/dev/null"], "device"),
        (["--out", "o", "--scheduler", ""], "--scheduler is empty"),
        (["--out", "o", "--scheduler", "127.0.0.1:8786"], "tcp://HOST:PORT"),
        (["--out", "o", "--workers", "0"], "0"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(folder, capsys, args, message):
    (folder / "s.toml").write_text(GOOD)
    before = sorted(os.listdir(folder))
    code, out, err = run(capsys, "--config", "s.toml", *args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(folder)) == before
    with open(folder / "table.csv") as f:
        assert f.readline().startswith("a,b")


def test_another_sweep_in_out_is_refused_then_replaced_with_overwrite(folder, capsys):
    (folder / "s.toml").write_text(GOOD)
    assert run(capsys, "--config", "s.toml", "--out", "o", "--workers", "1")[0] == 0
    (folder / "s.toml").write_text(GOOD.replace("batch-size = [16, 32]", "batch-size = [8]"))
    code, _, err = run(capsys, "--config", "s.toml", "--out", "o", "--workers", "1")
    assert code == 2 and "'space.batch_size' was [16, 32], now [8]" in err
    code, out, err = run(
        capsys, "--config", "s.toml", "--out", "o", "--workers", "1", "--overwrite"
    )
    assert code == 0 and "4 trials (4 ok" in out, err
    assert sorted(n for n in os.listdir(folder) if n.startswith(".")) == []


def test_features_can_be_swept_and_data_overridden(folder, capsys):
    (folder / "s.toml").write_text(
        GOOD.replace("batch-size = [16, 32]", 'features = ["top:2", "all", ["a", "c"]]').replace(
            'data = "table.csv"\n', ""
        )
    )
    code, out, err = run(
        capsys, "--config", "s.toml", "--data", "table.csv", "--out", "o", "--workers", "2"
    )
    assert code == 0 and "12 trials (12 ok" in out, err
    with open(folder / "o" / "trials.csv", newline="") as f:
        feats = {r["features"] for r in csv.DictReader(f)}
    assert feats == {"top:2", "all", "a,c"}
