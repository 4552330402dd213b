"""A sweep's folder and its journal: what makes a killed sweep resumable.

``trials.jsonl`` is append-only. Its first line is the header: the sweep's *identity* (the data
file and its digest, the fixed options, the space, the seeds, the strategy, the metric). Every
later line is one finished trial, written by the driver in one ``write`` and fsynced before the
next trial is counted as done. A kill at any moment leaves at most a torn last line, which the
next run drops (the trial runs again); every line before it is a finished trial that is never
run twice. A rerun with the same ``--out`` resumes when the identity is the same and is refused,
naming the first difference, when it is not.

The folder is written in place (a resumable folder cannot be built elsewhere and published at
the end); it carries the marker of :mod:`gradstep.paths` (kind ``sweep``) listing the files
gradstep wrote, so ``--overwrite`` can later replace it, and nothing a user put there is ever
removed. While a sweep runs it holds the folder's lock, so a second sweep aimed at the same
folder is refused at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading

from gradstep.errors import InputError
from gradstep.io import atomic_write_bytes, fsync_dir
from gradstep.paths import MARKER, check_output, destination, foreign_content, umask

JOURNAL = "trials.jsonl"
TABLE = "trials.csv"
VERSION = 1


def _first_difference(old: dict, new: dict, prefix: str = "") -> str | None:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(absent)"), new.get(key, "(absent)")
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _first_difference(a, b, f"{prefix}{key}.")
            if inner:
                return inner
        elif a != b:
            return f"'{prefix}{key}' was {json.dumps(a)}, now {json.dumps(b)}"
    return None


def canonical(obj) -> dict:
    """``obj`` as JSON would give it back (tuples become lists), so a header compares equal."""
    return json.loads(json.dumps(obj, allow_nan=False))


class Journal:
    """The trials of one sweep folder: read on open, appended one finished trial at a time."""

    def __init__(self, folder: str, identity: dict):
        self.folder = folder
        self.path = os.path.join(folder, JOURNAL)
        self.identity = canonical(identity)
        self.rows: dict[int, dict] = {}
        if os.path.exists(self.path):
            self._read()

    def begin(self) -> None:
        """Write the header of a new journal (its folder exists by now)."""
        if not os.path.exists(self.path):
            header = {"gradstep_sweep": VERSION, "identity": self.identity}
            atomic_write_bytes(self.path, (json.dumps(header) + "\n").encode())
        write_marker(self.folder, [JOURNAL])

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" after a complete last line; else a line a kill cut short
        good = []
        for i, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
            except ValueError:
                raise InputError(
                    f"{self.path} line {i}: not a JSON line; the journal was edited or damaged "
                    "(move the folder away to start over)"
                ) from None
            good.append(line)
            if i == 1:
                self._check_header(entry)
            elif isinstance(entry, dict) and "trial_id" in entry:
                self.rows.setdefault(int(entry["trial_id"]), entry)
        if torn:  # drop the torn line, atomically, so the next append starts on a fresh line
            atomic_write_bytes(self.path, b"".join(line + b"\n" for line in good))

    def _check_header(self, entry) -> None:
        if not isinstance(entry, dict) or entry.get("gradstep_sweep") != VERSION:
            raise InputError(f"{self.path}: not a gradstep sweep journal (version {VERSION})")
        old = entry.get("identity", {})
        diff = _first_difference(old, self.identity)
        if diff:
            raise InputError(
                f"--out {self.folder!r} holds another sweep ({diff}); choose another --out, "
                "or pass --overwrite to replace it"
            )

    def done(self, trial_id: int) -> bool:
        return trial_id in self.rows

    def append(self, row: dict) -> None:
        """Record one finished trial (a second result for the same trial is ignored: a retried
        Dask task or a resumed sweep never counts a trial twice)."""
        if row["trial_id"] in self.rows:
            return
        line = (json.dumps(row, allow_nan=False, default=_json_default) + "\n").encode()
        with _signals_held():  # a Ctrl-C between the write and the count would miscount
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                written = os.write(fd, line)
                if written != len(line):  # a full disk: the next read drops the torn line
                    raise OSError(28, "the journal line was cut short (disk full?)", self.path)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.rows[row["trial_id"]] = row

    def ordered(self) -> list[dict]:
        return [self.rows[k] for k in sorted(self.rows)]


@contextlib.contextmanager
def _signals_held():
    """Defer SIGINT/SIGTERM for the moment of one journal append, so the line on disk and the
    driver's count of kept trials never disagree; a signal that came meanwhile is raised again
    once the append is complete. (A signal mask would not do: the kernel hands a process's
    signal to any thread not masking it, such as a pool's manager thread.)"""
    held = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or any(
        signal.getsignal(s) is None
        for s in held  # a handler not set from Python
    ):
        yield
        return
    came: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: came.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if came:
            signal.raise_signal(came[0])


def _json_default(v):
    if hasattr(v, "item"):
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"{type(v).__name__} is not JSON")


def write_marker(folder: str, names) -> None:
    """The paths marker: this is a gradstep sweep folder and these files are gradstep's."""
    owned = set(names)
    path = os.path.join(folder, MARKER)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError), open(path) as f:
        owned |= set(json.load(f)["files"])
    body = json.dumps({"kind": "sweep", "files": sorted(owned - {MARKER})})
    atomic_write_bytes(path, body.encode())


def prepare_folder(out, inputs, overwrite: bool) -> tuple[str, bool]:
    """Check ``out`` and say how to write it: ``(absolute path, replace)``.

    ``replace`` is False for a new or empty folder and for a sweep folder (resumed if its
    journal has the same identity: checked when the journal is opened); True only when the
    user passed ``--overwrite`` for a folder that holds another sweep, which is then built
    aside and swapped in when complete (:func:`gradstep.paths.output_folder`).
    """
    raw = os.fspath(out) if out is not None else ""
    absolute = destination(raw) if raw.strip() else raw
    ours = (
        bool(absolute)
        and os.path.isdir(absolute)
        and not os.path.islink(absolute)
        and _marker_kind(absolute) == "sweep"
        and foreign_content(absolute, "sweep") is None
    )
    if ours:  # resumed, or replaced with --overwrite; the safety checks still apply
        check_output(raw, kind="sweep", inputs=inputs, overwrite=True)
        if not overwrite and not os.path.exists(os.path.join(absolute, JOURNAL)):
            raise InputError(f"--out {raw!r} is a sweep folder without {JOURNAL}; move it away")
        return absolute, overwrite
    # anything else: new or empty, or refused as every other output is
    return check_output(raw, kind="sweep", inputs=inputs, overwrite=overwrite), False


def _marker_kind(folder: str) -> str | None:
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            return json.load(f).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def create_folder(absolute: str) -> None:
    """Make the sweep folder (its parents too) with the permissions the umask gives."""
    os.makedirs(absolute, mode=0o777 & ~umask(), exist_ok=True)
    fsync_dir(os.path.dirname(absolute))
