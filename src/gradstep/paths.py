"""The one place that decides whether an output path is safe to create or replace.

Every command that writes goes through :func:`output_folder` or :func:`output_file`:

- An output is never empty, the file-system root, the current folder or a parent of it, a
  device, FIFO or socket (or anything under /dev, /proc, /sys), one of the command's inputs, or
  a folder that holds an input. Each is refused with one line naming the path and the reason.
- Nothing that exists is replaced unless the caller passes ``overwrite=True`` (``--overwrite``).
  Even then a folder is replaced only if gradstep made it for the same purpose (its marker file
  ``.gradstep.json`` says so) and it holds nothing gradstep did not write there.
- The new output is built under an unpredictable temporary name in the destination's folder
  (created exclusively, never through a symlink) and published only when complete: by a rename
  that cannot replace anything (``renameat2(RENAME_NOREPLACE)`` on Linux), or, when replacing,
  by an atomic exchange of the old and new folder after which the old one is removed. A crash at
  any moment leaves the old output or the new one.
- While a command writes an output it holds a lock (``flock``) on a lock file beside it, so a
  second command aimed at the same output is refused at once; the kernel drops the lock of a
  killed process, and the next command removes what that process left behind.
- Outputs get the permissions the umask gives (``mkstemp``/``mkdtemp`` alone would give
  0600/0700, unreadable to a teaching assistant or a web server).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile

from gradstep.errors import InputError
from gradstep.publish import (
    PARTIAL,
    TMP_TAG,
    fsync_files,
    locked,
    publish_new,
    publish_replace,
    stem,
)

MARKER = ".gradstep.json"
_SPECIAL_ROOTS = ("/dev", "/proc", "/sys")
# Folders written by gradstep before the marker file existed, by kind: the exact names they held
# (and one that must be there). A folder with any other name is never taken for one of these.
_LECTURE_PNGS = [
    "error_surface",
    "backprop",
    "experiments",
    "gd_one_parameter",
    "learning_curves",
    "overfitting",
    "piecewise",
    "three_tasks",
]
_LEGACY = {
    "run": (
        "model.ckpt",
        {"model.ckpt", "metrics.json", "history.csv", "summary.txt", "learning_curves.png"},
    ),
    "report": (
        "results.json",
        {"report.html", "report.md", "results.json", *(f"{n}.png" for n in _LECTURE_PNGS)},
    ),
}


def umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _refuse(option: str, path: str, why: str):
    raise InputError(f"{option} {path!r}: {why}")


def _refuser(option: str):
    def refuse(path: str, why: str):
        _refuse(option, path, why)

    return refuse


def _dir(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def _inside(child: str, parent: str) -> bool:
    """Whether real path ``child`` is strictly inside real path ``parent``."""
    parent = parent.rstrip(os.sep) + os.sep
    return child.startswith(parent) and child != parent.rstrip(os.sep)


def destination(raw: str) -> str:
    """The absolute path a write to ``raw`` lands on: its folder resolved as the OS resolves it
    (``lnk/../x`` is x beside lnk's target, not beside lnk), its last part kept as given."""
    raw = raw.rstrip(os.sep) or os.sep
    folder, name = os.path.split(raw)
    if name in ("", ".", ".."):
        return os.path.realpath(raw)
    return os.path.join(os.path.realpath(folder or os.curdir), name)


def _same(a: str, b: str) -> bool:
    """Whether two existing paths are one file or folder (same device and inode: catches bind
    mounts, hard links and case-insensitive names that strings miss)."""
    try:
        return os.path.samestat(os.stat(a), os.stat(b))
    except OSError:
        return False


def _below(child: str, parent: str) -> bool:
    """Whether an ancestor folder of ``child`` is ``parent`` by identity (see :func:`_same`)."""
    try:
        target = os.stat(parent)
    except OSError:
        return False
    probe = os.path.dirname(child)
    while True:
        try:
            if os.path.samestat(os.stat(probe), target):
                return True
        except OSError:
            pass
        up = os.path.dirname(probe)
        if up == probe:
            return False
        probe = up


def _kind_of(st) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "device or special file"


def check_output(
    path, *, kind: str, inputs=(), overwrite: bool = False, option: str = "--out"
) -> str:
    """Refuse an unsafe output ``path``; return it as an absolute path.

    Parameters
    ----------
    path : str or PathLike
        The output as the user gave it.
    kind : {"file", "run", "report", ...}
        ``"file"`` for a single file; any other word names the kind of folder, which must match
        the marker of an existing folder for ``overwrite`` to replace it.
    inputs : iterable of paths
        Files and folders the command reads; the output may be none of them nor hold them.
    overwrite : bool
        Whether an existing output may be replaced.
    option : str
        The option's name, for messages.
    """
    raw = os.fspath(path) if path is not None else ""
    if raw.strip() == "":
        _refuse(option, raw, "is empty (an unset shell variable?); name a file or folder")
    absolute = destination(raw)  # where the write lands: its folder resolved as the OS does
    real = os.path.realpath(absolute)  # and through a symlink at the end
    for candidate in {absolute, real}:
        if candidate == os.path.dirname(candidate):
            _refuse(option, raw, "is the root of the file system")
        if any(candidate == r or _inside(candidate, r) for r in _SPECIAL_ROOTS):
            _refuse(option, raw, "is a device or system path; give a regular file or folder")
    cwd = os.path.realpath(os.getcwd())
    if real == cwd or _same(real, cwd):
        _refuse(option, raw, "is the current folder; name a new folder inside it")
    if _inside(cwd, real) or _below(cwd, real):
        _refuse(option, raw, "is a parent of the current folder")
    exists = os.path.lexists(absolute)
    for inp in inputs:
        if inp is None or os.fspath(inp) == "":
            continue
        inp = os.fspath(inp)
        rin = os.path.realpath(inp)
        if real == rin or _same(real, rin):
            _refuse(option, raw, f"is the input {inp!r}; write the output somewhere else")
        if _inside(rin, real) or _below(rin, real):
            _refuse(option, raw, f"holds the input {inp!r}; write the output somewhere else")
        if exists and os.path.isdir(rin) and (_inside(real, rin) or _below(real, rin)):
            _refuse(option, raw, f"is inside the input folder {inp!r}; it is never replaced")
    _check_parent(absolute, raw, option, create=kind != "file")
    try:
        st = os.lstat(absolute)
    except FileNotFoundError:
        return absolute
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(absolute)
        except OSError:
            _refuse(option, raw, "is a dangling symbolic link")
        if kind != "file":
            _refuse(option, raw, "is a symbolic link; give the folder's real path")
    what = _kind_of(st)
    if what == "device or special file":
        _refuse(option, raw, "is a device or special file (FIFO, socket); it is never replaced")
    if kind == "file" and what == "folder":
        _refuse(option, raw, "is a folder; give a file name")
    if kind != "file" and what == "file":
        _refuse(option, raw, "is a file; give a folder name (it is never replaced by a folder)")
    if what == "folder" and not os.listdir(absolute):
        return absolute  # an empty folder the user made for it: nothing can be lost
    if not overwrite:
        _refuse(option, raw, "already exists; pass --overwrite to replace it, or choose another")
    if kind != "file":
        why = foreign_content(absolute, kind)
        if why:
            _refuse(option, raw, f"{why}; it is not replaced, even with --overwrite")
    return absolute


def _check_parent(absolute: str, raw: str, option: str, create: bool) -> None:
    """The output's folder must be a folder (``afile.txt/run`` is refused); a run or report
    folder's missing parents are created, a single file's are not."""
    parent = os.path.dirname(absolute)
    probe = parent
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        _refuse(option, raw, f"{probe!r} is a file, not a folder")
    if probe != parent and not create:
        _refuse(option, raw, f"the folder {parent!r} does not exist")


def foreign_content(folder: str, kind: str) -> str | None:
    """Why ``folder`` is not a gradstep ``kind`` folder holding only gradstep's files, or None."""
    try:
        names = set(os.listdir(folder))
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    marker = os.path.join(folder, MARKER)
    if MARKER in names:
        try:
            if not os.path.isfile(marker) or os.path.getsize(marker) > 1 << 16:
                raise ValueError
            with open(marker, encoding="utf-8") as f:
                info = json.load(f)
            own_kind, written = info["kind"], set(info["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return f"has a damaged {MARKER}"
        if own_kind != kind:
            return f"is a gradstep {own_kind} folder, not a {kind} folder"
        extra = sorted(names - written - {MARKER})
    elif kind in _LEGACY and _LEGACY[kind][0] in names and _legacy_proof(folder, kind):
        extra = sorted(names - _LEGACY[kind][1])
    else:
        return f"is not a {kind} folder that gradstep made"
    if extra:
        return f"holds {extra[0]!r}, which is not part of what gradstep wrote there"
    return None


def _legacy_proof(folder: str, kind: str) -> bool:
    """Whether a marker-less folder's key file is gradstep's own: a run's model.ckpt whose
    header names the gradstep format, a report's results.json with the lecture's keys."""
    path = os.path.join(folder, _LEGACY[kind][0])
    try:
        if os.path.islink(path) or not os.path.isfile(path):
            return False
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if kind == "run":
            return b'"format":"gradstep"' in head
        info = json.loads(head)
        return isinstance(info, dict) and {"quick", "experiments"} <= set(info)
    except (OSError, ValueError):
        return False


# --- the two entry points ------------------------------------------------------------------------
@contextlib.contextmanager
def output_folder(path, *, kind: str, inputs=(), overwrite: bool = False, option: str = "--out"):
    """Build a ``kind`` folder (``"run"``, ``"report"``) at ``path`` safely.

    Yields the temporary folder to write into; on success it gets the marker file and is
    published at ``path`` (replacing an old one of the same kind only if ``overwrite``); on any
    error it is removed and ``path`` is untouched.
    """
    dst = check_output(path, kind=kind, inputs=inputs, overwrite=overwrite, option=option)
    os.makedirs(_dir(dst), mode=0o777, exist_ok=True)
    refuse = _refuser(option)
    with locked(dst, refuse):
        # again, now that leftovers are cleaned: an interrupted replacement may be back
        check_output(path, kind=kind, inputs=inputs, overwrite=overwrite, option=option)
        tmp = tempfile.mkdtemp(prefix=f".{stem(dst)}.", suffix=TMP_TAG, dir=_dir(dst))
        try:
            os.chmod(tmp, 0o777 & ~umask())
            open(os.path.join(tmp, PARTIAL), "x").close()
            yield tmp
            os.unlink(os.path.join(tmp, PARTIAL))
            files = sorted(os.listdir(tmp))
            fsync_files(tmp, files)  # a power cut after the swap must not find empty files
            with open(os.path.join(tmp, MARKER), "x", encoding="utf-8") as f:
                json.dump({"kind": kind, "files": files}, f)
            if overwrite:
                publish_replace(tmp, dst, lambda d: foreign_content(d, kind), refuse)
            else:
                publish_new(tmp, dst, refuse)
        finally:
            if os.path.isdir(tmp) and not os.path.islink(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        from gradstep.io import fsync_dir

        fsync_dir(_dir(dst))


@contextlib.contextmanager
def output_file(path, *, inputs=(), overwrite: bool = False, option: str = "--out"):
    """Write one file at ``path`` safely: yields a binary file object open on a fresh temporary
    file beside it, published only when the block ends without error."""
    dst = check_output(path, kind="file", inputs=inputs, overwrite=overwrite, option=option)
    refuse = _refuser(option)
    with locked(dst, refuse):
        check_output(path, kind="file", inputs=inputs, overwrite=overwrite, option=option)
        fd, tmp = tempfile.mkstemp(prefix=f".{stem(dst)}.", suffix=TMP_TAG, dir=_dir(dst))
        try:
            os.fchmod(fd, 0o666 & ~umask())
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            if overwrite:
                publish_replace(tmp, dst, None, refuse)
            else:
                publish_new(tmp, dst, refuse)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        from gradstep.io import fsync_dir

        fsync_dir(_dir(dst))
