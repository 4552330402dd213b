"""Reading a user's CSV for training and prediction, with errors that name file, line, column.

pandas parses; a first pass with the csv module checks what pandas would silently repair
(ragged rows padded with NaN, duplicated names renamed to "a.1"), and every cell of the chosen
columns must be a finite number. Line numbers count the header as line 1.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np


class InputError(ValueError):
    """Bad input from a user's file or option; the message is one line that names the place."""


def read_text(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, not a CSV file")
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise InputError(f"{path}: the file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(
            f"{path} line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise InputError(f"{path}: contains NUL bytes; is it a binary file, not a CSV?")
    return text


def read_table(path):
    """The CSV as a pandas DataFrame of strings, after structural checks."""
    import pandas as pd

    text = read_text(path)
    rows = list(csv.reader(io.StringIO(text)))
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    header = [h.strip() for h in rows[0]]
    if any(h == "" for h in header):
        raise InputError(f"{path} line 1: column {header.index('') + 1} has an empty name")
    seen = set()
    for h in header:
        if h in seen:
            raise InputError(f"{path} line 1: duplicated column name '{h}'")
        seen.add(h)
    if len(rows) < 2:
        raise InputError(f"{path}: has a header but no data rows")
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header) and any(c.strip() for c in r):
            raise InputError(f"{path} line {i}: {len(r)} fields, the header has {len(header)}")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True)
    except Exception as e:  # pandas' own parse errors, e.g. an unclosed quote
        raise InputError(f"{path}: could not parse as CSV ({str(e).splitlines()[0]})") from None
    df.columns = header
    return df


def numeric_column(df, column: str, path) -> np.ndarray:
    """float64 values of ``column``; the first bad cell is reported by line and column."""
    import pandas as pd

    raw = df[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        cell = raw.iloc[i]
        why = (
            "is empty"
            if cell == ""
            else (
                "is not finite"
                if cell.lower().lstrip("+-") in {"nan", "inf", "infinity"}
                else "could not be converted to a number"
            )
        )
        raise InputError(f"{path} line {i + 2}, column '{column}': '{cell}' {why}")
    return values


def check_columns(df, names, path, what: str = "column") -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise InputError(
            f"{path}: no {what} '{missing[0]}' (columns: {', '.join(map(str, df.columns))})"
        )
