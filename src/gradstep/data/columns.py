"""What a table's column holds: numbers (also "3,504" and "1,5"), booleans, dates, categories,
or identifiers and free text that a network cannot use.

:func:`infer` decides a column's kind from its cells; :func:`to_numbers` reads numbers written
with thousands separators or decimal commas the way the column writes them (one way per
column, so "1,234" is never a thousand in one row and 1.234 in the next). A comma-separated
file cannot hold an unquoted decimal comma, so there a comma is a thousands separator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from gradstep.errors import InputError

TRUE = {"true", "yes", "y", "t"}
FALSE = {"false", "no", "n", "f"}
MAX_CATEGORIES = 50
_THOUSANDS = re.compile(r"^[+-]?([1-9]\d{0,2}(,\d{3})+|\d+)(\.\d+)?$")  # not "0,125"
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d*)(,\d+)?$")
_DATE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2})?)?")


@dataclass
class Column:
    """One column's kind and, for numbers, how they are written."""

    name: str
    kind: str  # numeric | boolean | date | categorical | skip
    why: str = ""
    number_format: str = "plain"  # plain | thousands | decimal_comma


def _strings(col):
    """Non-missing cells as stripped strings, and the mask of missing cells."""
    missing = col.isna().to_numpy()
    return col[~missing].astype(str).str.strip(), missing


def to_numbers(col, number_format: str = "plain") -> np.ndarray:
    """float64 values of a column (NaN where missing or not a number in that format)."""
    import pandas as pd

    if col.dtype.kind in "iufb":
        return col.to_numpy(np.float64)
    s = col.astype(object).where(col.notna(), None)
    s = s.astype(str).str.strip().where(col.notna(), None)
    if number_format == "thousands":
        s = s.where(s.str.match(_THOUSANDS, na=False), None).str.replace(",", "", regex=False)
    elif number_format == "decimal_comma":
        ok = s.str.match(_DECIMAL_COMMA, na=False) & s.str.contains(r"\d", na=False)
        s = s.where(ok, None).str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    return pd.to_numeric(s, errors="coerce").to_numpy(np.float64)


def _number_format(col, sep: str, decimal: str = ".") -> tuple[str, float]:
    """The way of writing numbers that reads the most cells, and the share it reads."""
    present = col.notna().to_numpy()
    n = max(int(present.sum()), 1)
    # a tie ("1,234" reads both ways) goes to the delimiter's custom: a comma file cannot hold an
    # unquoted decimal comma; a semicolon or tab file is the spreadsheet export that writes them
    formats = ["plain", "thousands"] if sep == "," else ["plain", "decimal_comma", "thousands"]
    if decimal == ",":  # the file writes decimal commas: "34.432" is thirty-four thousand
        formats = ["decimal_comma", "plain", "thousands"]
    best, best_share = "plain", -1.0
    for fmt in formats:
        share = float(np.isfinite(to_numbers(col, fmt))[present].sum()) / n
        if share > best_share + 1e-12:
            best, best_share = fmt, share
    return best, best_share


def infer(col, name: str, sep: str = ",", decimal: str = ".") -> Column:
    """The kind of column ``name``: decided from its non-missing cells."""
    import pandas as pd

    if not col.notna().any():
        return Column(name, "skip", "every cell is missing")
    if col.nunique(dropna=True) == 1 and col.notna().all():
        return Column(name, "skip", "the same value in every row")
    if col.dtype.kind == "b":
        return Column(name, "boolean", "true/false values")
    if col.dtype.kind in "iuf":
        return Column(name, "numeric", "numbers")
    values, _ = _strings(col)
    if len(values) == 0:
        return Column(name, "skip", "every cell is missing")
    fmt, share = _number_format(col, sep, decimal)
    # numbers with a few stray words (at most one cell in ten, or a single one) are numbers
    # with typos, reported cell by cell; "1, 2, A, B" codes are categories
    strays = round((1 - share) * len(values))
    if share > 0.5 and strays <= max(1, 0.1 * len(values)):
        how = {
            "plain": "",
            "thousands": " with thousands separators",
            "decimal_comma": " with decimal commas",
        }[fmt]
        return Column(name, "numeric", f"numbers{how}", number_format=fmt)
    lower = set(values.str.lower().unique())
    if lower <= TRUE | FALSE and lower & TRUE and lower & FALSE:
        return Column(name, "boolean", f"two values ({', '.join(sorted(set(values)))})")
    if values.str.match(_DATE).mean() >= 0.9:
        parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
        if parsed.notna().mean() >= 0.9:
            return Column(name, "date", "dates: year, month, day of year, weekday")
    n_unique = values.nunique()
    if n_unique <= MAX_CATEGORIES and (n_unique <= len(values) / 2 or n_unique <= 2):
        return Column(name, "categorical", f"{n_unique} categories, one-hot encoded")
    if n_unique == len(values):
        return Column(name, "skip", "an identifier or free text (every value differs)")
    return Column(name, "skip", f"free text ({n_unique} distinct values)")


def first_bad(col, values: np.ndarray, missing: np.ndarray):
    """Position of the first cell that is present but not a finite number, or None."""
    bad = ~np.isfinite(values) & ~missing
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def labels(col):
    """A column's cells as category labels: text, stripped; a number read as 1.0 is "1" (so a
    prediction file that pandas reads as numbers matches the levels learned as text); None
    where missing."""
    import pandas as pd

    missing = col.isna().to_numpy()
    if col.dtype.kind == "f":
        v = col.to_numpy(np.float64)
        whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2**53)
        text = col.astype(str).to_numpy(object)
        text[whole] = v[whole].astype(np.int64).astype(str)
    elif col.dtype.kind in "iub":
        text = col.astype(str).to_numpy(object)
    else:
        text = col.astype(object).where(~missing, "").astype(str).str.strip().to_numpy(object)
    text[missing] = None
    return pd.Series(text, index=col.index, dtype=object)


def date_parts(col) -> np.ndarray:
    """(n, 4) float64: year, month, day of year, weekday (0 = Monday); NaN where missing."""
    import pandas as pd

    s = col.astype(object).where(col.notna(), None)
    d = pd.to_datetime(s, errors="coerce", format="mixed", utc=True)
    parts = [d.dt.year, d.dt.month, d.dt.day_of_year, d.dt.day_of_week]
    return np.column_stack([p.to_numpy(np.float64, na_value=np.nan) for p in parts])


def booleans(col) -> np.ndarray:
    """1.0 for true-like, 0.0 for false-like, NaN for missing; other values raise."""
    if col.dtype.kind == "b":
        return col.to_numpy(np.float64)
    s = col.astype(object).where(col.notna(), None)
    low = s.astype(str).str.strip().str.lower()
    out = np.where(low.isin(TRUE), 1.0, np.where(low.isin(FALSE), 0.0, np.nan))
    out[col.isna().to_numpy()] = np.nan
    return out


def check_known(col, values: np.ndarray, name: str, path, what: str) -> None:
    """Raise for the first present cell that ``values`` could not read."""
    from gradstep.data.tabular import line_of, short

    i = first_bad(col, values, col.isna().to_numpy())
    if i is not None:
        cell = col.iloc[i]
        why = (
            "is not finite"
            if str(cell).strip().lower().lstrip("+-") in {"inf", "infinity"}
            or (isinstance(cell, float) and np.isinf(cell))
            else f"could not be converted to {what}"
        )
        raise InputError(
            f"{path} {line_of(col.to_frame(), i)}, column '{name}': '{short(cell)}' {why}"
        )
