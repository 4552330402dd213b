"""What a checkpoint records about the run that made it, so a resume can refuse a different run.

A resume is bit-identical only if it continues the same run: the same model structure, the
same optimizer and hyperparameters, the same data in the same batches. A checkpoint records
each (:func:`describe`), and :func:`check` names the first difference instead of silently
skipping or repeating samples. ``fit(..., resume_weights_only=True)`` is the explicit way to
start a new run from a checkpoint's weights (as PyTorch Lightning's ``load_from_checkpoint``).

Callback state is stored by name (``"EarlyStopping#0"``: the class and its rank among
callbacks of that class), so adding or removing a stateless callback such as the progress bar
(``verbose``) no longer drops the state of the others.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _fingerprint(dataset, n: int) -> str:
    """A cheap hash of up to 8 samples spread over the dataset."""
    h = hashlib.sha256()
    for i in sorted({int(i) for i in np.linspace(0, n - 1, min(n, 8))}):
        for part in np.atleast_1d(dataset[i]) if not isinstance(dataset[i], tuple) else dataset[i]:
            a = np.ascontiguousarray(getattr(part, "data", part))
            h.update(str((a.dtype, a.shape)).encode() + a.tobytes())
    return h.hexdigest()[:16]


def describe(trainer) -> dict:
    """The facts of a run that a resume must find unchanged."""
    loader = trainer._loader
    n = len(loader.dataset)
    opt = trainer.optimizer
    # lr is moved by a scheduler (which keeps the first in initial_lr): compare that instead
    groups = [
        {
            k: v
            for k, v in g.items()
            if k != "params"
            and isinstance(v, (int, float, str, tuple))
            and not (k == "lr" and "initial_lr" in g)
        }
        for g in opt.param_groups
    ]
    return {
        "model": {k: list(np.shape(v)) for k, v in trainer.model.state_dict().items()},
        "optimizer": type(opt).__name__,
        "optimizer_settings": groups,
        "dataset_length": n,
        "data_fingerprint": _fingerprint(loader.dataset, n) if n else "",
        "batch_size": int(loader.batch_size),
        "shuffle": bool(loader.shuffle),
        "drop_last": bool(loader.drop_last),
        "epochs_planned": int(trainer.epochs),
    }


_WHAT = {
    "model": "the model's parameters and their shapes",
    "optimizer": "the optimizer",
    "optimizer_settings": "the optimizer's hyperparameters",
    "dataset_length": "the number of training examples",
    "data_fingerprint": "the training data (a sample of rows)",
    "batch_size": "the batch size",
    "shuffle": "shuffle",
    "drop_last": "drop_last",
}


def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def check(saved: dict | None, now: dict, path) -> None:
    """Raise ValueError naming what differs between the checkpoint's run and this one."""
    if saved is None:
        return  # written before runs were described: nothing to compare
    for key, what in _WHAT.items():
        if key in saved and _plain(saved[key]) != _plain(now[key]):
            a, b = saved[key], now[key]
            if key == "model":
                keys = sorted(set(a) ^ set(b)) or [k for k in a if a[k] != b.get(k)]
                detail = f"first difference at '{keys[0]}'"
            else:
                detail = f"{a!r} in the checkpoint, {b!r} now"
            raise ValueError(
                f"resume_from {path}: this is not the run that wrote it: {what} differ "
                f"({detail}); resume with the same setup, or pass resume_weights_only=True "
                "to start a new run from its weights"
            )


def callback_states(callbacks) -> dict:
    """{"Class#rank": state} for every callback with state."""
    out, seen = {}, {}
    for c in callbacks:
        name = type(c).__name__
        rank = seen[name] = seen.get(name, -1) + 1
        state = c.state_dict()
        if state:
            out[f"{name}#{rank}"] = state
    return out


def load_callback_states(callbacks, saved, path) -> None:
    """Give each callback its saved state; refuse a checkpoint whose stateful callbacks this
    run does not have (their promise, e.g. EarlyStopping's best, would be lost)."""
    if isinstance(saved, list):  # the older layout: by position, stateless ones included
        if len(saved) != len(callbacks):
            raise ValueError(
                f"resume_from {path}: written with {len(saved)} callbacks (older layout), this "
                f"run has {len(callbacks)}; pass the same callbacks and verbose setting"
            )
        for c, state in zip(callbacks, saved):
            c.load_state_dict(state)
        return
    names, seen = {}, {}
    for c in callbacks:
        name = type(c).__name__
        seen[name] = seen.get(name, -1) + 1
        names[f"{name}#{seen[name]}"] = c
    missing = sorted(set(saved) - set(names))
    if missing:
        raise ValueError(
            f"resume_from {path}: the checkpoint holds the state of {missing[0]}, which this "
            "run does not have; pass the same callbacks, or resume_weights_only=True"
        )
    for key, state in saved.items():
        names[key].load_state_dict(state)
