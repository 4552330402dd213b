"""Optimizer base: param_groups, per-parameter state, zero_grad, state_dict (step 3)."""

from __future__ import annotations

import abc
import math

import numpy as np

from gradstep.autograd import replayable
from gradstep.tensor import Tensor


def _check(name: str, value, low: float = 0.0, high: float | None = None, open_high=True):
    if not isinstance(value, (int, float, np.floating)) or math.isnan(value) or value < low:
        raise ValueError(f"invalid {name}: {value!r} (must be >= {low})")
    if high is not None and (value >= high if open_high else value > high):
        raise ValueError(f"invalid {name}: {value!r} (must be < {high})")


def as_dtype(dtype, *values) -> list:
    """Python numbers as 0-d arrays of ``dtype``.

    NumPy rounds a Python float to the array's dtype inside each operation (NEP 50); doing it
    once per step gives the same bits and saves that conversion in every call of the update.
    """
    return [np.asarray(v, dtype) for v in values]


class Optimizer(abc.ABC):
    """Holds ``param_groups`` (lists of parameters with their hyperparameters) and ``state``.

    ``params`` is an iterable of Tensors or of dicts ``{"params": [...], "lr": ...}`` for
    per-group hyperparameters, as in PyTorch.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict] = []
        self.state: dict = {}
        self._work: dict = {}  # id(param) -> a work array like it; not state, never saved
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise ValueError("optimizer can only optimize tensors with requires_grad=True")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._validate(group)
        self.param_groups.append(group)

    #: Hyperparameters that must be >= 0; each optimizer names its own.
    nonnegative: tuple = ()

    def _validate(self, group: dict) -> None:
        _check("learning rate (lr)", group["lr"])
        for name in self.nonnegative:
            _check(name, group[name])

    @replayable
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of the last backward pass (they accumulate otherwise)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p._grad is None:
                    p._grad = None
                else:
                    p._grad.fill(0)

    @replayable
    def step(self) -> None:
        for group in self.param_groups:
            self._step_group(group)

    def _step_group(self, group: dict) -> None:
        """Update every parameter of ``group`` that has a gradient (subclasses may inline)."""
        hyper = {k: group[k] for k in self.defaults}
        for p in group["params"]:
            if p._grad is not None:
                state = self.state.setdefault(id(p), {})
                self._update(p.data, p._grad, state, **hyper)

    def _work_like(self, p):
        """A work array shaped like the parameter array ``p``, kept between steps, so an
        update writes its intermediate results with ``out=`` instead of allocating them."""
        w = self._work.get(id(p))
        if w is None or w.shape != p.shape or (w.dtype is not p.dtype and w.dtype != p.dtype):
            w = self._work[id(p)] = np.empty_like(p)
        return w

    @abc.abstractmethod
    def _update(self, param, grad, state, **hyper):
        """Update one parameter array in place from its gradient and its state dict."""

    # --- persistence ---------------------------------------------------------------------------
    def _params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        """{'state': {index: {name: array or number}}, 'param_groups': [...]} as PyTorch."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {
            i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
            for pid, s in self.state.items()
            if (i := index.get(pid)) is not None
        }
        groups, start = [], 0
        for g in self.param_groups:
            n = len(g["params"])
            groups.append(
                {
                    **{k: v for k, v in g.items() if k != "params"},
                    "params": list(range(start, start + n)),
                }
            )
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
            len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)
        ):
            raise ValueError("optimizer state_dict does not match this optimizer's parameters")
        params = self._params()
        for saved, group in zip(groups, self.param_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[id(p)] = {
                k: (np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) else v)
                for k, v in s.items()
            }
