"""Which columns of a table carry information about its target: the library behind
``gradstep features`` and a sweep's ``features = "top:K"`` option.

Two kinds of score. Univariate scores look at one column at a time against the target:
scikit-learn's F test (``f_regression`` / ``f_classif``: how much of the target's variance a
straight line through that column, or its class means, explains) and mutual information
(``mutual_info_regression`` / ``mutual_info_classif``: any dependence, not only a linear one).
They need no model and are cheap, but they miss columns that only matter together. Permutation
importance asks a trained run instead: how much worse does it score on its validation rows when
one column is shuffled, breaking that column's link to the target and to the other columns?

Columns are encoded exactly as ``gradstep train`` encodes them (:class:`TableEncoder`), so
categories, dates and missing values are scored as the network would see them. Permutation
importance is in :mod:`gradstep.sweep.importance`.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from gradstep.errors import InputError

__all__ = [
    "parse_features_option",
    "top_features",
    "univariate_report",
    "univariate_scores",
]

MI_SEED = 0  # mutual information's k-nearest-neighbour estimate jitters ties with random noise
# F of a column that separates the target perfectly: scikit-learn's f_regression(force_finite)
# value, used for f_classif too so that every score is a finite number (and valid JSON)
F_MAX = float(np.finfo(np.float64).max)
_TOP = re.compile(r"top:\s*([0-9]+)", re.IGNORECASE)


# --- univariate scores ------------------------------------------------------------------------
def _encoded_owners(encoder) -> tuple[list[str], np.ndarray]:
    """For each column of ``encoder.transform``'s matrix: the table column it came from, and
    whether it is a 0/1 indicator (one-hot level, missing flag, boolean), which mutual
    information should count as discrete rather than measure by nearest neighbours."""
    numeric = [c for c in encoder.columns_ if c.kind != "categorical"]
    categorical = [c for c in encoder.columns_ if c.kind == "categorical"]
    owners, discrete = [], []
    for c in numeric:  # the numeric block: one column each, four parts for a date
        width = 4 if c.kind == "date" else 1
        owners += [c.name] * width
        discrete += [c.kind == "boolean"] * width
    block = list(owners)
    owners += [block[i] for i in encoder.num_indicator_]
    discrete += [True] * len(encoder.num_indicator_)
    for c, levels in zip(categorical, encoder.categories_):
        owners += [c.name] * len(levels)
        discrete += [True] * len(levels)
    owners += [categorical[j].name for j in encoder.cat_indicator_]
    discrete += [True] * len(encoder.cat_indicator_)
    return owners, np.asarray(discrete, dtype=bool)


def _row_positions(rows, present: np.ndarray, path) -> np.ndarray:
    """The positions in ``rows`` whose target is present (all such rows when None)."""
    if rows is None:
        return np.flatnonzero(present)
    rows = np.asarray(rows)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise InputError(f"{path}: rows must be a list of row positions (integers)")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= len(present)):
        raise InputError(f"{path}: row position out of range 0..{len(present) - 1}")
    return rows[present[rows]]


def _f_scores(X: np.ndarray, y: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.feature_selection import f_classif, f_regression

    if task == "regression":
        return f_regression(X, y)  # force_finite: a perfect line gives F_MAX, p 0
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # constant columns never get here; f_classif still says "constant" of a column that is
        # constant within each class (msw 0) when another has equal class means (msb 0)
        warnings.filterwarnings("ignore", "Features .* are constant", UserWarning)
        f, p = f_classif(X, y)
    perfect = np.isinf(f)  # constant within each class, different between: separates them
    f[perfect], p[perfect] = F_MAX, 0.0
    return f, p


def _mutual_information(X, y, task: str, discrete: np.ndarray) -> np.ndarray:
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    mi = mutual_info_regression if task == "regression" else mutual_info_classif
    return mi(X, y, discrete_features=discrete, random_state=MI_SEED)


def univariate_report(
    df, target: str, path, task: str = "auto", rows=None, *, features=None, mutual_info=True
) -> dict:
    """:func:`univariate_scores` with what they were computed on.

    ``features``: the columns to score (default: every column but the target).
    ``mutual_info=False`` leaves ``mi`` None: the F test alone is what ``top:K`` ranks by, and
    the nearest-neighbour estimate dominates the cost (20,000 rows x 20 numeric columns, on a
    2-core machine: 2.7 s with it, 0.1 s without).

    Returns
    -------
    dict
        ``task``, ``target``, ``rows`` (how many rows were scored), ``columns`` (how many were
        scored), ``skipped`` (how many were not) and ``scores``, the list
        :func:`univariate_scores` returns.
    """
    from gradstep.data.encoder import TableEncoder
    from gradstep.data.tabular import check_columns
    from gradstep.data.target import infer_target

    check_columns(df, [target], path)
    features = [c for c in df.columns if c != target] if features is None else list(features)
    check_columns(df, features, path, "feature column")
    if target in features:
        raise InputError(f"{path}: the target '{target}' is also listed as a feature")
    if not features:
        raise InputError(f"{path}: no feature columns besides the target '{target}'")
    sep, decimal = df.attrs.get("sep", ","), df.attrs.get("decimal", ".")
    found = infer_target(df[target], target, path, task, sep, decimal)
    keep = _row_positions(rows, found.present, path)
    y = found.values[keep]
    n_classes = len(np.unique(y)) if found.task == "classification" else 1
    # the fewest rows where every score is defined: F needs n > classes (n > 2 for a line),
    # mutual information's 3 nearest neighbours need 4 rows
    need = max(4, n_classes + 1)
    if len(keep) < need:
        raise InputError(
            f"{path}: {len(keep)} rows with a target '{target}'; univariate scores need {need}"
        )
    if found.task == "classification" and n_classes < 2:
        raise InputError(f"{path}, column '{target}': one class in the rows scored; need two")
    if found.task == "regression" and np.ptp(y) == 0:
        raise InputError(f"{path}, column '{target}': the same value in every row scored")
    part = df.iloc[keep]
    # kinds from every row with a target, as `train` decides them; statistics from these rows
    schema = df.iloc[np.flatnonzero(found.present)]
    encoder = TableEncoder("impute", sep, decimal).fit(part, features, path, schema=schema)
    X = encoder.transform(part, path)
    owners, discrete = _encoded_owners(encoder)
    assert len(owners) == X.shape[1], "encoder layout changed: update _encoded_owners"
    # a part with one value in these rows says nothing: F 0, p 1, no information; scikit-learn
    # would divide by its zero variance
    varies = np.ptp(X, axis=0) > 0
    f = np.zeros(X.shape[1])
    p = np.ones(X.shape[1])
    mi = np.zeros(X.shape[1])
    if varies.any():
        f[varies], p[varies] = _f_scores(X[:, varies], y, found.task)
        if mutual_info:
            mi[varies] = _mutual_information(X[:, varies], y, found.task, discrete[varies])
    owners = np.asarray(owners, dtype=object)
    scored = []
    for c in encoder.columns_:
        mine = owners == c.name
        best = int(np.flatnonzero(mine)[np.argmax(f[mine])])  # max F is min p: same d.o.f.
        scored.append(
            {
                "column": c.name,
                "kind": c.kind,
                "f": float(f[best]),
                "p": float(p[best]),
                "mi": float(mi[mine].max()) if mutual_info else None,
                "parts": int(mine.sum()),
                "rank": None,
                "skipped": None,
            }
        )
    scored.sort(key=lambda s: (-s["f"], s["column"]))
    for i, s in enumerate(scored):
        s["rank"] = i + 1
    skipped = [
        {
            "column": c.name,
            "kind": "skip",
            "f": None,
            "p": None,
            "mi": None,
            "parts": 0,
            "rank": None,
            "skipped": c.why,
        }
        for c in encoder.skipped_
    ]
    return {
        "task": found.task,
        "target": target,
        "rows": int(len(keep)),
        "columns": len(scored),
        "skipped": len(skipped),
        "scores": scored + skipped,
    }


def univariate_scores(df, target: str, path, task: str = "auto", rows=None) -> list[dict]:
    """One-column-at-a-time scores of every feature column of ``df`` against ``target``.

    Columns are encoded by the trainer's own :class:`~gradstep.data.encoder.TableEncoder`,
    fitted on the scored rows (missing values imputed, with a missing indicator; categories
    one-hot; dates as year, month, day of year and weekday). A column that becomes several
    encoded columns gets the **maximum** over its parts: the F of its best part (and that
    part's p-value, the smallest, since all parts share the degrees of freedom) and the largest
    mutual information. A part with one value in the scored rows gets F 0, p 1 and MI 0.
    F is scikit-learn's ``f_regression`` (regression) or ``f_classif`` (classification); a
    part that separates the classes perfectly gets F = float max and p 0, as ``f_regression``
    gives a perfect line. Mutual information is ``mutual_info_regression`` /
    ``mutual_info_classif`` with ``random_state=0`` (deterministic), one-hot levels, missing
    indicators and booleans counted as discrete.

    Parameters
    ----------
    df : DataFrame of shape (n_rows, n_columns)
        The table, as :func:`gradstep.train.tabular.read_run_table` reads it.
    target : str
        The target column; every other column is scored.
    path : str or PathLike
        The file ``df`` came from (only named in messages).
    task : {"auto", "regression", "classification"}
        As ``gradstep train --task``.
    rows : array of int, optional
        Positions in ``df`` of the rows to score (a sweep passes a trial's training rows, so
        the ranking never sees its validation rows). None: every row with a target. Rows
        whose target is missing are left out either way.

    Returns
    -------
    list of dict
        One per scored column, by F descending (ties by name): ``column``, ``kind``, ``f``,
        ``p``, ``mi``, ``parts`` (encoded columns), ``rank`` (1 = best), ``skipped`` (None).
        Then one per column the encoder skips (identifiers, free text, a column with one value
        in every row), not scored: ``f``, ``p``, ``mi`` and ``rank`` None, ``skipped`` its
        reason.

    Examples
    --------
    >>> from gradstep.data.bundled import load_frame
    >>> scores = univariate_scores(load_frame("diabetes"), "target", "diabetes.csv")
    >>> [(s["rank"], s["column"]) for s in scores[:3]]
    [(1, 'bmi'), (2, 's5'), (3, 'bp')]
    """
    return univariate_report(df, target, path, task, rows)["scores"]


def top_features(df, cfg, path, k: int, rows) -> list[str]:
    """The ``k`` columns with the largest F score on ``rows`` (all of them if ``k`` exceeds
    their number), best first: what a sweep's ``features = "top:K"`` trains on.

    Parameters
    ----------
    df : DataFrame
        The table (a run's kept rows, :attr:`Rows.df`).
    cfg : TrainConfig
        Gives the target, the task and the candidates (``cfg.features``; empty: every column
        but the target).
    path : str or PathLike
        The file ``df`` came from (only named in messages).
    k : int
        How many columns, at least 1.
    rows : array of int or None
        Positions in ``df`` of the rows that rank them (a trial's training rows).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"features: top:{k} needs a positive integer")
    candidates = list(cfg.features) or None
    report = univariate_report(
        df, cfg.target, path, cfg.task, rows, features=candidates, mutual_info=False
    )
    ranked = [s["column"] for s in report["scores"] if s["rank"] is not None]
    return ranked[: int(k)]


def _known(columns: list) -> str:
    names = [str(c) for c in columns]
    if len(names) > 30:  # a 784-pixel table would drown the message
        return ", ".join(names[:30]) + f", ... ({len(names)} in all)"
    return ", ".join(names)


def parse_features_option(value, columns) -> tuple[str, int | list[str] | None]:
    """Read a sweep's ``features`` value: ``"top:K"``, ``"all"`` or column names.

    Parameters
    ----------
    value : str or list of str
        ``"top:K"`` (K a positive integer: the K best columns by F score on each trial's
        training rows), ``"all"`` (every column but the target), or a list of column names (a
        string of comma-separated names, as ``--features a,b``, is such a list).
    columns : list of str
        The columns that may be named (the table's, less the target).

    Returns
    -------
    ("top", K) or ("all", None) or ("list", [names])
    """
    columns = list(columns)
    forms = "'all', 'top:K' (K a positive integer) or a list of column names"
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "all":
            return ("all", None)
        if text.lower().startswith("top:"):
            m = _TOP.fullmatch(text)
            if not m or int(m.group(1)) < 1:
                raise InputError(
                    f"features: '{value}': top:K needs a positive integer K, as top:5 "
                    f"(columns: {_known(columns)})"
                )
            return ("top", int(m.group(1)))
        names = [v.strip() for v in text.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        names = list(value)
    else:
        raise InputError(f"features: {value!r} is not {forms} (columns: {_known(columns)})")
    if not names:
        raise InputError(
            f"features: {value!r} names no column; give {forms} (columns: {_known(columns)})"
        )
    for name in names:
        if not isinstance(name, str):
            raise InputError(
                f"features: {name!r} in {value!r} is not a column name (columns: {_known(columns)})"
            )
        if name not in columns:
            raise InputError(
                f"features: no column '{name}' in {value!r} (columns: {_known(columns)})"
            )
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(f"features: column '{name}' is listed twice in {value!r}")
        seen.add(name)
    return ("list", names)
