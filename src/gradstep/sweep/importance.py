"""Permutation importance of a trained run (``gradstep features --model RUN``): how much worse
it scores on its own validation rows, the ones it never trained on, when one column is shuffled
(scikit-learn's ``permutation_importance``). The univariate scores are in
:mod:`gradstep.sweep.features`.
"""

from __future__ import annotations

import numpy as np

from gradstep.errors import InputError

__all__ = ["permutation_report", "permutation_scores"]


class _Trained:
    """A trained run in the shape ``permutation_importance`` checks for (an estimator with
    ``fit``); it is never refitted: the importance is of this run's weights."""

    def __init__(self, model, path):
        self.model, self.path = model, path

    def fit(self, X, y=None):
        return self


def _rmse_scorer(est, X, y) -> float:
    # higher is better for a scorer: minus the RMSE, so the drop is the increase in RMSE
    pred = est.model.predict(X, est.path)
    return -float(np.sqrt(np.mean((pred - y) ** 2)))


def _accuracy_scorer(est, X, y) -> float:
    return float(np.mean(est.model.predict_proba(X, est.path).argmax(axis=1) == y))


def permutation_report(run_dir, data_path, n_repeats: int = 5, seed: int = 0, df=None) -> dict:
    """:func:`permutation_scores` with what they were computed on.

    ``df``: the table already read with the run's reading options (saves a second read).

    Returns
    -------
    dict
        ``run``, ``data``, ``task``, ``target``, ``rows`` (validation rows scored),
        ``metric`` ("rmse" or "accuracy"), ``baseline`` (that metric unshuffled),
        ``n_repeats``, ``seed`` and ``scores``, the list :func:`permutation_scores` returns.
    """
    import os

    from sklearn.inspection import permutation_importance

    from gradstep.data.target import class_codes
    from gradstep.train.tabular import TabularModel, read_run_table, select_rows

    if isinstance(n_repeats, bool) or not isinstance(n_repeats, int) or n_repeats < 1:
        raise InputError(
            f"permutation importance: n_repeats must be a positive integer, got {n_repeats!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"permutation importance: seed must be an integer >= 0, got {seed!r}")
    model = TabularModel.load(run_dir)
    cfg = model.config
    refuse = (
        f"{run_dir}: the run has no validation rows (val_fraction {cfg.val_fraction}); "
        "permutation importance scores the rows a run never trained on: retrain with "
        "--val-fraction 0.2"
    )
    if cfg.val_fraction <= 0:
        raise InputError(refuse)
    df = read_run_table(data_path, cfg) if df is None else df
    # the run's own split: same rows kept, same seed, same fraction
    rows = select_rows(df, cfg, data_path)
    if len(rows.val) == 0:
        raise InputError(refuse)
    val = rows.df.iloc[rows.val]
    X = val[model.features].copy()
    if model.task == "classification":
        y = class_codes(
            val,
            cfg.target,
            model.classes,
            model.target_format,
            data_path,
            "; is this the run's data?",
        )
        scorer, metric = _accuracy_scorer, "accuracy"
    else:
        y = np.asarray(rows.y[rows.val], dtype=np.float64)
        scorer, metric = _rmse_scorer, "rmse"
    est = _Trained(model, data_path)
    baseline = scorer(est, X, y)
    result = permutation_importance(
        est, X, y, scoring=scorer, n_repeats=n_repeats, random_state=seed
    )
    scores = [
        {
            "column": name,
            "importance_mean": float(m),
            "importance_sd": float(s),
        }
        for name, m, s in zip(model.features, result.importances_mean, result.importances_std)
    ]
    scores.sort(key=lambda s: (-s["importance_mean"], s["column"]))
    for i, s in enumerate(scores):
        s["rank"] = i + 1
    return {
        "run": os.fspath(run_dir),
        "data": os.fspath(data_path),
        "task": model.task,
        "target": cfg.target,
        "rows": int(len(rows.val)),
        "metric": metric,
        "baseline": abs(baseline),
        "n_repeats": n_repeats,
        "seed": seed,
        "scores": scores,
    }


def permutation_scores(run_dir, data_path, n_repeats: int = 5, seed: int = 0) -> list[dict]:
    """Permutation importance of a trained run's feature columns on its validation rows.

    The validation rows are re-created as the run chose them (the table read with the run's
    options, :func:`gradstep.train.tabular.select_rows` with its seed and ``val_fraction``),
    so they are rows the run never trained on. Each column of those rows is shuffled
    ``n_repeats`` times (scikit-learn's ``permutation_importance``, ``random_state=seed``)
    and the run scored again on its raw columns, encoded as ``predict`` encodes them.

    Parameters
    ----------
    run_dir : str or PathLike
        A run folder from ``gradstep train`` with ``val_fraction`` > 0 (else refused).
    data_path : str or PathLike
        The CSV the run was trained on.
    n_repeats, seed : int
        Shuffles per column, and the seed that draws them.

    Returns
    -------
    list of dict
        One per feature column of the run, by importance descending: ``column``,
        ``importance_mean`` and ``importance_sd`` over the repeats, ``rank``. The importance is
        the increase in RMSE (regression, in the target's units) or the drop in accuracy
        (classification) when the column is shuffled; near 0 or below: the run does not use it.
    """
    return permutation_report(run_dir, data_path, n_repeats, seed)["scores"]
