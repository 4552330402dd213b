"""Sweeps against real processes on 127.0.0.1: a `dask scheduler` and two `dask worker`s started
here (one killed with SIGKILL mid-sweep), and `gradstep sweep` itself killed at random moments.
Every process started here is stopped by its PID."""

import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

import gradstep as gs
from tests.sweep.conftest import write_table

BIN = os.path.dirname(sys.executable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def rows_of(folder):
    with open(os.path.join(folder, "trials.csv"), newline="") as f:
        return list(csv.DictReader(f))


def journal_count(folder) -> int:
    try:
        with open(os.path.join(folder, "trials.jsonl")) as f:
            return sum(1 for _ in f) - 1
    except FileNotFoundError:
        return 0


def sweep_file(tmp_path, data, seeds=(0, 1, 2), epochs=6):
    path = tmp_path / "sweep.toml"
    path.write_text(
        f'data = "{data}"\ntarget = "y"\nseeds = {list(seeds)}\nepochs = {epochs}\n'
        'hidden = "8"\n[space]\nlr = [0.001, 0.003, 0.01, 0.03]\nactivation = ["relu", "tanh"]\n'
    )
    return str(path)


def expected(tmp_path, data, seeds, epochs):
    """The same sweep, serially in this process: the numbers every executor must give."""
    task = gs.sweep.tabular(data, target="y", epochs=epochs, hidden="8")
    space = {"lr": [0.001, 0.003, 0.01, 0.03], "activation": ["relu", "tanh"]}
    r = gs.sweep(task, space, seeds=list(seeds), out=tmp_path / "reference", workers=1)
    return {row["trial_id"]: row["metrics"] for row in r.rows}


def check_table(folder, reference):
    rows = rows_of(folder)
    ids = [int(r["trial_id"]) for r in rows]
    assert sorted(ids) == sorted(reference) and len(ids) == len(set(ids))  # each exactly once
    with open(os.path.join(folder, "trials.jsonl")) as f:
        entries = [json.loads(line) for line in f][1:]
    assert sorted(e["trial_id"] for e in entries) == sorted(reference)
    for e in entries:
        assert e["status"] == "ok"
        assert e["metrics"] == reference[e["trial_id"]]  # bit-identical, whoever ran it
    return entries


def test_dask_scheduler_and_workers_survive_a_killed_worker(tmp_path):
    data = write_table(tmp_path / "data.csv", n=400)
    seeds, epochs = (0, 1, 2), 25
    reference = expected(tmp_path, data, seeds, epochs)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    try:
        procs.append(
            subprocess.Popen(
                [
                    f"{BIN}/dask",
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-dashboard",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        )
        workers = [
            subprocess.Popen(
                [
                    f"{BIN}/dask",
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    f"w{i}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            for i in range(2)
        ]
        procs += workers
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        out = tmp_path / "out"
        cmd = [
            f"{BIN}/gradstep",
            "sweep",
            "--config",
            sweep_file(tmp_path, data, seeds, epochs),
            "--out",
            str(out),
            "--scheduler",
            address,
            "--quiet",
        ]
        sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(sweep)
        deadline = time.monotonic() + 120
        while journal_count(out) < 3 and sweep.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sweep.poll() is None, "the sweep ended before a worker could be killed"
        os.kill(workers[0].pid, signal.SIGKILL)  # mid-trial: it holds one while others wait
        stdout, stderr = sweep.communicate(timeout=300)
        assert sweep.returncode == 0, stderr
        assert "24 trials (24 ok" in stdout
        entries = check_table(out, reference)
        assert workers[0].poll() is not None  # it was dead while the sweep still had trials
        assert {e["worker"] for e in entries} <= {
            e["worker"] for e in entries if e["worker"].startswith("tcp://127.0.0.1:")
        }
    finally:
        for p in reversed(procs):
            stop(p)


def test_a_sweep_killed_ten_times_resumes_to_the_same_table(tmp_path):
    data = write_table(tmp_path / "data.csv", n=300)
    seeds, epochs = (0, 1, 2, 3, 4, 5), 150  # 48 trials of ~0.2 s: ten kills land mid-sweep
    reference = expected(tmp_path, data, seeds, epochs)
    config = sweep_file(tmp_path, data, seeds, epochs)
    out = tmp_path / "out"
    rng = random.Random(18)
    counts = []
    for attempt in range(10):
        workers = "1" if attempt % 2 else "2"  # serially, and with a pool whose workers must die
        cmd = [
            f"{BIN}/gradstep",
            "sweep",
            "--config",
            config,
            "--out",
            str(out),
            "--workers",
            workers,
            "--quiet",
        ]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = journal_count(out)
        # a random moment after this run's first new trial, or during its start-up
        wait_for_trial = rng.random() < 0.7
        deadline = time.monotonic() + 60
        while (
            wait_for_trial
            and journal_count(out) <= before
            and p.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.3))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        counts.append(journal_count(out))
        if os.path.exists(out / "trials.jsonl"):  # whole lines, at most a torn last one
            with open(out / "trials.jsonl", "rb") as f:
                lines = f.read().split(b"\n")
            for line in lines[:-1]:
                json.loads(line)
    assert counts == sorted(counts)  # nothing finished was ever lost
    assert counts[-1] < len(reference)  # all ten kills landed before the end
    final = subprocess.run(
        [f"{BIN}/gradstep", "sweep", "--config", config, "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr
    check_table(out, reference)
    # the killed runs' pool workers died with them (PR_SET_PDEATHSIG): none is left
    time.sleep(0.5)
    left = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if str(out).encode() in f.read():
                        left.append(pid)
            except OSError:
                pass
    assert left == []
    # nothing but the sweep's own files, and no temp or lock files beside it
    assert sorted(os.listdir(tmp_path)) == sorted(["data.csv", "sweep.toml", "out", "reference"])


def test_an_unreachable_scheduler_is_one_line_within_ten_seconds(tmp_path):
    data = write_table(tmp_path / "data.csv", n=50)
    port = free_port()  # nothing listens there
    started = time.monotonic()
    p = subprocess.run(
        [
            f"{BIN}/gradstep",
            "sweep",
            "--config",
            sweep_file(tmp_path, data),
            "--out",
            str(tmp_path / "out"),
            "--scheduler",
            f"tcp://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 10
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"tcp://127.0.0.1:{port}" in lines[0], p.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kill_after", [1])
def test_workers_of_a_killed_pool_do_not_outlive_it(tmp_path, kill_after):
    """Covered above across ten kills; here once, directly, with a long trial running."""
    data = write_table(tmp_path / "data.csv", n=300)
    config = sweep_file(tmp_path, data, seeds=(0,), epochs=400)
    out = tmp_path / "out"
    p = subprocess.Popen(
        [
            f"{BIN}/gradstep",
            "sweep",
            "--config",
            config,
            "--out",
            str(out),
            "--workers",
            "2",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children = []
    deadline = time.monotonic() + 60
    while len(children) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            break
    time.sleep(kill_after)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert len(children) >= 2
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{c}") for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = []
    for c in children:  # a zombie is reaped by init; only a running process counts
        try:
            with open(f"/proc/{c}/stat") as f:
                if f.read().split(")")[-1].split()[0] != "Z":
                    alive.append(c)
        except OSError:
            pass
    for c in alive:
        os.kill(c, signal.SIGKILL)
    assert alive == []


def test_ctrl_c_keeps_the_finished_trials_and_says_how_to_resume(tmp_path):
    data = write_table(tmp_path / "data.csv", n=300)
    config = sweep_file(tmp_path, data, seeds=(0, 1, 2, 3), epochs=150)
    out = tmp_path / "out"
    p = subprocess.Popen(
        [f"{BIN}/gradstep", "sweep", "--config", config, "--out", str(out), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while journal_count(out) < 2 and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    kept = journal_count(out)
    assert 2 <= kept < 32
    assert f"interrupted: {kept} of 32 trials are kept" in stdout
    assert "Traceback" not in stdout + stderr
    assert len(rows_of(out)) == kept  # the table is in step with the journal
