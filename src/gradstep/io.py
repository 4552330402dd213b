"""Saving and loading: safetensors for arrays, JSON for everything else, no pickle anywhere.

``save(obj, path)`` takes a state_dict or any nested dict/list of arrays and JSON-able values
(a whole checkpoint: model, optimizer, scheduler, epoch, RNG state, config) and ``load(path)``
gives back the same structure, with arrays of the same dtype and shape and dict keys of the same
type (an optimizer's integer keys stay integers).

The file is a valid safetensors file. Its metadata holds the structure as JSON and a SHA-256 of
the whole file (computed with the digest field zeroed), so a truncated file or a flipped byte is
refused with a clear error, never loaded as wrong numbers. A header claiming more bytes than the
file holds is refused before anything is allocated. Writes are atomic: a temporary file in the
same folder, fsync, ``os.replace``, fsync of the folder; a crash leaves the old file or the new
one, never a mixture, and :func:`clean_temp_files` removes what a killed writer left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile

import numpy as np

FORMAT = "gradstep"
VERSION = "1"
TMP_SUFFIX = ".gradstep-tmp"
_ZERO_DIGEST = "0" * 64
_MAX_HEADER = 100 * 2**20


class CheckpointError(ValueError):
    """A file that is not a valid gradstep checkpoint."""


# --- atomic writes -----------------------------------------------------------------------------
def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash at any moment leaves the old file or the new."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=TMP_SUFFIX, dir=folder
    )
    try:
        from gradstep.paths import umask

        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 would hide the file from others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def clean_temp_files(folder) -> list[str]:
    """Remove temporary files that a killed writer left in ``folder``; return their names."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in os.listdir(folder):
        if name.startswith(".") and name.endswith(TMP_SUFFIX):
            try:
                os.unlink(os.path.join(folder, name))
                removed.append(name)
            except FileNotFoundError:
                pass
    return removed


# --- structure <-> JSON skeleton + arrays --------------------------------------------------------
def _encode(obj, arrays: dict, path: str):
    from gradstep.tensor import Tensor

    if isinstance(obj, Tensor):
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        name = path or "array"
        while name in arrays:
            name += "~"
        arrays[name] = np.ascontiguousarray(obj)  # safetensors writes strided arrays wrong
        return {"a": name, "shape": list(obj.shape)}  # safetensors turns 0-d into (1,)
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save: dict key {k!r} at '{path}' must be a str or an int")
            items.append([k, _encode(v, arrays, f"{path}.{k}" if path else str(k))])
        return {"d": items}
    if isinstance(obj, (list, tuple)):
        tag = "t" if isinstance(obj, tuple) else "l"
        return {tag: [_encode(v, arrays, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return {"v": obj}
    raise TypeError(
        f"save: cannot store a {type(obj).__name__} at '{path or 'top level'}'; only arrays, "
        "numbers, strings, None and dicts/lists of them (save model.state_dict(), not the model)"
    )


def _decode(node, arrays: dict):
    if "a" in node:
        return arrays[node["a"]].reshape(node["shape"])
    if "d" in node:
        return {k: _decode(v, arrays) for k, v in node["d"]}
    if "l" in node:
        return [_decode(v, arrays) for v in node["l"]]
    if "t" in node:
        return tuple(_decode(v, arrays) for v in node["t"])
    return node["v"]


# --- save / load ---------------------------------------------------------------------------------
def dumps(obj) -> bytes:
    """The checkpoint bytes of ``obj`` (what :func:`save` writes)."""
    from safetensors.numpy import save as st_save

    arrays: dict = {}
    skeleton = _encode(obj, arrays, "")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "structure": json.dumps(skeleton),
        "sha256": _ZERO_DIGEST,
    }
    blob = st_save(arrays, metadata=meta)
    digest = hashlib.sha256(blob).hexdigest()
    head_len = 8 + int.from_bytes(blob[:8], "little")
    pos = blob.find(_ZERO_DIGEST.encode(), 8, head_len)
    return blob[:pos] + digest.encode() + blob[pos + 64 :]


def save(obj, path) -> None:
    """Write ``obj`` (a state_dict or a nested dict of arrays and JSON-able values) atomically."""
    atomic_write_bytes(path, dumps(obj))


def loads(blob: bytes, name: str = "<bytes>"):
    """Parse checkpoint bytes, verifying size, header and digest before trusting anything."""
    from safetensors.numpy import load as st_load

    def fail(why: str):
        raise CheckpointError(f"{name} is not a valid gradstep checkpoint: {why}")

    if len(blob) < 8:
        fail(f"only {len(blob)} bytes long")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8 or n > _MAX_HEADER:
        fail(f"its header claims {n} bytes but the file has {len(blob)} (truncated or foreign)")
    try:
        header = json.loads(blob[8 : 8 + n])
        meta = header["__metadata__"]
        ok = meta["format"] == FORMAT
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        fail("its header is not gradstep's (a pickle, a PyTorch file, or damaged)")
    if not ok:
        fail(f"its format is {meta.get('format')!r}")
    if meta.get("version") != VERSION:
        fail(f"format version {meta.get('version')!r}; this gradstep reads version {VERSION}")
    digest = meta.get("sha256", "")
    pos = blob.find(digest.encode(), 8, 8 + n) if len(digest) == 64 else -1
    if pos < 0:
        fail("its digest is missing")
    zeroed = blob[:pos] + _ZERO_DIGEST.encode() + blob[pos + 64 :]
    if hashlib.sha256(zeroed).hexdigest() != digest:
        fail("its SHA-256 does not match its contents (damaged or truncated)")
    try:
        arrays = st_load(bytes(blob))
        return _decode(json.loads(meta["structure"]), arrays)
    except Exception as e:  # the digest matched, so this is a writer's bug: say so plainly
        fail(f"{type(e).__name__}: {e}")


def load(path):
    """Read a file written by :func:`save` and return the same structure."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a checkpoint file") from None
    return loads(blob, path)
