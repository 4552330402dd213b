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
import errno
import json
import os
import re
import shutil
import stat
import tempfile

from gradstep.errors import InputError

MARKER = ".gradstep.json"
_PARTIAL = ".gradstep-partial"
_TMP_TAG = ".gradstep-out"  # not io's ".gradstep-tmp": its cleaner must not match ours
_OLD_TAG = ".gradstep-old"
_LOCK_TAG = ".gradstep-lock"
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


# --- publishing ----------------------------------------------------------------------------------
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2


def _renameat2(src: str, dst: str, flags: int) -> bool:
    """Linux's renameat2; False where the system or file system does not have it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except Exception:  # no libc (Windows: CDLL(None) is a TypeError), or no renameat2
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), dst)


def _publish_new(tmp: str, dst: str, option: str) -> None:
    """Move ``tmp`` to ``dst``, which must not exist (checked atomically where possible)."""
    if os.path.isdir(tmp) and os.path.isdir(dst) and not os.path.islink(dst):
        with contextlib.suppress(OSError):
            os.rmdir(dst)  # an empty folder made for this output; rmdir refuses any other
    try:
        if _renameat2(tmp, dst, _RENAME_NOREPLACE):
            return
        if os.path.isdir(tmp):
            if os.path.lexists(dst):
                raise FileExistsError(errno.EEXIST, "exists", dst)
            os.rename(tmp, dst)
        else:  # claim the name exclusively, then replace our own placeholder
            os.close(os.open(dst, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            os.replace(tmp, dst)
    except (FileExistsError, OSError) as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        _refuse(option, dst, "was created by another program while this one ran; left as it is")


def _publish_replace(tmp: str, dst: str, kind: str, option: str) -> None:
    """Replace ``dst`` by ``tmp`` in one step; the old folder or file is then removed."""
    if not os.path.lexists(dst) or (
        kind != "file" and os.path.isdir(dst) and not os.path.islink(dst) and not os.listdir(dst)
    ):
        return _publish_new(tmp, dst, option)
    if kind == "file":
        os.replace(tmp, dst)
        return None
    why = foreign_content(dst, kind)  # again: it may have changed while we trained
    if why:
        _refuse(option, dst, f"{why}; it is not replaced, even with --overwrite")
    if _renameat2(tmp, dst, _RENAME_EXCHANGE):
        shutil.rmtree(tmp)  # now the old folder, checked above
        return None
    old = tempfile.mkdtemp(prefix=f".{_stem(dst)}.", suffix=_OLD_TAG, dir=_dir(dst))
    os.rename(dst, os.path.join(old, "old"))
    try:
        os.rename(tmp, dst)
    except BaseException:
        os.rename(os.path.join(old, "old"), dst)
        raise
    shutil.rmtree(old)
    return None


def _dir(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def _stem(path: str) -> str:
    """The output's name as used in its hidden temp and lock names: cut so that those stay
    under the usual 255-byte limit for a name however long the output's own name is."""
    return os.path.basename(path)[:200]


# --- locking and leftovers -----------------------------------------------------------------------
@contextlib.contextmanager
def _locked(dst: str, option: str):
    """Hold an exclusive lock on ``dst`` for the duration; refuse if another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the no-replace rename still guards
        yield
        return
    lock = os.path.join(_dir(dst), f".{_stem(dst)}{_LOCK_TAG}")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666 & ~umask())
        except PermissionError:
            _refuse(option, dst, f"cannot write in the folder {_dir(dst)!r} (permission denied)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            _refuse(option, dst, "another gradstep command is writing it right now; try later")
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:  # not a lock file that its last holder removed after we opened it
            break
        os.close(fd)
    try:
        _clean_leftovers(dst)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


def _clean_leftovers(dst: str) -> list[str]:
    """Remove what killed gradstep commands left while writing ``dst`` (called under its lock,
    so no live command owns them): partial folders (marked), temp files, and an old folder whose
    replacement was interrupted (put back if ``dst`` is missing). Only names of exactly the
    shape this module makes for ``dst`` match (``.NAME.<8 random>.gradstep-out``)."""
    folder, name = _dir(dst), _stem(dst)
    pattern = re.compile(
        rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}({re.escape(_TMP_TAG)}|{re.escape(_OLD_TAG)})$"
    )
    removed = []
    for entry in os.listdir(folder):
        match = pattern.match(entry)
        if not match:
            continue
        path = os.path.join(folder, entry)
        if os.path.islink(path):
            continue
        if match.group(1) == _OLD_TAG and os.path.isdir(path):
            old = os.path.join(path, "old")
            if os.path.lexists(old) and not os.path.lexists(dst):
                os.rename(old, dst)
            if not os.listdir(path):
                os.rmdir(path)
                removed.append(entry)
        elif os.path.isdir(path):
            if os.path.isfile(os.path.join(path, _PARTIAL)):
                shutil.rmtree(path)
                removed.append(entry)
        elif os.path.isfile(path):
            os.unlink(path)
            removed.append(entry)
    return removed


def _fsync_files(folder: str, names) -> None:
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


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
    with _locked(dst, option):
        # again, now that leftovers are cleaned: an interrupted replacement may be back
        check_output(path, kind=kind, inputs=inputs, overwrite=overwrite, option=option)
        tmp = tempfile.mkdtemp(prefix=f".{_stem(dst)}.", suffix=_TMP_TAG, dir=_dir(dst))
        try:
            os.chmod(tmp, 0o777 & ~umask())
            open(os.path.join(tmp, _PARTIAL), "x").close()
            yield tmp
            os.unlink(os.path.join(tmp, _PARTIAL))
            files = sorted(os.listdir(tmp))
            _fsync_files(tmp, files)  # a power cut after the swap must not find empty files
            with open(os.path.join(tmp, MARKER), "x", encoding="utf-8") as f:
                json.dump({"kind": kind, "files": files}, f)
            if overwrite:
                _publish_replace(tmp, dst, kind, option)
            else:
                _publish_new(tmp, dst, option)
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
    with _locked(dst, option):
        check_output(path, kind="file", inputs=inputs, overwrite=overwrite, option=option)
        fd, tmp = tempfile.mkstemp(prefix=f".{_stem(dst)}.", suffix=_TMP_TAG, dir=_dir(dst))
        try:
            os.fchmod(fd, 0o666 & ~umask())
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            if overwrite:
                _publish_replace(tmp, dst, "file", option)
            else:
                _publish_new(tmp, dst, option)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        from gradstep.io import fsync_dir

        fsync_dir(_dir(dst))
