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
def atomic_write_bytes(path, data) -> None:
    """Write ``data`` (bytes, or a sequence of bytes-like parts written one after the other) to
    ``path`` so that a crash at any moment leaves the old file or the new. An OSError (a full
    disk) names ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    fd, tmp = tempfile.mkstemp(
        prefix="." + os.path.basename(path)[:200] + ".", suffix=TMP_SUFFIX, dir=folder
    )
    try:
        from gradstep.paths import umask

        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 would hide the file from others
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not e.filename:
            raise OSError(e.errno, e.strerror, path) from None
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
# The header is written by gradstep, not left to the safetensors library (whose metadata order
# changes from process to process): keys sorted, the digest at a fixed offset right after this
# prefix, so the same object gives the same bytes, and the digest is found by construction,
# never by searching (a value holding 64 zeros once received it).
_PREFIX = '{"__metadata__":{"format":"' + FORMAT + '","sha256":"'
_MAX_TENSORS = 100_000  # a model with more separate arrays than this is not a gradstep model


def _header(meta_rest: dict, tensors: dict, digest: str) -> bytes:
    meta = json.dumps(meta_rest, sort_keys=True, separators=(",", ":"))[1:-1]
    body = json.dumps(tensors, sort_keys=True, separators=(",", ":"))[1:-1]
    text = _PREFIX + digest + '",' + meta + "}" + ("," + body if body else "") + "}"
    raw = text.encode()
    return raw + b" " * (-len(raw) % 8)  # safetensors aligns the data to 8 bytes


def _parts(obj) -> list:
    """The checkpoint of ``obj`` as parts to write one after the other: the length, the header,
    the tensor bytes (a view of the library's buffer: no copy of the arrays is made here)."""
    from safetensors.numpy import save as st_save

    arrays: dict = {}
    skeleton = _encode(obj, arrays, "")
    blob = st_save(arrays)  # the library lays out the tensor bytes
    n = int.from_bytes(blob[:8], "little")
    tensors = json.loads(blob[8 : 8 + n])
    tensors.pop("__metadata__", None)
    rest = {"structure": json.dumps(skeleton, separators=(",", ":")), "version": VERSION}
    data = memoryview(blob)[8 + n :]
    head = _header(rest, tensors, _ZERO_DIGEST)
    size = len(head).to_bytes(8, "little")
    h = hashlib.sha256(size)
    h.update(head)
    h.update(data)
    return [size, _header(rest, tensors, h.hexdigest()), data]


def dumps(obj) -> bytes:
    """The checkpoint bytes of ``obj`` (what :func:`save` writes): identical for equal objects."""
    return b"".join(_parts(obj))


def save(obj, path) -> None:
    """Write ``obj`` (a state_dict or a nested dict of arrays and JSON-able values) atomically,
    streaming the parts (a checkpoint's peak memory is about twice its size, not three)."""
    atomic_write_bytes(path, _parts(obj))


def _check_header(head: bytes, size: int, name: str) -> dict:
    """Parse and check a header (and the file size it implies) before any body is read."""

    def fail(why: str):
        raise CheckpointError(f"{name} is not a valid gradstep checkpoint: {why}")

    if head.count(b'"data_offsets"') > _MAX_TENSORS:
        fail(f"its header lists more than {_MAX_TENSORS:,} tensors")
    try:
        header = json.loads(head)  # a hostile nesting depth is a RecursionError, caught
        meta = header.pop("__metadata__")
        if meta["format"] != FORMAT or not all(isinstance(v, str) for v in meta.values()):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        fail("its header is not gradstep's (a pickle, a PyTorch file, or damaged)")
    if meta.get("version") != VERSION:
        fail(f"format version {meta.get('version')!r}; this gradstep reads version {VERSION}")
    end = 0
    try:
        for t in header.values():
            lo, hi = t["data_offsets"]
            if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
                raise TypeError
            end = max(end, hi)
    except (TypeError, KeyError, ValueError, AttributeError):
        fail("its tensor table is damaged")
    if 8 + len(head) + end != size:
        fail(f"its header declares {8 + len(head) + end} bytes but the file has {size}")
    return meta


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
    meta = _check_header(bytes(blob[8 : 8 + n]), len(blob), name)
    digest = meta.get("sha256", "")
    if not isinstance(digest, str) or len(digest) != 64:
        fail("its digest is missing")
    if blob[8 : 8 + len(_PREFIX)] == _PREFIX.encode():
        pos = 8 + len(_PREFIX)  # by construction
    else:  # written before the header was gradstep's own: the digest is the first match
        pos = bytes(blob[: 8 + n]).find(digest.encode(), 8)
    if blob[pos : pos + 64] != digest.encode():
        fail("its digest is missing")
    view = memoryview(blob)
    h = hashlib.sha256(view[:pos])  # the digest of the file with its digest zeroed, no copy
    h.update(_ZERO_DIGEST.encode())
    h.update(view[pos + 64 :])
    if h.hexdigest() != digest:
        fail("its SHA-256 does not match its contents (damaged or truncated)")
    try:
        arrays = st_load(blob if isinstance(blob, bytes) else bytes(blob))
        return _decode(json.loads(meta["structure"]), arrays)
    except Exception as e:  # the digest matched, so this is a writer's bug: say so plainly
        fail(f"{type(e).__name__}: {e}")


def load(path, map_location=None, weights_only=None):
    """Read a file written by :func:`save` and return the same structure.

    ``map_location`` ("cpu", a device, or None) and ``weights_only`` are taken for PyTorch
    code: the arrays are NumPy's on the CPU, and a file holds data only (no pickle), always.

    Anything but a regular file (a device, a FIFO, a folder) is refused before a byte is read,
    and the header is read and checked against the file's size before the body, so a symlink
    to /dev/zero or a sparse file with a forged header costs nothing."""
    import stat

    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path} is a device, FIFO or socket, not a checkpoint file")
    with open(path, "rb") as f:
        first = f.read(8)
        n = int.from_bytes(first, "little") if len(first) == 8 else -1
        if 0 <= n <= min(_MAX_HEADER, st.st_size - 8):
            _check_header(f.read(n), st.st_size, path)
            f.seek(0)
            blob = f.read(st.st_size + 1)
        else:
            blob = first
    return loads(blob, path)
