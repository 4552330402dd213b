"""How an output that :mod:`gradstep.paths` allowed is put in place: atomic renames, the lock
that keeps two commands off one output, and the removal of what killed commands left behind.

Every function here that deletes, moves or replaces touches only (a) the temporary file or
folder this command made, (b) names of exactly the shape this module makes for one output
(``.NAME.<8 random>.gradstep-out|-old``, ``.NAME.gradstep-lock`` holding gradstep's marker), or
(c) an existing output the user asked to replace, which is checked again *after* it has been
moved aside and put back if anything not gradstep's appeared in it meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile

PARTIAL = ".gradstep-partial"
TMP_TAG = ".gradstep-out"  # not io's ".gradstep-tmp": its cleaner must not match ours
OLD_TAG = ".gradstep-old"
LOCK_TAG = ".gradstep-lock"
_LOCK_TEXT = b"gradstep output lock\n"
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2


def _dir(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def stem(path: str) -> str:
    """The output's name as used in its hidden temp and lock names: cut so that those stay
    under the usual 255-byte limit for a name however long the output's own name is."""
    return os.path.basename(path)[:200]


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


def publish_new(tmp: str, dst: str, refuse) -> None:
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
        else:  # claim the name exclusively, then replace that placeholder of ours
            os.close(os.open(dst, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            os.replace(tmp, dst)
    except (FileExistsError, OSError) as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        refuse(dst, "was created by another program while this one ran; left as it is")


def publish_replace(tmp: str, dst: str, foreign, refuse) -> None:
    """Replace ``dst`` by ``tmp`` (``--overwrite``); the old output is removed afterwards.

    ``foreign(folder)`` says why a folder is not one gradstep may replace (None if it may);
    None for a single file. A file is replaced only while it is still a regular file (or a
    link); a folder is moved aside first, checked again there, and put back if it now holds
    anything that is not gradstep's.
    """
    folder_kind = foreign is not None
    if not os.path.lexists(dst) or (
        folder_kind and os.path.isdir(dst) and not os.path.islink(dst) and not os.listdir(dst)
    ):
        return publish_new(tmp, dst, refuse)
    if not folder_kind:
        mode = os.lstat(dst).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            refuse(dst, "is no longer a regular file; it is not replaced")
        os.replace(tmp, dst)
        return None
    why = foreign(dst)
    if why:
        refuse(dst, f"{why}; it is not replaced, even with --overwrite")
    if _renameat2(tmp, dst, _RENAME_EXCHANGE):
        aside = tmp  # the old folder is now at the temporary name
        put_back = _exchange_back
    else:
        holder = tempfile.mkdtemp(prefix=f".{stem(dst)}.", suffix=OLD_TAG, dir=_dir(dst))
        aside = os.path.join(holder, "old")
        os.rename(dst, aside)
        try:
            os.rename(tmp, dst)
        except BaseException:
            os.rename(aside, dst)
            raise
        put_back = _two_renames_back
    why = foreign(aside)  # what changed between the check and the move is caught here
    if why:
        put_back(tmp, dst, aside)
        refuse(dst, f"{why} (it changed while this run wrote); it was put back, not replaced")
    shutil.rmtree(aside)  # the old output, gradstep's own, checked after it was moved
    if aside != tmp:
        os.rmdir(os.path.dirname(aside))
    return None


def _exchange_back(tmp: str, dst: str, aside: str) -> None:
    try:
        if _renameat2(tmp, dst, _RENAME_EXCHANGE):  # (aside is tmp)
            return
    except OSError:
        pass
    # The previous output is still at the temporary name, which the caller would remove:
    # give it a name nothing removes, and say where it is.
    kept = tmp[: -len(TMP_TAG)] + ".gradstep-kept"
    os.rename(tmp, kept)
    raise OSError(errno.EIO, f"could not put the previous output back; it is kept at {kept}")


def _two_renames_back(tmp: str, dst: str, aside: str) -> None:
    os.rename(dst, tmp)  # the new one back to its temporary name (removed by the caller)
    os.rename(aside, dst)
    os.rmdir(os.path.dirname(aside))


@contextlib.contextmanager
def locked(dst: str, refuse):
    """Hold an exclusive lock on ``dst`` for the duration; refuse if another process holds it.

    The lock file is created exclusively and marked as gradstep's; one that exists without the
    mark is a user's file, and is neither used nor removed."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the no-replace rename still guards
        yield
        return
    lock = os.path.join(_dir(dst), f".{stem(dst)}{LOCK_TAG}")
    from gradstep.paths import umask

    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666 & ~umask())
            os.write(fd, _LOCK_TEXT)
        except FileExistsError:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
            except FileNotFoundError:
                continue  # its holder removed it meanwhile: try again
            except OSError:
                refuse(dst, f"{lock!r} exists and is not gradstep's lock; move it away")
            if os.pread(fd, len(_LOCK_TEXT) + 1, 0) not in (_LOCK_TEXT, b""):
                os.close(fd)
                refuse(dst, f"{lock!r} exists and is not gradstep's lock; move it away")
        except PermissionError:
            refuse(dst, f"cannot write in the folder {_dir(dst)!r} (permission denied)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            refuse(dst, "another gradstep command is writing it right now; try later")
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:  # not a lock file that its last holder removed after we opened it
            break
        os.close(fd)
    try:
        clean_leftovers(dst)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)  # ours: created with the mark, or found with it
        os.close(fd)


def clean_leftovers(dst: str) -> list[str]:
    """Remove what killed gradstep commands left while writing ``dst`` (called under its lock,
    so no live command owns them): partial folders (marked), temp files, and an old folder whose
    replacement was interrupted (put back if ``dst`` is missing). Only names of exactly the
    shape this module makes for ``dst`` match (``.NAME.<8 random>.gradstep-out``)."""
    folder, name = _dir(dst), stem(dst)
    pattern = re.compile(
        rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}({re.escape(TMP_TAG)}|{re.escape(OLD_TAG)})$"
    )
    removed = []
    for entry in os.listdir(folder):
        match = pattern.match(entry)
        if not match:
            continue
        path = os.path.join(folder, entry)
        if os.path.islink(path):
            continue
        if match.group(1) == OLD_TAG and os.path.isdir(path):
            old = os.path.join(path, "old")
            if os.path.lexists(old) and not os.path.lexists(dst):
                os.rename(old, dst)
            if not os.listdir(path):
                os.rmdir(path)
                removed.append(entry)
        elif os.path.isdir(path):
            if os.path.isfile(os.path.join(path, PARTIAL)):
                shutil.rmtree(path)
                removed.append(entry)
        elif os.path.isfile(path):
            os.unlink(path)
            removed.append(entry)
    return removed


def fsync_files(folder: str, names) -> None:
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
