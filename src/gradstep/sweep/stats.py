"""How a sweep's configurations compare once seed noise is counted.

A sweep trains every configuration on the same seeds, and a seed fixes the split and the
initial weights. Two configurations' scores on one seed therefore share that seed's luck, so the
honest comparison is *paired*: the difference on each seed both finished, its mean, and a 95%
confidence interval from Student's t. An interval that contains 0 means the data cannot tell the
two apart: the gap is within seed noise, however large the difference of means looks.

The input is the sweep's trial rows, one dict per trial::

    {"trial_id": int, "config_id": int, "config": {option: value}, "seed": int,
     "status": "ok" | "failed" | "diverged", "metrics": {name: float}, "message": str, ...}
"""

from __future__ import annotations

import math

from gradstep.errors import InputError

MODES = ("min", "max")
VERDICTS = (
    "within seed noise",
    "better beyond seed noise",
    "worse beyond seed noise",
    "too few seeds to tell",
)
# the last word of a metric's name decides its direction: val_rmse, train_loss, macro_f1, roc_auc
_LOWER = {"rmse", "mse", "mae", "loss", "error", "nll", "mape", "deviance", "huber"}
_HIGHER = {"r2", "accuracy", "acc", "f1", "auc", "precision", "recall", "score"}


def metric_mode(metric: str) -> str:
    """Whether a smaller or a larger ``metric`` is better: ``"min"`` or ``"max"``.

    Known by the last word of the name (``val_rmse`` and ``loss`` are minimised, ``r2``,
    ``accuracy``, ``macro_f1``, ``roc_auc`` and ``val_score`` maximised).

    Raises
    ------
    InputError
        For a name it does not know: the caller must say the mode.

    Examples
    --------
    >>> metric_mode("val_rmse"), metric_mode("accuracy")
    ('min', 'max')
    """
    words = metric.lower().replace("-", "_").replace(".", "_").replace("/", "_").split("_")
    last = words[-1] if words else ""
    if last in _LOWER:
        return "min"
    if last in _HIGHER:
        return "max"
    raise InputError(
        f"metric '{metric}': cannot tell whether smaller or larger is better; give the mode "
        "('min' or 'max')"
    )


def check_mode(mode: str) -> str:
    """``mode`` itself, once checked to be "min" or "max" (an InputError otherwise)."""
    if mode not in MODES:
        raise InputError(f"mode '{mode}': must be 'min' or 'max'")
    return mode


def metric_value(row: dict, metric: str) -> float | None:
    """The row's metric when the trial finished with a finite value; None otherwise."""
    if row.get("status") != "ok":
        return None
    value = (row.get("metrics") or {}).get(metric)
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _by_config(rows: list[dict], metric: str) -> dict[int, dict]:
    """Rows grouped by config_id (in order of first appearance), after checking them."""
    groups: dict[int, dict] = {}
    seen: set[tuple[int, int]] = set()
    for row in rows:
        cid, seed = row["config_id"], row["seed"]
        if (cid, seed) in seen:
            raise InputError(f"trial rows: config {cid} seed {seed} appears more than once")
        seen.add((cid, seed))
        group = groups.setdefault(cid, {"config": row["config"], "values": {}, "n_failed": 0})
        if row["config"] != group["config"]:
            raise InputError(f"trial rows: config {cid} has two different configs")
        value = metric_value(row, metric)
        if value is None:
            group["n_failed"] += 1  # failed, diverged, or "ok" without a finite metric
        else:
            group["values"][seed] = value
    if rows and not any(g["values"] for g in groups.values()):
        names = sorted({m for r in rows if r.get("status") == "ok" for m in r.get("metrics") or {}})
        if names and metric not in names:
            raise InputError(f"metric '{metric}': not in the trials' metrics ({', '.join(names)})")
    return groups


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n == 1:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def summarize(rows: list[dict], metric: str, mode: str) -> list[dict]:
    """Each configuration's score over its seeds, best first.

    Parameters
    ----------
    rows : list of dict
        The sweep's trial rows (see the module's docstring).
    metric : str
        The metric to rank by, a key of the rows' ``metrics``.
    mode : {"min", "max"}
        Whether a smaller or a larger value is better (see :func:`metric_mode`).

    Returns
    -------
    list of dict
        One per configuration: ``config_id``, ``config``, ``n_ok``, ``n_failed`` (failed,
        diverged, or without a finite value of ``metric``), ``mean``, ``sd`` (ddof=1; None with
        fewer than two values), ``min``, ``max`` and ``values`` ({seed: value}, by seed). Sorted
        by mean, best first (ties by config_id); configurations with no finished trial last,
        their statistics None.
    """
    check_mode(mode)
    out = []
    for cid, g in _by_config(rows, metric).items():
        values = dict(sorted(g["values"].items()))
        mean, sd = _mean_sd(list(values.values()))
        out.append(
            {
                "config_id": cid,
                "config": g["config"],
                "n_ok": len(values),
                "n_failed": g["n_failed"],
                "mean": mean,
                "sd": sd,
                "min": min(values.values()) if values else None,
                "max": max(values.values()) if values else None,
                "values": values,
            }
        )
    sign = 1.0 if mode == "min" else -1.0
    out.sort(key=lambda s: (s["mean"] is None, sign * (s["mean"] or 0.0), s["config_id"]))
    return out


def _t975(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def compare(rows: list[dict], metric: str, mode: str, best: int | None = None) -> list[dict]:
    """The best configuration against each other one, paired over the seeds both finished.

    Parameters
    ----------
    rows : list of dict
        The sweep's trial rows (see the module's docstring).
    metric : str
        The metric compared, a key of the rows' ``metrics``.
    mode : {"min", "max"}
        Whether a smaller or a larger value is better.
    best : int, optional
        The config_id to compare the others with; by default the best by mean.

    Returns
    -------
    list of dict
        One per other configuration, in :func:`summarize`'s order: ``config_id``, ``config``,
        ``best_id``, ``seeds`` (the paired seeds), ``n_pairs``, ``diff`` (mean of other − best,
        in the metric's units), ``diff_sd`` (ddof=1), ``ci_low`` and ``ci_high`` (the 95%
        interval of the mean difference, ``diff ± t(0.975, n−1) · diff_sd / √n``), ``verdict``
        (one of :data:`VERDICTS`, said of the best: "better beyond seed noise" when the best is
        better and the interval excludes 0), ``sentence`` (the comparison in words) and
        ``best_sd`` (the best configuration's spread over its seeds: the seed noise). Statistics
        that need more pairs are None. Empty when no configuration finished a trial.

    Raises
    ------
    InputError
        For a ``best`` that is not a config_id of the rows, or that finished no trial.
    """
    summary = summarize(rows, metric, mode)
    ranked = {s["config_id"]: s for s in summary}
    if best is None:
        if not summary or summary[0]["mean"] is None:
            return []
        best = summary[0]["config_id"]
    elif best not in ranked:
        raise InputError(f"best: config {best} is not in the trial rows")
    elif ranked[best]["mean"] is None:
        raise InputError(f"best: config {best} finished no trial with a value of '{metric}'")
    top = ranked[best]
    out = []
    for s in summary:
        if s["config_id"] == best:
            continue
        seeds = [seed for seed in top["values"] if seed in s["values"]]
        diffs = [s["values"][seed] - top["values"][seed] for seed in seeds]
        result = {
            "config_id": s["config_id"],
            "config": s["config"],
            "best_id": best,
            "seeds": seeds,
            "n_pairs": len(seeds),
            "diff": None,
            "diff_sd": None,
            "ci_low": None,
            "ci_high": None,
            "verdict": VERDICTS[3],
            "best_sd": top["sd"],
        }
        diff, sd = _mean_sd(diffs)
        result["diff"], result["diff_sd"] = diff, sd
        if len(diffs) >= 2:
            half = _t975(len(diffs) - 1) * sd / math.sqrt(len(diffs))
            result["ci_low"], result["ci_high"] = diff - half, diff + half
            result["verdict"] = _verdict(result["ci_low"], result["ci_high"], mode)
        result["sentence"] = _sentence(result, metric, mode)
        out.append(result)
    return out


def _verdict(low: float, high: float, mode: str) -> str:
    if low <= 0.0 <= high:
        return VERDICTS[0]
    # other − best > 0 everywhere in the interval: the other scores higher
    other_higher = low > 0.0
    best_better = other_higher if mode == "min" else not other_higher
    return VERDICTS[1] if best_better else VERDICTS[2]


def _num(x: float) -> str:
    return f"{x:.3g}"


def _sentence(c: dict, metric: str, mode: str) -> str:
    """One comparison in words, e.g. "Config 3 scores val_rmse 0.052 higher than config 1 ..."."""
    other, best = f"config {c['config_id']}", f"config {c['best_id']}"
    n = c["n_pairs"]
    if n == 0:
        return f"{other} finished no seed that {best} finished: nothing to compare."
    word = "higher" if c["diff"] > 0 else "lower"
    gap = f"{other} scores {metric} {_num(abs(c['diff']))} {word} than {best}"
    if c["diff"] == 0:
        gap = f"{other} scores the same {metric} as {best}"
    if n == 1:
        return f"{gap} on the one seed both finished: too few seeds to tell."
    ci = f"95% CI of other − best {_num(c['ci_low'])} to {_num(c['ci_high'])}, {n} paired seeds"
    direction = "lower" if mode == "min" else "higher"
    if c["verdict"] == VERDICTS[0]:
        tail = "within seed noise: the interval contains 0, so these seeds cannot tell them apart"
    elif c["verdict"] == VERDICTS[1]:
        tail = f"{best} is better beyond seed noise ({direction} is better)"
    else:
        tail = f"{best} is worse beyond seed noise: {other} is better on these seeds"
    return f"{gap} on average ({ci}): {tail}."
