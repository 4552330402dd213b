"""The command line never loses a user's file: every output rule, as a new user would hit it."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradstep.cli.main import main


def write_table(path, n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": X @ [1.0, -1.0]}).to_csv(path, index=False)


def snapshot(root) -> dict:
    """Every file under root with its bytes' hash and its type (folders and links too)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(folder, name)
            st_ = os.lstat(p)
            if stat.S_ISREG(st_.st_mode):
                with open(p, "rb") as f:
                    out[p] = hashlib.sha256(f.read()).hexdigest()
            else:
                out[p] = stat.S_IFMT(st_.st_mode)
    return out


def run(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_table(tmp_path / "train.csv")
    return tmp_path


TRAIN = ["train", "--data", "train.csv", "--target", "y", "--epochs", "2", "--quiet"]


@pytest.mark.parametrize("out", [".", "", "./", "..", "/", "train.csv", "/dev/stdout", "/dev/null"])
def test_train_refuses_unsafe_out_and_changes_nothing(here, capsys, out):
    before = snapshot(here)
    code, _, err = run([*TRAIN, "--out", out, "--overwrite"], capsys)
    assert code == 2 and err.startswith("error: --out") and len(err.strip().splitlines()) == 1
    assert snapshot(here) == before


def test_an_existing_run_folder_needs_overwrite_and_survives_a_failed_replacement(here, capsys):
    assert run([*TRAIN, "--out", "run"], capsys)[0] == 0
    first = snapshot(here / "run")
    code, _, err = run([*TRAIN, "--out", "run", "--lr", "0.5"], capsys)
    assert code == 2 and "--overwrite" in err
    assert snapshot(here / "run") == first
    # With --overwrite but bad data, the old run stays as it was.
    (here / "bad.csv").write_text("a,b,y\n1,2,3\n4,x,6\n5,6,7\n")
    code, _, err = run(
        ["train", "--data", "bad.csv", "--target", "y", "--out", "run", "--overwrite"], capsys
    )
    assert code == 2 and snapshot(here / "run") == first
    assert run([*TRAIN, "--out", "run", "--overwrite", "--seed", "3"], capsys)[0] == 0
    assert snapshot(here / "run") != first
    assert sorted(os.listdir(here)) == ["bad.csv", "run", "train.csv"]


def test_a_folder_gradstep_did_not_make_is_never_deleted(here, capsys):
    (here / "thesis").mkdir()
    (here / "thesis" / "chapter1.tex").write_text("years")
    before = snapshot(here)
    for argv in (
        [*TRAIN, "--out", "thesis", "--overwrite"],
        ["lecture", "--quick", "--out", "thesis", "--overwrite"],
    ):
        code, _, err = run(argv, capsys)
        assert code == 2 and "not replaced, even with --overwrite" in err
    assert snapshot(here) == before


def test_lecture_refuses_an_existing_report_without_overwrite(here, capsys):
    (here / "lecture-report").mkdir()
    (here / "lecture-report" / "notes.md").write_text("mine")
    code, _, err = run(["lecture", "--quick"], capsys)
    assert code == 2 and "--overwrite" in err
    assert (here / "lecture-report" / "notes.md").read_text() == "mine"


def test_predict_and_surface_never_write_over_their_input(here, capsys):
    assert run([*TRAIN, "--out", "run"], capsys)[0] == 0
    before = snapshot(here)
    for argv in (
        ["predict", "--model", "run", "--data", "train.csv", "--out", "train.csv", "--overwrite"],
        ["predict", "--model", "run", "--data", "train.csv", "--out", "run/model.ckpt"],
        ["predict", "--model", "run", "--data", "train.csv", "--out", "run", "--overwrite"],
        ["surface", "--data", "train.csv", "--x", "a", "--y", "y", "--out", "train.csv"],
        ["surface", "--data", "train.csv", "--x", "a", "--y", "y", "--out", "s.jpg"],
        ["predict", "--model", "run", "--data", "train.csv", "--out", "/dev/stdout"],
    ):
        code, _, err = run(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, (argv, err)
    assert snapshot(here) == before


def test_predict_to_stdout_with_dash(here, capfdbinary):
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        assert main([*TRAIN, "--out", "run"]) == 0
    code = main(["predict", "--model", "run", "--data", "train.csv", "--out", "-"])
    out = capfdbinary.readouterr().out.decode()
    assert code == 0 and out.splitlines()[0] == "y_predicted" and len(out.splitlines()) == 61


@pytest.mark.parametrize(
    ("ext", "magic"), [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")]
)
def test_surface_format_follows_the_extension(here, capsys, ext, magic):
    code, _, _ = run(
        ["surface", "--data", "train.csv", "--x", "a", "--y", "y", "--out", f"s.{ext}"], capsys
    )
    assert code == 0 and (here / f"s.{ext}").read_bytes().startswith(magic)


def test_outputs_follow_the_umask(here, capsys):
    old = os.umask(0o022)
    try:
        assert run([*TRAIN, "--out", "run"], capsys)[0] == 0
        assert (
            run(["predict", "--model", "run", "--data", "train.csv", "--out", "p.csv"], capsys)[0]
            == 0
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE((here / "run").stat().st_mode) == 0o755
    for f in os.listdir(here / "run"):
        assert stat.S_IMODE((here / "run" / f).stat().st_mode) == 0o644, f
    assert stat.S_IMODE((here / "p.csv").stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("cr-only", b"a,b,y\r1,2,3\r4,5,6\r7,8,9\r2,1,3\r"),
        ("huge-cell", b"a,b,y\n1,2,3\n" + b"4," + b"9" * 200_000 + b"x,6\n7,8,9\n"),
        ("unclosed-quote-big", b"a,b,y\n" + b"1,2,3\n" * 30_000 + b'4,"5,6\n' + b"7,8,9\n" * 10),
    ],
)
def test_odd_files_are_one_line_or_read_right(here, capsys, name, data):
    (here / "odd.csv").write_bytes(data)
    code, out, err = run(
        ["train", "--data", "odd.csv", "--target", "y", "--out", "r", "--epochs", "1", "--quiet"],
        capsys,
    )
    assert "Traceback" not in err
    if name == "cr-only":
        assert code == 0, err
    else:
        assert code == 2 and len(err.strip().splitlines()) == 1 and "odd.csv line" in err
        assert not (here / "r").exists()
    if name == "unclosed-quote-big":
        assert "line 30002" in err and "never closed" in err


def test_line_numbers_count_blank_lines_and_multiline_cells(here, capsys):
    (here / "t.csv").write_text('a,b,y\n\n1,2,3\n\n"4\n",5,6\n\n7,oops,9\n')
    code, _, err = run(["train", "--data", "t.csv", "--target", "y", "--out", "r"], capsys)
    assert code == 2 and "t.csv line 8, column 'b': 'oops'" in err
    (here / "u.csv").write_text("a,b,y\n\n\n1,2,3\n2,3,1\n4,oops,6\n")
    code, _, err = run(["train", "--data", "u.csv", "--target", "y", "--out", "r"], capsys)
    assert code == 2 and "u.csv line 6, column 'b'" in err


def test_divergence_is_one_line_without_numpy_warnings(here, capsys):
    code, _, err = run(
        [*TRAIN[:-3], "--optimizer", "sgd", "--lr", "1e30", "--epochs", "5", "--out", "r"], capsys
    )
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Warning" not in err, err
    assert not (here / "r").exists()


def test_the_message_names_the_epoch_whose_weights_were_kept(here, capsys):
    code, out, _ = run([*TRAIN[:-3], "--epochs", "30", "--patience", "3", "--out", "r"], capsys)
    assert code == 0
    import json

    m = json.loads((here / "r" / "metrics.json").read_text())
    assert f"weights kept from epoch {m['weights_from_epoch']}" in out
    assert f"{m['epochs_run']} epochs run" in out


def test_two_trainings_racing_on_one_out_one_wins_nothing_lost(here):
    write_table(here / "big.csv", n=3000)
    argv = [
        sys.executable,
        "-m",
        "gradstep.cli",
        "train",
        "--data",
        "big.csv",
        "--target",
        "y",
        "--epochs",
        "3",
        "--quiet",
        "--out",
        "run",
    ]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        results.append((p.returncode, err))
    codes = sorted(c for c, _ in results)
    assert codes == [0, 2], results
    loser = next(e for c, e in results if c == 2)
    assert len(loser.strip().splitlines()) == 1 and "run" in loser
    assert (here / "run" / "model.ckpt").exists()
    assert sorted(os.listdir(here)) == ["big.csv", "run", "train.csv"]


NAMES = st.sampled_from(["a", "b", "run", "data.csv", "p.csv", "s.png", "x"])


@settings(max_examples=25)
@given(
    tree=st.lists(st.tuples(NAMES, NAMES, st.booleans()), min_size=1, max_size=5),
    out=st.one_of(
        st.sampled_from([".", "", "..", "/", "data.csv", "a", "a/b", "run", "a/data.csv"]),
        st.lists(NAMES, min_size=1, max_size=3).map("/".join),
    ),
    command=st.sampled_from(["train", "predict", "surface", "export", "evaluate"]),
    overwrite=st.booleans(),
)
def test_property_no_existing_file_ever_changes(tmp_path_factory, tree, out, command, overwrite):
    root = tmp_path_factory.mktemp("tree")
    write_table(root / "data.csv", n=40)
    for top, name, is_dir in tree:
        base = root / top
        if base.exists() and not base.is_dir():
            continue
        base.mkdir(exist_ok=True)
        target = base / name
        if not target.exists():
            target.mkdir() if is_dir else target.write_bytes(os.urandom(16))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
            train = ["train", "--data", "data.csv", "--target", "y", "--epochs", "1", "--quiet"]
            assert main([*train, "--out", "model_run"]) == 0
            before = snapshot(root)
            argv = {
                "train": train,
                "predict": ["predict", "--model", "model_run", "--data", "data.csv"],
                "surface": ["surface", "--data", "data.csv", "--x", "a", "--y", "y"],
                "export": ["datasets", "--export", "iris"],
                "evaluate": ["evaluate", "--model", "model_run", "--data", "data.csv"],
            }[command]
            argv = [*argv, out] if command == "export" else [*argv, "--out", out]
            code = main(argv + (["--overwrite"] if overwrite else []))
        after = snapshot(root)
    finally:
        os.chdir(cwd)
    assert code in (0, 2)
    target = os.path.abspath(os.path.join(root, out)) if out.strip() else None
    for path, digest in before.items():
        asked = (
            code == 0 and overwrite and target and (path == target or path.startswith(target + "/"))
        )
        if not asked:
            assert after.get(path) == digest, (argv, path)


def test_a_model_file_that_is_a_device_or_fifo_is_refused_without_reading(here, capsys):
    (here / "run").mkdir()
    os.symlink("/dev/zero", here / "run" / "model.ckpt")
    code, _, err = run(
        ["predict", "--model", "run", "--data", "train.csv", "--out", "p.csv"], capsys
    )
    assert code == 2 and "not a regular file" in err
    os.mkfifo(here / "fifo.csv")
    code, _, err = run([*TRAIN, "--data", "fifo.csv", "--out", "r"], capsys)
    assert code == 2 and "FIFO" in err


def test_a_full_disk_is_one_line(here, capsys, monkeypatch):
    import errno

    import gradstep.paths as paths

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "p.csv")

    assert run([*TRAIN, "--out", "run"], capsys)[0] == 0
    monkeypatch.setattr(paths.os, "fsync", full)
    code, _, err = run(
        ["predict", "--model", "run", "--data", "train.csv", "--out", "p.csv"], capsys
    )
    assert (
        code == 2 and err.strip() == "error: No space left on device (p.csv); nothing was replaced"
    )
    assert not (here / "p.csv").exists()
    assert not [n for n in os.listdir(here) if n.endswith(".gradstep-out")]


def test_a_run_that_diverged_but_stayed_finite_is_refused(here, capsys):
    assert main(["datasets", "--export", "diabetes", "d.csv"]) == 0
    capsys.readouterr()
    code, _, err = run(
        [
            "train",
            "--data",
            "d.csv",
            "--target",
            "target",
            "--optimizer",
            "sgd",
            "--lr",
            "1",
            "--out",
            "r",
            "--quiet",
        ],
        capsys,
    )
    assert code == 2 and err.startswith("error: training diverged") and "--lr" in err
    assert not (here / "r").exists()


def test_layer_sizes_beyond_the_machine_are_refused_before_allocating(here, capsys):
    import gradstep as gs

    code, _, err = run([*TRAIN, "--hidden", "1000000000", "--out", "r"], capsys)
    assert code == 2 and "GiB" in err and "this machine has" in err
    assert run([*TRAIN, "--out", "r"], capsys)[0] == 0
    state = gs.load(here / "r" / "model.ckpt")
    state["config"]["hidden"] = [50000, 50000, 50000]  # a hostile or mistaken run folder
    gs.save(state, here / "r" / "model.ckpt")
    code, _, err = run(["predict", "--model", "r", "--data", "train.csv", "--out", "p.csv"], capsys)
    assert code == 2 and "GiB" in err and not (here / "p.csv").exists()


def test_hostile_inputs_are_refused_without_reading_them_whole(here, capsys):
    with open(here / "sparse.csv", "wb") as f:
        f.truncate(2 * 2**30)
    (here / "huge.toml").write_bytes(b"# " + b"x" * (2 << 20))
    os.symlink("/dev/zero", here / "zero.toml")
    for extra in (["--data", "sparse.csv"], ["--config", "huge.toml"], ["--config", "zero.toml"]):
        code, _, err = run([*TRAIN, "--out", "r", *extra], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, (extra, err)


def test_predict_never_writes_empty_cells(here, capsys):
    import gradstep as gs

    assert run([*TRAIN, "--out", "r"], capsys)[0] == 0
    (here / "huge.csv").write_text("a,b,y\n1e308,-1e308,0\n1,2,3\n")
    code, _, err = run(["predict", "--model", "r", "--data", "huge.csv", "--out", "p.csv"], capsys)
    assert code == 2 and "huge.csv line 2, column 'a'" in err and not (here / "p.csv").exists()
    state = gs.load(here / "r" / "model.ckpt")
    first = next(k for k in state["model"] if k.endswith("weight"))
    state["model"][first] = np.full_like(state["model"][first], np.nan)
    gs.save(state, here / "r" / "model.ckpt")
    code, _, err = run(["predict", "--model", "r", "--data", "train.csv", "--out", "p.csv"], capsys)
    assert code == 2 and "not finite" in err and not (here / "p.csv").exists()
