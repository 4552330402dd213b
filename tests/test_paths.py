"""gradstep.paths: outputs never replace what a user has unless asked, and never inputs."""

from __future__ import annotations

import os
import pathlib
import stat
import subprocess
import sys

import pytest

from gradstep.errors import InputError
from gradstep.paths import MARKER, check_output, output_file, output_folder


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_new_folder_is_published_with_marker_and_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with output_folder(tmp_path / "a" / "run", kind="run") as tmp:
            pathlib.Path(tmp, "x.txt").write_text("hi")
            assert not (tmp_path / "a" / "run").exists()  # not before it is complete
    finally:
        os.umask(old)
    run = tmp_path / "a" / "run"
    assert (run / "x.txt").read_text() == "hi" and (run / MARKER).exists()
    assert stat.S_IMODE(run.stat().st_mode) == 0o750
    assert sorted(os.listdir(tmp_path / "a")) == ["run"]  # no temp or lock left


def test_an_error_inside_leaves_nothing_and_keeps_the_old_folder(tmp_path):
    with output_folder(tmp_path / "run", kind="run") as tmp:
        pathlib.Path(tmp, "model.ckpt").write_text("old")
    with (
        pytest.raises(RuntimeError),
        output_folder(tmp_path / "run", kind="run", overwrite=True) as tmp,
    ):
        pathlib.Path(tmp, "model.ckpt").write_text("new")
        raise RuntimeError("boom")
    assert (tmp_path / "run" / "model.ckpt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_overwrite_replaces_only_a_gradstep_folder_of_the_same_kind(tmp_path):
    with output_folder(tmp_path / "run", kind="run") as tmp:
        pathlib.Path(tmp, "model.ckpt").write_text("1")
    with output_folder(tmp_path / "run", kind="run", overwrite=True) as tmp:
        pathlib.Path(tmp, "model.ckpt").write_text("2")
    assert (tmp_path / "run" / "model.ckpt").read_text() == "2"
    with pytest.raises(InputError, match="not a report folder"):
        check_output(tmp_path / "run", kind="report", overwrite=True)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="'notes.txt', which is not part of what gradstep wrote"):
        check_output(tmp_path / "run", kind="run", overwrite=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="folder that gradstep made"):
        check_output(tmp_path / "mine", kind="run", overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"


def test_an_empty_folder_made_for_the_output_is_filled(tmp_path):
    (tmp_path / "empty").mkdir()
    with output_folder(tmp_path / "empty", kind="run") as tmp:
        pathlib.Path(tmp, "f").write_text("x")
    assert (tmp_path / "empty" / "f").read_text() == "x"


@pytest.mark.parametrize(
    ("out", "why"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        (".", "current folder"),
        ("./", "current folder"),
        ("..", "parent of the current folder"),
        ("/", "root of the file system"),
        ("/dev/stdout", "device or system path"),
        ("/dev/null", "device or system path"),
        ("/proc/self/fd/1", "device or system path"),
        ("data.csv", "is the input"),
        ("./sub/../data.csv", "is the input"),
        ("link.csv", "is the input"),
        ("data.csv/run", "is a file, not a folder"),
        ("fifo", "device or special file"),
    ],
)
def test_unsafe_outputs_are_refused_and_nothing_changes(tmp_path, out, why):
    (tmp_path / "data.csv").write_text("a,y\n1,2\n")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "data.csv", tmp_path / "link.csv")
    os.mkfifo(tmp_path / "fifo")
    before = sorted(os.listdir(tmp_path))
    for kind in ("file", "run"):
        with pytest.raises(InputError, match=why):
            check_output(out, kind=kind, inputs=["data.csv"], overwrite=True)
    assert sorted(os.listdir(tmp_path)) == before
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)


def test_a_folder_holding_an_input_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.csv").write_text("a\n1\n")
    with pytest.raises(InputError, match="holds the input"):
        check_output(tmp_path / "d", kind="run", inputs=[tmp_path / "d" / "train.csv"])


def test_a_file_needs_overwrite_and_is_replaced_atomically(tmp_path):
    (tmp_path / "p.csv").write_text("old")
    with pytest.raises(InputError, match="--overwrite"):
        check_output(tmp_path / "p.csv", kind="file")
    with output_file(tmp_path / "p.csv", overwrite=True) as f:
        f.write(b"new")
        assert (tmp_path / "p.csv").read_text() == "old"
    assert (tmp_path / "p.csv").read_text() == "new"
    with pytest.raises(InputError, match="does not exist"):
        check_output(tmp_path / "nope" / "p.csv", kind="file")


def test_temp_names_are_unpredictable_and_a_planted_symlink_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for guess in ("out.png.tmp.png", ".out.png.tmp", "out.png.tmp"):
        os.symlink(victim, tmp_path / guess)
    seen = []
    for _ in range(2):
        with output_file(tmp_path / "out.png", overwrite=True) as f:
            seen += [n for n in os.listdir(tmp_path) if n.endswith(".gradstep-out")]
            f.write(b"figure")
    assert victim.read_text() == "precious"
    assert (tmp_path / "out.png").read_bytes() == b"figure"
    assert len(seen) == 2 and seen[0] != seen[1]


def test_a_killed_writer_leaves_nothing_the_next_run_does_not_clean(tmp_path):
    code = (
        "import os, sys\n"
        "from gradstep.paths import output_folder\n"
        "with output_folder(sys.argv[1], kind='run') as tmp:\n"
        "    open(os.path.join(tmp, 'model.ckpt'), 'w').write('partial')\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")])
    assert proc.returncode == -9
    assert not (tmp_path / "run").exists()
    assert any(n.endswith(".gradstep-out") for n in os.listdir(tmp_path))
    with output_folder(tmp_path / "run", kind="run") as tmp:
        pathlib.Path(tmp, "model.ckpt").write_text("complete")
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_a_second_writer_of_the_same_output_is_refused_while_the_first_runs(tmp_path):
    code = (
        "import os, sys, time\n"
        "from gradstep.paths import output_folder\n"
        "with output_folder(sys.argv[1], kind='run') as tmp:\n"
        "    print('ready', flush=True)\n"
        "    sys.stdin.readline()\n"
        "    open(os.path.join(tmp, 'model.ckpt'), 'w').write('first')\n"
    )
    first = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "run")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout.readline().strip() == "ready"
        busy = "another gradstep command is writing it"
        with (
            pytest.raises(InputError, match=busy),
            output_folder(tmp_path / "run", kind="run", overwrite=True),
        ):
            pass
        first.stdin.write("\n")
        first.stdin.flush()
        assert first.wait(30) == 0
    finally:
        first.kill()
        first.wait()
        first.stdin.close()
        first.stdout.close()
    assert (tmp_path / "run" / "model.ckpt").read_text() == "first"


def test_dotdot_through_a_symlink_is_resolved_as_the_os_does(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "d.csv").write_text("input")
    os.symlink(tmp_path / "a" / "b", tmp_path / "lnk")
    # lnk/../d.csv is a/d.csv for the OS, although the string reads as ./d.csv
    with pytest.raises(InputError, match="is the input"):
        check_output("lnk/../d.csv", kind="file", inputs=["a/d.csv"], overwrite=True)
    assert (tmp_path / "a" / "d.csv").read_text() == "input"


def test_a_marker_less_folder_is_gradsteps_only_with_proof(tmp_path):
    import gradstep as gs

    lightning = tmp_path / "lightning"
    lightning.mkdir()
    (lightning / "model.ckpt").write_bytes(b"PK\x03\x04 not ours")
    (lightning / "figure3_final.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match="folder that gradstep made"):
        check_output(lightning, kind="run", overwrite=True)
    old_run = tmp_path / "old_run"
    old_run.mkdir()
    gs.save({"model": {}}, old_run / "model.ckpt")
    (old_run / "learning_curves.png").write_bytes(b"\x89PNG")
    check_output(old_run, kind="run", overwrite=True)  # a run from before the marker
    (old_run / "figure3_final.png").write_bytes(b"\x89PNG")
    with pytest.raises(
        InputError, match="'figure3_final.png', which is not part of what gradstep wrote"
    ):
        check_output(old_run, kind="run", overwrite=True)


def test_leftover_cleaning_touches_only_this_outputs_leftovers(tmp_path):
    keep = [
        ".run.v2.abcd1234.gradstep-out",
        ".notes.txt.backup.gradstep-tmp",
        ".run.x.gradstep-out",
    ]
    for name in keep:
        (tmp_path / name).mkdir()
        (tmp_path / name / ".gradstep-partial").write_text("")
    dead = tmp_path / ".run.k2j4_9xq.gradstep-out"
    dead.mkdir()
    (dead / ".gradstep-partial").write_text("")
    with output_folder(tmp_path / "run", kind="run") as tmp:
        pathlib.Path(tmp, "f").write_text("x")
    assert sorted(os.listdir(tmp_path)) == sorted([*keep, "run"])


def test_an_empty_folder_with_overwrite_is_filled_not_refused(tmp_path):
    (tmp_path / "run").mkdir()
    with output_folder(tmp_path / "run", kind="run", overwrite=True) as tmp:
        pathlib.Path(tmp, "f").write_text("x")
    assert (tmp_path / "run" / "f").read_text() == "x"


def test_without_renameat2_a_file_is_still_published_without_replacing(tmp_path, monkeypatch):
    import gradstep.publish as publish

    monkeypatch.setattr(publish, "_renameat2", lambda *a: False)
    with output_file(tmp_path / "p.csv") as f:
        f.write(b"one")
    assert (tmp_path / "p.csv").read_bytes() == b"one"
    with output_folder(tmp_path / "run", kind="run") as tmp:
        pathlib.Path(tmp, "model.ckpt").write_text("1")
    with output_folder(tmp_path / "run", kind="run", overwrite=True) as tmp:
        pathlib.Path(tmp, "model.ckpt").write_text("2")
    assert (tmp_path / "run" / "model.ckpt").read_text() == "2"
    assert sorted(os.listdir(tmp_path)) == ["p.csv", "run"]


def _gradstep_run(folder):
    with output_folder(folder, kind="run") as tmp:
        pathlib.Path(tmp, "model.ckpt").write_text("old")


@pytest.mark.parametrize("exchange", [True, False])
def test_a_file_added_while_the_run_wrote_is_caught_after_the_move_and_put_back(
    tmp_path, monkeypatch, exchange
):
    import gradstep.paths as paths
    import gradstep.publish as publish

    _gradstep_run(tmp_path / "run")
    if not exchange:
        monkeypatch.setattr(publish, "_renameat2", lambda *a: False)
    checks = []
    real = paths.foreign_content

    def foreign(folder, kind):  # the user drops a file in right after publishing's check
        checks.append(folder)
        verdict = real(folder, kind)
        if len(checks) == 3:  # two by check_output, then the one before the move
            pathlib.Path(folder, "notes.txt").write_text("mine")
        return verdict

    monkeypatch.setattr(paths, "foreign_content", foreign)
    with (
        pytest.raises(InputError, match="it was put back, not replaced"),
        output_folder(tmp_path / "run", kind="run", overwrite=True) as tmp,
    ):
        pathlib.Path(tmp, "model.ckpt").write_text("new")
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "run" / "model.ckpt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_a_lock_file_name_taken_by_a_users_file_is_neither_used_nor_removed(tmp_path):
    (tmp_path / ".run.gradstep-lock").write_text("my notes")
    with pytest.raises(InputError, match="not gradstep's lock"):
        _gradstep_run(tmp_path / "run")
    assert (tmp_path / ".run.gradstep-lock").read_text() == "my notes"


def test_a_file_output_that_became_a_fifo_is_not_replaced(tmp_path):
    (tmp_path / "p.csv").write_text("old")
    with (
        pytest.raises(InputError, match="no longer a regular file"),
        output_file(tmp_path / "p.csv", overwrite=True) as f,
    ):
        f.write(b"new")
        os.unlink(tmp_path / "p.csv")
        os.mkfifo(tmp_path / "p.csv")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "p.csv").st_mode)
