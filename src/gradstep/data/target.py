"""The target column: which task it asks for, and its values as class indices or numbers.

Task inference follows scikit-learn's ``type_of_target``: a target of strings or booleans is a
classification; numbers that are all integers are ``"binary"``/``"multiclass"`` to scikit-learn,
and gradstep takes them as classes when there are at most :data:`MAX_CLASSES` distinct values
and at most half as many as rows (wine's 0/1/2, digits' 0-9), so counts or prices with hundreds
of integer values, or a handful of rows that are all different, stay a regression
(scikit-learn would call diabetes' 214 integer targets "multiclass"). ``--task`` overrides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradstep.data import columns as cols
from gradstep.errors import InputError

MAX_CLASSES = 20


@dataclass
class Target:
    task: str  # regression | classification
    why: str
    present: np.ndarray  # bool (n,): rows whose target is not missing
    values: np.ndarray  # float64 (n,) for regression, int64 class index for classification
    classes: list | None = None
    number_format: str = "plain"


def _label(v):
    """A class label as JSON keeps it: int for integral numbers, else float, str, or bool."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return int(v) if float(v).is_integer() else float(v)
    return str(v)


def _numbers(col, name, path, sep, decimal="."):
    spec = cols.infer(col, name, sep, decimal)
    if spec.kind != "numeric":
        return None, spec
    v = cols.to_numbers(col, spec.number_format)
    cols.check_known(col, v, name, path, "a number")
    return v, spec


def infer_target(
    col, name: str, path, task: str = "auto", sep: str = ",", decimal: str = "."
) -> Target:
    """Decide the task for target column ``name`` and encode its values."""
    from sklearn.utils.multiclass import type_of_target

    present = col.notna().to_numpy()
    if not present.any():
        raise InputError(f"{path}, column '{name}': every target cell is missing")
    spec = cols.infer(col, name, sep, decimal)
    if spec.kind == "date" and task == "auto":
        raise InputError(
            f"{path}, column '{name}': holds dates; a date is not a target gradstep can learn "
            "(pick another --target, or --task classification to take them as labels)"
        )
    try:
        numbers, spec = _numbers(col, name, path, sep, decimal)
    except InputError:
        if task != "classification":
            raise
        numbers = None  # --task classification: mostly numbers, some words: all labels as text
    if task == "regression":
        if numbers is None:
            raise InputError(
                f"{path}, column '{name}': --task regression needs numbers; the column holds "
                f"{spec.why}"
            )
        return Target("regression", "as --task says", present, numbers, None, spec.number_format)
    if numbers is not None:
        kind = type_of_target(numbers[present])
        distinct = np.unique(numbers[present])
        few = len(distinct) <= MAX_CLASSES and 2 * len(distinct) <= int(present.sum())
        if task == "auto" and (kind == "continuous" or not few):
            why = (
                f"{len(distinct)} distinct integers in {int(present.sum())} rows (scikit-learn's "
                f"type_of_target: '{kind}'; classes need at most {MAX_CLASSES} values, each "
                "seen twice on average)"
                if kind != "continuous"
                else "numbers that are not all integers (type_of_target: 'continuous')"
            )
            return Target("regression", why, present, numbers, None, spec.number_format)
        classes = [_label(v) for v in distinct]
        index = np.searchsorted(distinct, np.where(present, numbers, distinct[0]))
        why = (
            "as --task says"
            if task == "classification"
            else f"{len(distinct)} distinct integer values (type_of_target: '{kind}')"
        )
        return Target("classification", why, present, index, classes, spec.number_format)
    labels = cols.labels(col)[present]
    distinct = sorted(labels.unique().tolist(), key=lambda v: (str(type(v)), v))
    if spec.kind == "skip" and len(distinct) > MAX_CLASSES and task == "auto":
        raise InputError(
            f"{path}, column '{name}': {len(distinct)} distinct text values, every one "
            "different: not a class label; pick another --target"
        )
    lookup = {v: i for i, v in enumerate(distinct)}
    index = np.zeros(len(col), np.int64)
    index[present] = [lookup[v] for v in labels]
    kind = "true/false values" if spec.kind == "boolean" else "text labels"
    why = "as --task says" if task == "classification" else f"{len(distinct)} {kind}"
    return Target("classification", why, present, index, [_label(v) for v in distinct])


def match_labels(col, classes: list, number_format: str = "plain") -> np.ndarray:
    """Index of each cell's class in ``classes`` (compared by value: '1.0' equals 1, 'TRUE'
    equals 'true'), -1 where the cell is missing or not one of the classes."""
    import pandas as pd

    numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes)
    if numeric:
        cells = cols.to_numbers(col, number_format)
        found = pd.Index([float(c) for c in classes]).get_indexer(cells)
        found[~np.isfinite(cells)] = -1
        return found
    text = cols.labels(col)
    found = pd.Index([str(c) for c in classes]).get_indexer(text)
    lower = pd.Index([str(c).lower() for c in classes])
    if (found < 0).any() and lower.is_unique:  # true/True/TRUE: one label, as people write it
        again = lower.get_indexer(text.str.lower())
        found = np.where(found < 0, again, found)
    found[text.isna().to_numpy()] = -1
    return found


def class_codes(df, target: str, classes: list, number_format: str, path, hint: str = ""):
    """Each row's class index in ``classes`` (int64), or one line naming the file, line and
    column of the first cell that is not one of them (a run's data must use its classes)."""
    from gradstep.data.tabular import line_of, short
    from gradstep.errors import InputError

    y = match_labels(df[target], classes, number_format)
    if (y < 0).any():
        i = int(np.flatnonzero(y < 0)[0])
        raise InputError(
            f"{path} {line_of(df, i)}, column '{target}': '{short(df[target].iloc[i])}' is not "
            f"one of the run's classes ({', '.join(map(str, classes))}){hint}"
        )
    return y.astype(np.int64)
