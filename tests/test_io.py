"""Checkpoints: round trip, refusal of anything that is not one, no pickle in the sources."""

from __future__ import annotations

import pathlib
import pickle
import re
import time

import numpy as np
import pytest

import gradstep as gs
from gradstep.io import CheckpointError, clean_temp_files


def sample():
    rng = np.random.default_rng(0)
    return {
        "model": {
            "0.weight": rng.standard_normal((4, 3)).astype(np.float32)[:, ::-1],
            "0.bias": np.zeros(4, np.float32),
            "count": np.array(3, dtype=np.int64),
        },
        "optimizer": {
            "state": {0: {"step": 2, "exp_avg": np.ones(3)}},
            "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0]}],
        },
        "epoch": 4,
        "config": {"hidden": [64, 32], "name": "run", "none": None},
        "empty": np.zeros((0, 5)),
        "flags": np.array([True, False]),
    }


def assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    else:
        assert a == b


def test_round_trip_keeps_structure_dtypes_shapes_and_key_types(tmp_path):
    obj = sample()
    gs.save(obj, tmp_path / "c.ckpt")
    assert_same(obj, gs.load(tmp_path / "c.ckpt"))


def test_state_dict_round_trip(tmp_path):
    from gradstep import nn

    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    gs.save(m.state_dict(), tmp_path / "m.safetensors")
    m2 = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    m2.load_state_dict(gs.load(tmp_path / "m.safetensors"))
    assert_same(dict(m.state_dict()), dict(m2.state_dict()))


def _corruptions(blob: bytes):
    yield "pickle", pickle.dumps({"a": np.zeros(3)})
    yield "empty", b""
    yield "truncated", blob[: len(blob) // 2]
    yield "truncated-tail", blob[:-1]
    yield "huge-header", (2**63).to_bytes(8, "little") + blob[8:]
    yield "garbage", bytes(range(256)) * 4
    rng = np.random.default_rng(0)
    for i in rng.choice(len(blob), 40, replace=False):
        bad = bytearray(blob)
        bad[i] ^= 1 << int(rng.integers(8))
        yield f"flip@{i}", bytes(bad)


def test_anything_but_a_valid_checkpoint_is_refused_quickly(tmp_path):
    good = tmp_path / "good.ckpt"
    gs.save(sample(), good)
    for name, data in _corruptions(good.read_bytes()):
        p = tmp_path / f"{name}.ckpt"
        p.write_bytes(data)
        t0 = time.perf_counter()
        with pytest.raises(CheckpointError, match="not a valid gradstep checkpoint"):
            gs.load(p)
        assert time.perf_counter() - t0 < 0.5, name  # a guard against hangs, not a benchmark


def test_save_refuses_objects_it_cannot_store(tmp_path):
    from gradstep import nn

    with pytest.raises(TypeError, match="state_dict"):
        gs.save(nn.Linear(1, 1), tmp_path / "x")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_temp_leftovers_are_cleaned(tmp_path):
    (tmp_path / ".last.ckpt.abc.gradstep-tmp").write_bytes(b"partial")
    (tmp_path / "keep.txt").write_text("mine")
    assert clean_temp_files(tmp_path) == [".last.ckpt.abc.gradstep-tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_no_pickle_or_unsafe_yaml_anywhere_in_the_sources():
    src = pathlib.Path(__file__).resolve().parents[1] / "src"
    # torch.load is safe only with weights_only=True (the generated export module uses it so)
    pattern = re.compile(
        r"pickle\.loads?\(|allow_pickle=True|yaml\.load\(|torch\.load\((?![^)]*weights_only=True)"
    )
    hits = [
        f"{p}:{i}"
        for p in src.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


@pytest.mark.parametrize("value", ["0" * 64, 10**64, ["0" * 64, "x"], {"sha256": "0" * 64}])
def test_a_value_that_looks_like_the_digest_placeholder_round_trips(tmp_path, value):
    obj = {"parent_digest": value, "w": np.arange(3.0)}
    gs.save(obj, tmp_path / "z.ckpt")
    assert_same(obj, gs.load(tmp_path / "z.ckpt"))


def test_the_same_object_gives_the_same_bytes_in_two_processes(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, gradstep as gs\n"
        "obj = {'b': {'z': 1, 'a': [1.5, 'x']}, 'a': np.arange(6.0).reshape(2, 3),"
        " 'm': {str(i): np.ones(i) for i in range(8)}}\n"
        "gs.save(obj, sys.argv[1])\n"
    )
    for name in ("one", "two"):
        env = {"PYTHONHASHSEED": name == "one" and "1" or "2", "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, env=env)
    assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes()


def _legacy_dumps(obj) -> bytes:
    """What gradstep wrote before its header was its own (safetensors' metadata order, the
    digest placed at the first run of zeros): such files still load."""
    import hashlib
    import json

    from safetensors.numpy import save as st_save

    from gradstep.io import _encode

    arrays: dict = {}
    skeleton = _encode(obj, arrays, "")
    meta = {"format": "gradstep", "version": "1", "structure": json.dumps(skeleton)}
    blob = st_save(arrays, metadata={**meta, "sha256": "0" * 64})
    digest = hashlib.sha256(blob).hexdigest()
    pos = blob.find(b"0" * 64, 8)
    return blob[:pos] + digest.encode() + blob[pos + 64 :]


def test_checkpoints_written_by_the_previous_header_still_load(tmp_path):
    obj = sample()
    (tmp_path / "old.ckpt").write_bytes(_legacy_dumps(obj))
    assert_same(obj, gs.load(tmp_path / "old.ckpt"))


def test_hostile_files_are_refused_fast_without_reading_them(tmp_path):
    import os
    import resource

    os.symlink("/dev/zero", tmp_path / "zero.ckpt")
    os.mkfifo(tmp_path / "fifo.ckpt")
    with open(tmp_path / "sparse.ckpt", "wb") as f:  # 2 GB, a header claiming it all
        head = b'{"__metadata__":{"format":"gradstep","sha256":"' + b"a" * 64 + b'"}}'
        f.write(len(head).to_bytes(8, "little") + head)
        f.truncate(2 * 2**30)
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_head = (
        b'{"__metadata__":{"format":"gradstep","structure":"x","version":"1"},"t":' + deep + b"}"
    )
    (tmp_path / "deep.ckpt").write_bytes(len(deep_head).to_bytes(8, "little") + deep_head)
    entries = ",".join(
        f'"t{i}":{{"dtype":"F32","shape":[1],"data_offsets":[{4 * i},{4 * i + 4}]}}'
        for i in range(10**6)
    )
    many = (
        '{"__metadata__":{"format":"gradstep","sha256":"' + "a" * 64 + '","structure":"{}",'
        '"version":"1"},' + entries + "}"
    ).encode()
    many += b" " * (-len(many) % 8)
    (tmp_path / "many.ckpt").write_bytes(len(many).to_bytes(8, "little") + many + bytes(4 * 10**6))
    del entries, many
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name in ("zero", "fifo", "sparse", "deep", "many"):
        t = time.perf_counter()
        with pytest.raises(CheckpointError):
            gs.load(tmp_path / f"{name}.ckpt")
        assert time.perf_counter() - t < 2, name
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB


def _forge(tensors: dict, data: bytes, structure: str = '{"v": 1}') -> bytes:
    """A file with a valid digest over whatever header it is given (a hostile writer's)."""
    import hashlib

    from gradstep.io import _ZERO_DIGEST, _header

    rest = {"structure": structure, "version": "1"}
    head = _header(rest, tensors, _ZERO_DIGEST)
    size = len(head).to_bytes(8, "little")
    digest = hashlib.sha256(size + head + data).hexdigest()
    return size + _header(rest, tensors, digest) + data


@pytest.mark.parametrize(
    ("tensors", "data", "structure"),
    [
        ({"a": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 8]}}, bytes(8), None),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}}, bytes(8), None),
        ({"a": {"dtype": "XX", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), None),
        ({}, b"", '{"a": "missing-array"}'),
        ({}, b"", '{"d": [[1, {"v": 2}], "not a pair"]}'),
        ({}, b"", "[" * 10_000),
    ],
)
def test_valid_digests_over_hostile_contents_are_refused(tmp_path, tensors, data, structure):
    blob = _forge(tensors, data, structure or '{"a": "a", "shape": [2]}')
    (tmp_path / "h.ckpt").write_bytes(blob)
    with pytest.raises(CheckpointError):
        gs.load(tmp_path / "h.ckpt")
