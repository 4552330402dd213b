"""Reading a user's CSV for training and prediction, with errors that name file, line, column.

pandas' C parser reads the cells (fast on big tables: it infers numbers itself); a structural
pass before it checks what pandas would silently repair (short rows padded with NaN, duplicated
names renamed to "a.1") and finds the line each record starts on, which becomes the frame's
index (named ``"line"``), so every later error names the line of the file, right with blank
lines and quoted multi-line cells. Without quotes in the file that pass is a few vectorised
NumPy calls; with quotes it is the csv module. The delimiter is sniffed (comma, semicolon, tab,
bar) unless given; empty cells and the usual markers (:data:`MISSING`) are missing values.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import sys
import warnings

import numpy as np

from gradstep.errors import InputError

__all__ = [
    "MISSING",
    "InputError",
    "check_columns",
    "line_of",
    "numeric_column",
    "read_table",
    "read_text",
]

#: Cells read as missing values (after stripping white space).
MISSING = ("", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "null", "NULL", "Null", "?", "-")
_DELIMITERS = (",", ";", "\t", "|")
_SAMPLE = 1 << 16


def _open_regular(path, what: str = "file"):
    """Open ``path`` for reading if it is a regular file; refuse devices, FIFOs and folders
    before reading a byte (a symlink to /dev/zero would otherwise fill the memory)."""
    path = os.fspath(path)
    if path.strip() == "":
        raise InputError(f"the {what} path is empty (an unset shell variable?)")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: is a device, FIFO or socket, not a {what}")
    try:
        return open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror})") from None


def _check_bytes(raw: bytes, path: str) -> None:
    """Refuse an empty, binary or non-UTF-8 file (without decoding an ASCII one: fast)."""
    if not re.search(rb"\S", raw):
        raise InputError(f"{path}: the file is empty")
    if not raw.isascii():
        try:
            raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise InputError(
                f"{path} line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save it as UTF-8"
            ) from None
    if b"\x00" in raw:
        raise InputError(f"{path}: contains NUL bytes; is it a binary file, not a CSV?")


def _decode(raw: bytes, path: str) -> str:
    _check_bytes(raw, path)
    return raw.decode("utf-8-sig")


def read_text(path, limit: int = 1 << 20) -> str:
    """The text of a small UTF-8 file (a config, at most ``limit`` bytes), with one-line errors."""
    with _open_regular(path) as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise InputError(f"{path}: larger than {limit // 1024} KiB; not a config file")
    return _decode(raw, os.fspath(path))


def _records(text: str, sep: str, path: str, limit: int | None = None, skipped: int = 0):
    """(line the record starts on, fields) for each non-blank record, by the csv module."""
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    line = 1
    try:
        for row in reader:
            if row and any(c.strip() for c in row) or len(row) > 1:
                yield line, row
                if limit is not None:
                    limit -= 1
                    if limit == 0:
                        return
            line = reader.line_num + 1
    except csv.Error as e:
        why = "a quoted cell is never closed" if "end of data" in str(e) else str(e)
        raise InputError(f"{path} line {line + skipped}: {why}") from None


def _sniff(text: str, path: str) -> str:
    """The delimiter that splits the first lines into the same number (> 1) of fields."""
    sample = text[:_SAMPLE]
    if len(text) > _SAMPLE and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    best, best_n = ",", 1
    for sep in _DELIMITERS:
        try:
            counts = [len(r) for _, r in _records(sample, sep, path, limit=20)]
        except InputError:
            continue
        if counts and counts[0] > best_n and all(c == counts[0] for c in counts):
            best, best_n = sep, counts[0]
    return best


def _positions(buf: np.ndarray, byte: int, chunk: int = 1 << 24) -> np.ndarray:
    """Offsets of ``byte`` in ``buf``, found a chunk at a time (no file-sized temporary)."""
    found = [np.flatnonzero(buf[o : o + chunk] == byte) + o for o in range(0, len(buf), chunk)]
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _sep_counts(buf: np.ndarray, starts, ends, sep: int, chunk: int = 1 << 24) -> np.ndarray:
    """Delimiters per line, counted a block of whole lines at a time (no file-sized temporary)."""
    counts = np.empty(len(starts), np.int64)
    i = 0
    while i < len(starts):
        j = max(int(np.searchsorted(starts, starts[i] + chunk)), i + 1)
        lo, hi = starts[i], max(ends[j - 1], starts[j - 1] + 1)
        mask = buf[lo:hi] == sep
        counts[i:j] = np.add.reduceat(mask, starts[i:j] - lo, dtype=np.int32)
        counts[i:j][ends[i:j] == starts[i:j]] = 0  # reduceat gives an empty line's next byte
        i = j
    return counts


def _fast_lines(raw: bytes, sep: str, n_fields: int, path: str, skipped: int = 0) -> np.ndarray:
    """Line numbers of the data records of a file without quotes, checking that every record
    has ``n_fields`` fields: vectorised, in blocks of lines."""
    buf = np.frombuffer(raw, np.uint8)
    newline = 10 if b"\n" in raw or b"\r" not in raw else 13
    ends = _positions(buf, newline)
    if len(buf) and buf[-1] != newline:
        ends = np.append(ends, len(buf))
    starts = np.concatenate(([0], ends[:-1] + 1))
    counts = _sep_counts(buf, starts, ends, ord(sep))
    blank = counts == 0
    if blank.any():  # a line with no delimiter is blank if it is white space alone
        idx = np.flatnonzero(blank)
        blank[idx] = [not raw[starts[i] : ends[i]].strip() for i in idx]
    lines = np.flatnonzero(~blank) + 1  # 1-based line numbers of non-blank lines
    bad = np.flatnonzero(counts[lines - 1] != n_fields - 1)
    if len(bad):
        k = lines[bad[0]]
        raise InputError(
            f"{path} line {k + skipped}: {counts[k - 1] + 1} fields, the header has {n_fields}"
        )
    return lines[1:] + skipped


def _slow_lines(text: str, sep: str, n_fields: int, path: str, skipped: int = 0) -> np.ndarray:
    lines = []
    for i, (line, row) in enumerate(_records(text, sep, path, skipped=skipped)):
        if len(row) != n_fields:
            raise InputError(
                f"{path} line {line + skipped}: {len(row)} fields, the header has {n_fields}"
            )
        if i:
            lines.append(line)
    return np.asarray(lines, dtype=np.int64)


def read_table(
    path, sep: str | None = None, decimal: str | None = None, thousands: str | None = None
):
    """The CSV as a pandas DataFrame, after structural checks.

    Parameters
    ----------
    path : str or PathLike
        A UTF-8 CSV file with a header row.
    sep : str, optional
        The delimiter; sniffed from the first lines when None (comma, semicolon, tab or bar).
    decimal, thousands : str, optional
        Passed to pandas for every column (``decimal=","`` for a European export). ``decimal``
        None: "," when the delimiter is not a comma and the first lines hold unquoted decimal
        commas (a spreadsheet export), else ".". Either way, text columns of numbers written
        with thousands separators or decimal commas are
        still recognised by :mod:`gradstep.data.columns`.

    Returns
    -------
    DataFrame of shape (n_rows, n_columns)
        Numbers where pandas could read a whole column as numbers, strings (stripped) elsewhere,
        NaN/None for missing cells; its index holds the line of the file each row starts on.
    """
    import pandas as pd

    path = os.fspath(path)
    with _open_regular(path) as f:
        if b"\x00" in f.read(_SAMPLE):  # a binary or sparse file: refused before reading it all
            raise InputError(f"{path}: contains NUL bytes; is it a binary file, not a CSV?")
        f.seek(0)
        raw = f.read()
    _check_bytes(raw, path)
    raw = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw  # the BOM
    skipped = 0
    excel = re.match(rb"sep=(.)[ \t]*\r?\n", raw)  # Excel's "sep=;" first line
    if excel:
        sep = sep or excel.group(1).decode("utf-8", "replace")
        raw, skipped = raw[excel.end() :], 1
    head = raw[: _SAMPLE * 16].decode("utf-8", errors="replace")
    if sep is None:
        sep = _sniff(head, path)
    if decimal is None:
        comma = rf"(^|{re.escape(sep)})[ \t]*-?\d+,\d+[ \t]*({re.escape(sep)}|\r?$)"
        decimal = "," if sep != "," and re.search(comma, head, re.MULTILINE) else "."
    first = next(_records(head, sep, path, limit=1), None)
    if first is None:
        raise InputError(f"{path}: the file is empty")
    header = [h.strip() for h in first[1]]
    for i, h in enumerate(header):
        if h == "":
            raise InputError(f"{path} line {first[0] + skipped}: column {i + 1} has an empty name")
        if h in header[:i]:
            raise InputError(f"{path} line {first[0] + skipped}: duplicated column name '{h}'")
    if b'"' in raw:
        lines = _slow_lines(raw.decode("utf-8"), sep, len(header), path, skipped)
    else:
        lines = _fast_lines(raw, sep, len(header), path, skipped)
    if len(lines) == 0:
        raise InputError(f"{path}: has a header but no data rows")
    body = raw
    try:
        with warnings.catch_warnings():  # DtypeWarning: mixed chunks are typed below
            warnings.simplefilter("ignore")
            df = pd.read_csv(
                io.BytesIO(body),
                sep=sep,
                decimal=decimal,
                thousands=thousands,
                na_values=list(MISSING),
                keep_default_na=False,
                skip_blank_lines=True,
                index_col=False,  # never take a first column as the index
                engine="c",
            )
    except Exception as e:  # pandas' own parse errors
        raise InputError(f"{path}: could not parse as CSV ({str(e).splitlines()[0]})") from None
    if len(df) != len(lines):  # should not happen: the two passes disagree on a record
        raise InputError(f"{path}: could not parse as CSV (records are ambiguous)")
    df.columns = header
    df.index = pd.Index(lines, name="line")
    for c in df.columns:
        if df[c].dtype.kind not in "iufbcmM":  # text (object, or pandas' string dtype)
            s = df[c].astype(object).where(df[c].notna(), None)
            s = s.map(lambda v: v.strip() if isinstance(v, str) else v)
            df[c] = s.where(~s.isin(MISSING) & s.notna(), None).astype(object)
    df.attrs.update(source=path, sep=sep, decimal=decimal)
    return df


def line_of(df, i: int) -> str:
    """Where row ``i`` (by position) of ``df`` came from: 'line N' of its file, or 'row i'."""
    if df.index.name == "line":
        return f"line {int(df.index[i])}"
    return f"row {i}"


def short(cell, n: int = 40) -> str:
    """A cell for a message: at most ``n`` characters."""
    s = str(cell)
    return s if len(s) <= n else s[: n - 3] + "..."


def numeric_column(df, column: str, path) -> np.ndarray:
    """float64 values of ``column``, every cell a finite number; the first bad cell is reported
    by line and column."""
    import pandas as pd

    col = df[column]
    if col.dtype.kind in "iufb":
        values = col.to_numpy(np.float64)
        raw = col
    else:
        raw = col.astype(object).where(col.notna(), "")
        values = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        cell = raw.iloc[i]
        if cell is None or (isinstance(cell, float) and np.isnan(cell)) or cell == "":
            why, cell = "is empty or missing", ""
        elif isinstance(cell, float) or str(cell).lower().lstrip("+-") in {"inf", "infinity"}:
            why = "is not finite"
        else:
            why = "could not be converted to a number"
        raise InputError(f"{path} {line_of(df, i)}, column '{column}': '{short(cell)}' {why}")
    return values


def check_columns(df, names, path, what: str = "column") -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise InputError(
            f"{path}: no {what} '{missing[0]}' (columns: {', '.join(map(str, df.columns))})"
        )
