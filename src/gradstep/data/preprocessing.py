"""Feature scaling and time-series windows."""

from __future__ import annotations

import numpy as np


class StandardScaler:
    """(x - mean) / std per feature; the statistics are saved with a model (``state_dict``).

    A constant feature gets scale 1 (not a division by zero).
    """

    def __init__(self):
        self.mean_ = None
        self.scale_ = None

    def fit(self, X) -> StandardScaler:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"StandardScaler.fit needs a non-empty 2-d array, got {X.shape}")
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def _check(self, X):
        if self.mean_ is None:
            raise RuntimeError("StandardScaler is not fitted yet; call fit(X) first")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.mean_.shape[0]:
            raise ValueError(
                f"StandardScaler was fitted on {self.mean_.shape[0]} features, got shape {X.shape}"
            )
        return X

    def transform(self, X) -> np.ndarray:
        X = self._check(X)
        return ((X - self.mean_) / self.scale_).astype(X.dtype if X.dtype.kind == "f" else float)

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, X) -> np.ndarray:
        X = self._check(X)
        return X * self.scale_ + self.mean_

    def state_dict(self) -> dict:
        return {"mean": np.array(self.mean_), "scale": np.array(self.scale_)}

    def load_state_dict(self, state: dict) -> StandardScaler:
        self.mean_ = np.asarray(state["mean"], dtype=np.float64)
        self.scale_ = np.asarray(state["scale"], dtype=np.float64)
        return self


def sliding_windows(series, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(previous k values -> next value) pairs from a 1-d series.

    Returns X of shape (len(series) - k, k), row t holding series[t : t + k], and y of shape
    (len(series) - k,) holding series[t + k]: the lecture's "views of the previous k days".
    """
    s = np.asarray(series)
    if s.ndim != 1:
        raise ValueError(f"sliding_windows needs a 1-d series, got shape {s.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1 or k >= len(s):
        raise ValueError(f"sliding_windows: k must be in [1, {len(s) - 1}], got {k}")
    X = np.lib.stride_tricks.sliding_window_view(s, k)[:-1].copy()
    return X, s[k:].copy()
