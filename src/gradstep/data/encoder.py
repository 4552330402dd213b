"""A table's columns -> the float matrix a network takes, learned on the training rows only.

:class:`TableEncoder` decides each feature column's kind (:mod:`gradstep.data.columns`),
imputes missing values as scikit-learn's ``SimpleImputer(add_indicator=True)`` does (median for
numbers, most frequent for categories, a 0/1 "was missing" column for every column that had
missing values in training), one-hot encodes categories as ``OneHotEncoder(handle_unknown=
"ignore")`` (a level unseen in training is all zeros), expands dates into year, month, day of
year and weekday, and standardises the numeric block. scikit-learn learns the imputation and
the categories; what they learned is kept as plain arrays and lists, saved with the model
without pickle, and applied here with NumPy, identically by ``train``, ``predict``,
``evaluate`` and :class:`gradstep.train.tabular.TabularModel`.

The scaler is computed here, not by scikit-learn's ``StandardScaler``: its variance squares the
raw values, which overflows for features near 1e155 and beyond, and silently zeroes a fully
informative column; dividing by the column's largest magnitude first keeps every finite scale.

Layout of the matrix: [numeric block, standardised | its missing indicators | one-hot blocks |
category missing indicators]. ``numeric`` here covers numbers, booleans (0/1) and date parts.
"""

from __future__ import annotations

import numpy as np

from gradstep.data import columns as cols
from gradstep.errors import InputError

POLICIES = ("impute", "drop", "error")
FAR = 1e12  # standard deviations from the training mean: beyond, no network output means much


class TableEncoder:
    """Learn on training rows (:meth:`fit`), then :meth:`transform` any rows of the same table.

    Parameters
    ----------
    missing : {"impute", "drop", "error"}
        What a missing feature cell does: imputed (default), its row dropped in training (and an
        error at prediction time), or an error naming its line and column.
    sep, decimal : str
        The file's delimiter (a comma-separated file has no unquoted decimal commas) and decimal
        mark (where it is ",", "34.432" in a text column is 34432).
    """

    def __init__(self, missing: str = "impute", sep: str = ",", decimal: str = "."):
        if missing not in POLICIES:
            raise InputError(f"--missing must be one of {', '.join(POLICIES)}, got {missing!r}")
        self.missing, self.sep, self.decimal = missing, sep, decimal

    # --- reading raw columns ----------------------------------------------------------------------
    def _numeric_block(self, df, path):
        """(n, m) float64 with NaN for missing, for every numeric/boolean/date column."""
        blocks = []
        for c in self.columns_:
            col = df[c.name]
            if c.kind == "numeric":
                v = cols.to_numbers(col, c.number_format)
                cols.check_known(col, v, c.name, path, "a number")
                blocks.append(v[:, None])
            elif c.kind == "boolean":
                v = cols.booleans(col)
                cols.check_known(col, v, c.name, path, "true/false")
                blocks.append(v[:, None])
            elif c.kind == "date":
                v = cols.date_parts(col)
                cols.check_known(col, v[:, 0], c.name, path, "a date")
                blocks.append(v)
        n = len(df)
        return np.column_stack(blocks) if blocks else np.zeros((n, 0))

    def _category_block(self, df) -> list:
        """Per categorical column: its labels as text (None where missing)."""
        return [cols.labels(df[c.name]) for c in self.columns_ if c.kind == "categorical"]

    def missing_rows(self, df) -> np.ndarray:
        """Boolean mask of rows with a missing cell in a used column."""
        used = [c.name for c in self.columns_]
        return df[used].isna().any(axis=1).to_numpy() if used else np.zeros(len(df), bool)

    def check_complete(self, df, path) -> None:
        """Raise naming the first missing cell of a used column."""
        from gradstep.data.tabular import line_of

        for c in self.columns_:
            miss = df[c.name].isna().to_numpy()
            if miss.any():
                i = int(np.flatnonzero(miss)[0])
                hint = {"error": "--missing error", "drop": "--missing drop (at prediction)"}
                raise InputError(
                    f"{path} {line_of(df, i)}, column '{c.name}': missing value, and the run "
                    f"says {hint[self.missing]}; fill it, or train with --missing impute"
                )

    # --- fit / transform --------------------------------------------------------------------------
    def fit(self, df, features, path, schema=None) -> TableEncoder:
        """Learn imputation, categories and scaling from the rows of ``df``.

        Each column's kind is decided from ``schema`` (the whole table, default ``df``): what a
        column holds is a property of the file, and a few training rows can hide it (two
        cells, one a typo, would read as categories); the statistics come from ``df`` alone.
        """
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import OneHotEncoder

        schema = df if schema is None else schema
        self.columns_, self.skipped_ = [], []
        for name in features:
            spec = cols.infer(schema[name], name, self.sep, self.decimal)
            (self.skipped_ if spec.kind == "skip" else self.columns_).append(spec)
        if not self.columns_:
            raise InputError(f"{path}: no usable feature column ({self._skipped_text()})")
        if self.missing == "error":
            self.check_complete(schema, path)
        self._numeric_block(schema, path)  # every cell of the file readable, not only training's
        num = self._numeric_block(df, path)
        self.missing_counts_ = {c.name: int(df[c.name].isna().sum()) for c in self.columns_}
        self.num_fill_ = np.zeros(num.shape[1])
        self.num_indicator_ = []
        if num.shape[1]:
            imp = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
            imp.fit(num)
            self.num_fill_ = np.asarray(imp.statistics_, dtype=np.float64)
            ind = imp.indicator_.features_ if imp.indicator_ is not None else []
            self.num_indicator_ = [int(i) for i in ind]
            filled = np.where(np.isnan(num), self.num_fill_, num)
            self.mean_, self.scale_ = safe_moments(filled)
        else:
            self.mean_, self.scale_ = np.zeros(0), np.ones(0)
        self.cat_fill_, self.cat_indicator_, self.categories_ = [], [], []
        everything = self._category_block(schema)
        for j, labels in enumerate(self._category_block(df)):
            # most frequent training level (ties: the first in sorted order, as SimpleImputer);
            # a column with no training value at all takes the file's most frequent level
            present = labels.dropna()
            fill = _most_frequent(present if len(present) else everything[j].dropna())
            self.cat_fill_.append(fill)
            if len(present) < len(labels):
                self.cat_indicator_.append(j)
            filled = labels.fillna(fill).to_numpy(str)[:, None]
            enc = OneHotEncoder(handle_unknown="ignore").fit(filled)
            self.categories_.append([str(v) for v in enc.categories_[0]])
        return self

    def transform(self, df, path="<data>") -> np.ndarray:
        """float64 matrix of shape (n_rows, n_outputs) for rows of a table with these columns."""
        import pandas as pd

        from gradstep.data.tabular import check_columns, line_of

        check_columns(df, [c.name for c in self.columns_], path, "feature column")
        if self.missing != "impute":
            self.check_complete(df, path)
        num = self._numeric_block(df, path)
        parts = []
        if num.shape[1]:
            miss = np.isnan(num)
            np.copyto(num, np.broadcast_to(self.num_fill_, num.shape), where=miss)
            with np.errstate(over="ignore", invalid="ignore"):  # in place: big tables
                num -= self.mean_
                num /= self.scale_
            bad = ~(np.abs(num) <= FAR)  # NaN/inf too
            if bad.any():
                i, j = map(int, np.argwhere(bad)[0])
                name = self._numeric_name(j)
                raise InputError(
                    f"{path} {line_of(df, i)}, column '{name}': value {df[name].iloc[i]} is "
                    "too far from the training values (over 1e12 standard deviations)"
                )
            parts += [num, miss[:, self.num_indicator_].astype(np.float64)]
        blocks = self._category_block(df)
        missing = [labels.isna().to_numpy() for labels in blocks]
        for labels, levels, fill in zip(blocks, self.categories_, self.cat_fill_):
            codes = pd.Index(levels).get_indexer(labels.fillna(fill))  # -1: never seen
            onehot = np.zeros((len(codes), len(levels)))
            seen = np.flatnonzero(codes >= 0)
            onehot[seen, codes[seen]] = 1.0
            parts.append(onehot)
        if blocks:
            parts.append(
                np.column_stack(
                    [missing[j] for j in self.cat_indicator_] or [np.zeros((len(df), 0))]
                ).astype(np.float64)
            )
        parts = [p for p in parts if p.shape[1]]
        return parts[0] if len(parts) == 1 else np.column_stack(parts)  # no copy if one block

    def _numeric_name(self, j: int) -> str:
        k = 0
        for c in self.columns_:
            width = 4 if c.kind == "date" else (0 if c.kind == "categorical" else 1)
            if j < k + width:
                return c.name
            k += width
        return "?"

    @property
    def n_outputs(self) -> int:
        n = len(self.num_fill_) + len(self.num_indicator_)
        return n + sum(map(len, self.categories_)) + len(self.cat_indicator_)

    @property
    def used(self) -> list[str]:
        return [c.name for c in self.columns_]

    # --- reporting --------------------------------------------------------------------------------
    def _skipped_text(self) -> str:
        return "; ".join(f"{c.name}: {c.why}" for c in self.skipped_) or "none"

    def describe(self) -> list[str]:
        """One line per column: its kind, how it is encoded, what was done to missing cells."""
        lines, k, cat_j = [], 0, 0
        for c in self.columns_:
            n_miss = self.missing_counts_.get(c.name, 0)
            if c.kind == "categorical":
                what = f"categorical, one-hot over {len(self.categories_[cat_j])} levels"
                fill = self.cat_fill_[cat_j]
                cat_j += 1
            else:
                width = 4 if c.kind == "date" else 1
                what = {"numeric": c.why, "boolean": "boolean -> 0/1", "date": c.why}[c.kind]
                fill = ", ".join(f"{v:.6g}" for v in self.num_fill_[k : k + width])
                k += width
            if n_miss and self.missing == "impute":
                stat = "most frequent" if c.kind == "categorical" else "median"
                what += f"; {n_miss} missing -> {stat} ({fill}) + missing indicator"
            elif n_miss:
                what += f"; {n_miss} missing rows dropped"
            lines.append(f"  used     {c.name}: {what}")
        for c in self.skipped_:
            lines.append(f"  skipped  {c.name}: {c.why}")
        return lines

    # --- saving -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "missing": self.missing,
            "sep": self.sep,
            "decimal": self.decimal,
            "columns": [
                {"name": c.name, "kind": c.kind, "why": c.why, "number_format": c.number_format}
                for c in self.columns_
            ],
            "skipped": [{"name": c.name, "why": c.why} for c in self.skipped_],
            "missing_counts": self.missing_counts_,
            "num_fill": np.asarray(self.num_fill_, np.float64),
            "num_indicator": list(self.num_indicator_),
            "mean": np.asarray(self.mean_, np.float64),
            "scale": np.asarray(self.scale_, np.float64),
            "cat_fill": list(self.cat_fill_),
            "cat_indicator": list(self.cat_indicator_),
            "categories": [list(c) for c in self.categories_],
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> TableEncoder:
        enc = cls(state["missing"], state["sep"], state.get("decimal", "."))
        enc.columns_ = [cols.Column(**c) for c in state["columns"]]
        enc.skipped_ = [cols.Column(c["name"], "skip", c["why"]) for c in state["skipped"]]
        enc.missing_counts_ = dict(state["missing_counts"])
        enc.num_fill_ = np.asarray(state["num_fill"], np.float64).reshape(-1)
        enc.num_indicator_ = [int(i) for i in state["num_indicator"]]
        enc.mean_ = np.asarray(state["mean"], np.float64).reshape(-1)
        enc.scale_ = np.asarray(state["scale"], np.float64).reshape(-1)
        enc.cat_fill_ = [str(v) for v in state["cat_fill"]]
        enc.cat_indicator_ = [int(i) for i in state["cat_indicator"]]
        enc.categories_ = [[str(v) for v in c] for c in state["categories"]]
        return enc

    @classmethod
    def from_legacy(cls, features, scaler_state: dict) -> TableEncoder:
        """The encoder of a run folder written before encoders existed (numbers only)."""
        mean = np.asarray(scaler_state["mean"], np.float64).reshape(-1)
        return cls.from_state_dict(
            {
                "missing": "error",
                "sep": ",",
                "columns": [{"name": f, "kind": "numeric", "why": "numbers"} for f in features],
                "skipped": [],
                "missing_counts": {},
                "num_fill": np.zeros_like(mean),
                "num_indicator": [],
                "mean": mean,
                "scale": scaler_state["scale"],
                "cat_fill": [],
                "cat_indicator": [],
                "categories": [],
            }
        )


def _most_frequent(labels) -> str:
    counts = labels.value_counts()
    if counts.empty:
        return ""
    return str(min(counts.index[counts == counts.max()]))


def safe_moments(X: np.ndarray):
    """Column means and standard deviations that stay finite for any finite input: values are
    divided by the column's largest magnitude before squaring. A constant column gets scale 1."""
    big = np.max(np.abs(X), axis=0) if len(X) else np.ones(X.shape[1])
    big = np.where((big > 0) & np.isfinite(big), big, 1.0)
    z = X / big
    mean = z.mean(axis=0) * big
    std = z.std(axis=0) * big
    return mean, np.where(std > 0, std, 1.0)
