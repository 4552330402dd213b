"""The lab's models as checkpoints: what the lab's export buttons write, and the way back to a
module. Every lab model is a multilayer perceptron (``nn.mlp``), so the architecture is four
fields and the file needs no code to load."""

from __future__ import annotations

import numpy as np

import gradstep as gs
from gradstep import nn


def lab_checkpoint(model, activation: str, panel: str, settings: dict) -> dict:
    """The checkpoint of ``model`` (an ``nn.mlp``-shaped Sequential) from a lab ``panel`` made
    with ``settings`` (what the page's address holds)."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return {
        "model": model.state_dict(),
        "architecture": {
            "in_features": linears[0].in_features,
            "hidden": [m.out_features for m in linears[:-1]],
            "out_features": linears[-1].out_features,
            "activation": activation,
        },
        "panel": panel,
        "settings": settings,
    }


def load_model(path_or_checkpoint):
    """The module saved by a lab export button (a path, or the dict ``gradstep.load`` returns).

    >>> from gradstep import nn
    >>> model = load_model(lab_checkpoint(nn.mlp(2, [3], 1), "relu", "models", {}))
    >>> [tuple(p.shape) for p in model.parameters()]
    [(3, 2), (3,), (1, 3), (1,)]
    """
    ckpt = path_or_checkpoint
    if not isinstance(ckpt, dict):
        ckpt = gs.load(ckpt)
    arch = ckpt["architecture"]
    state = ckpt["model"]
    dtype = np.asarray(next(iter(state.values()))).dtype if state else np.float32
    with gs.default_dtype(dtype):
        model = nn.mlp(
            int(arch["in_features"]),
            [int(h) for h in arch["hidden"]],
            int(arch["out_features"]),
            arch["activation"],
        )
    model.load_state_dict(state)
    return model
