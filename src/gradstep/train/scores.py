"""The scores ``gradstep evaluate`` reports, computed by scikit-learn's metrics."""

from __future__ import annotations

import numpy as np


def regression_scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    """MAE, RMSE and R² (0 for a constant truth, where scikit-learn warns).

    Computed on values divided by their largest magnitude and scaled back, so targets near
    1e300 (whose squares overflow) still give finite scores.
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    n = len(truth)
    scale = float(max(np.max(np.abs(truth), initial=0.0), np.max(np.abs(pred), initial=0.0)))
    scale = scale if 0 < scale < np.inf else 1.0
    t, p = truth / scale, pred / scale
    return {
        "mae": float(mean_absolute_error(t, p)) * scale,
        "rmse": float(np.sqrt(mean_squared_error(t, p))) * scale,
        "r2": float(r2_score(t, p)) if n > 1 and np.ptp(t) > 0 else 0.0,
        "n": n,
    }


def classification_scores(pred: np.ndarray, truth: np.ndarray, classes: list) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/support and the confusion matrix.

    ``pred`` and ``truth`` are class indices; a truth of -1 (a label the model never saw)
    counts as wrong and is reported as ``unknown_labels``.
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    known = truth >= 0
    labels = list(range(len(classes)))
    p, r, _, support = precision_recall_fscore_support(
        truth[known], pred[known], labels=labels, zero_division=0
    )
    # macro-F1 over the classes present in the truth or the predictions (scikit-learn's own
    # default: an absent class is no evidence); a label the model never saw is a class of its
    # own that was never predicted, so it lowers F1 as it lowers accuracy
    present = sorted(set(truth.tolist()) | set(pred.tolist()))
    return {
        "accuracy": float(np.mean(pred == truth)) if len(truth) else 0.0,
        "macro_f1": float(f1_score(truth, pred, labels=present, average="macro", zero_division=0)),
        "per_class": {
            str(c): {"precision": float(p[i]), "recall": float(r[i]), "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(truth[known], pred[known], labels=labels).tolist(),
        "classes": list(classes),
        "unknown_labels": int((~known).sum()),
        "n": len(truth),
    }


def plot_confusion(scores: dict, out) -> None:
    """The confusion matrix as a figure (rows: true class, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(scores["confusion_matrix"])
    names = [str(c) for c in scores["classes"]]
    size = min(2 + 0.5 * len(names), 12)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=f"accuracy {scores['accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(out, dpi=90, format="png")
    plt.close(fig)
