"""Optimizer base: param_groups, per-parameter state, zero_grad, state_dict (step 3).

Each parameter group keeps its parameters in one flat buffer (a :class:`FlatGroup`), so an
update is a handful of whole-buffer NumPy calls instead of that many calls per parameter.
"""

from __future__ import annotations

import abc
import math

import numpy as np

from gradstep.autograd import replayable
from gradstep.backend import get_array_module
from gradstep.tensor import Tensor


def _check(name: str, value, low: float = 0.0, high: float | None = None, open_high=True):
    if not isinstance(value, (int, float, np.floating)) or math.isnan(value) or value < low:
        raise ValueError(f"invalid {name}: {value!r} (must be >= {low})")
    if high is not None and (value >= high if open_high else value > high):
        raise ValueError(f"invalid {name}: {value!r} (must be < {high})")


def as_dtype(like, *values) -> list:
    """Python numbers as 0-d arrays of ``like``'s dtype and array module (NumPy or CuPy).

    NumPy rounds a Python float to the array's dtype inside each operation (NEP 50); doing it
    once per step gives the same bits and saves that conversion in every call of the update.
    """
    xp = get_array_module(like)
    return [xp.asarray(v, like.dtype) for v in values]


def _views(flat, arrays) -> list:
    """Consecutive views of ``flat`` shaped like ``arrays``."""
    out, offset = [], 0
    for a in arrays:
        out.append(flat[offset : offset + a.size].reshape(a.shape))
        offset += a.size
    return out


class StateMismatchError(LookupError):
    """The per-parameter states of a flat group disagree, so no flat update can follow from
    them (a native step then runs that call eagerly)."""


class FlatGroup:
    """The parameters of one group, their gradients and their optimizer state, each in one
    flat buffer, so one update is a few calls over all of them together.

    At construction every parameter's ``.data`` becomes a view of ``data`` (same values); its
    gradient's home is its view of ``grad`` (``homes``): a native compiled step writes the
    gradient there directly, an eager backward or a replay makes fresh gradient arrays, which
    :meth:`ready` copies in. The per-parameter state dicts (what ``state_dict``
    saves, PyTorch's format) hold views of the flat state arrays in ``state``.

    The flat update gives the same bits as updating the parameters one by one: every update
    rule is elementwise with the same scalars. It runs only when it is that update: all
    parameters have a gradient and their states agree (same keys, same step count);
    otherwise the optimizer updates the parameters one by one.
    """

    __slots__ = ("params", "data", "grad", "views", "homes", "slots", "state", "bound", "synced")

    def __init__(self, params: list) -> None:
        arrays = [p.data for p in params]
        xp = get_array_module(*arrays)
        n = sum(a.size for a in arrays)
        self.params = params
        self.data = xp.empty(n, arrays[0].dtype)
        self.grad = xp.zeros(n, arrays[0].dtype)
        self.views = _views(self.data, arrays)
        self.homes = _views(self.grad, arrays)
        self.slots = list(zip(params, self.views, self.homes))
        self.state: dict = {}  # name -> flat array (per-parameter arrays are views) or scalar
        self.bound: dict = {}  # name -> the flat array whose views the state dicts hold
        self.synced = False
        self.link()

    @staticmethod
    def fits(params: list) -> bool:
        """Whether ``params`` can share one buffer: one array type and dtype, no repeats."""
        first = params[0].data
        return len({id(p) for p in params}) == len(params) and all(
            type(p.data) is type(first) and p.data.dtype == first.dtype for p in params
        )

    def link(self) -> None:
        """Make every parameter's ``.data`` its view again (after ``p.data = array``)."""
        for p, v in zip(self.params, self.views):
            if p.data is not v:
                if p.data.shape != v.shape or p.data.dtype != v.dtype:
                    raise ValueError(
                        f"a parameter's data was replaced by an array of shape {p.data.shape} "
                        f"and dtype {p.data.dtype}; the optimizer holds it as {v.shape}, "
                        f"{v.dtype}: make a new optimizer for a changed model"
                    )
                v[...] = p.data
                p.data = v

    def ready(self, states: dict) -> bool:
        """Prepare a flat update; False when the parameters must be updated one by one."""
        # One plain loop: a native step left every gradient in its home (nothing to do); an
        # eager backward or a replay made fresh arrays, copied in here. Copying a gradient
        # before a later one turns out None is harmless: only a flat update reads the buffer.
        for p, v, h in self.slots:
            if p.data is not v:
                self.link()
            g = p._grad
            if g is not h:
                if g is None:  # a parameter without gradient stays as it is
                    self.synced = False
                    return False
                h[...] = g
        if not self.synced:
            self.synced = self._sync([states.get(id(p)) or {} for p in self.params])
        return self.synced

    def _sync(self, states: list) -> bool:
        """Gather the per-parameter states into flat ones (they were updated one by one or
        loaded); False if they disagree, so no flat update can follow from them."""
        keys = list(states[0])
        if any(list(s) != keys for s in states):
            return False
        for k in keys:
            values = [s[k] for s in states]
            first = values[0]
            if type(first) is type(self.data):
                if any(
                    type(v) is not type(first) or v.shape != p.shape
                    for v, p in zip(values, self.views)
                ):
                    return False
                flat = self.state.get(k)
                if flat is None or flat.dtype != first.dtype:
                    flat = self.state[k] = get_array_module(first).empty(
                        self.data.size, first.dtype
                    )
                for v, view in zip(values, _views(flat, self.views)):
                    if v is not view:
                        view[...] = v
            elif any(v != first for v in values):
                return False
            else:
                self.state[k] = first
        for k in [k for k in self.state if k not in states[0]]:
            del self.state[k]
        self.bound.clear()
        self.publish(states)
        return True

    def publish(self, states: list) -> None:
        """After a flat update: the per-parameter states show the flat state (views, scalars)."""
        for k, v in self.state.items():
            if type(v) is type(self.data):
                if self.bound.get(k) is not v:
                    self.bound[k] = v
                    for s, view in zip(states, _views(v, self.views)):
                        s[k] = view
            else:
                for s in states:
                    s[k] = v


class Optimizer(abc.ABC):
    """Holds ``param_groups`` (lists of parameters with their hyperparameters) and ``state``.

    ``params`` is an iterable of Tensors or of dicts ``{"params": [...], "lr": ...}`` for
    per-group hyperparameters, as in PyTorch.

    Unlike PyTorch, the optimizer moves each group's parameters into one flat buffer when it is
    made (:class:`FlatGroup`): ``p.data`` becomes a view of it, with the same values. An update
    is then a few calls over the whole buffer, which is most of a small model's step. Writing
    into ``p.data`` (``p.data[...] = ...``, ``load_state_dict``) works as before; assigning
    ``p.data = array`` is allowed too, and the next step copies that array into the buffer.
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
        self._const_cache: dict = {}  # hyperparameters as 0-d arrays (see _consts)
        self._flat: list = []  # a FlatGroup (or None) for each param group
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
        ps = group["params"]
        self._flat.append(FlatGroup(ps) if ps and FlatGroup.fits(ps) else None)

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
        """One update of every parameter that has a gradient: each group's flat buffer at once
        when it can be (:class:`FlatGroup`), else parameter by parameter; both call the
        optimizer's one update rule, :meth:`_update`, and give the same bits."""
        for group, flat in zip(self.param_groups, self._flat):
            if flat is not None and flat.ready(self.state):
                self._update(flat.data, flat.grad, flat.state, group)
                if flat.state:  # stateless rules (gradient descent) keep no entries
                    flat.publish([self.state.setdefault(id(p), {}) for p in flat.params])
                continue
            for p in group["params"]:
                if p._grad is not None:
                    state = self.state.get(id(p))
                    fresh = state is None
                    state = {} if fresh else state
                    self._update(p.data, p._grad, state, group)
                    if fresh and state:  # as PyTorch: no entry for a rule that keeps none
                        self.state[id(p)] = state

    @abc.abstractmethod
    def _update(self, p, g, state: dict, group: dict) -> None:
        """The update rule: change the array ``p`` (one parameter, or a group's flat buffer)
        in place from its gradient ``g``, its ``state`` dict (filled on the first step) and
        the ``group``'s hyperparameters. The one NumPy entry point of each optimizer;
        :meth:`native_update` describes the same rule to a native step."""

    def _consts(self, like, *values) -> list:
        """``values`` as 0-d arrays of ``like``'s dtype, kept while they stay the same (an
        update then spends no time converting Python numbers)."""
        key = (like.dtype, type(like), *values)
        c = self._const_cache.get(key)
        if c is None:
            if len(self._const_cache) > 64:  # a scheduler changes lr every step
                self._const_cache.clear()
            c = self._const_cache[key] = as_dtype(like, *values)
        return c

    def _work_like(self, p):
        """A work array shaped like the parameter array ``p``, kept between steps, so an
        update writes its intermediate results with ``out=`` instead of allocating them."""
        w = self._work.get(id(p))
        if w is None or w.shape != p.shape or (w.dtype is not p.dtype and w.dtype != p.dtype):
            w = self._work[id(p)] = np.empty_like(p)
        return w

    def native_update(self, group: dict, flat: FlatGroup):
        """The update of ``group`` as a native step calls it, or None when it has none.

        Returns ``(kernel, state_keys, scalars)``: the name of a kernel in
        :mod:`gradstep.tracing.native_kernels` called as ``kernel(data, grad, *state arrays,
        *scalars)`` on the group's flat buffers; the keys of ``flat.state`` it updates; and
        ``scalars(dry=False)``, which does in Python what one eager step does to the state
        besides the arrays (creating them on the first step, counting steps) and returns this
        step's scalars as a tuple of floats (``dry``: the same tuple, changing nothing).
        """
        return None

    def _native_count_step(self, flat: FlatGroup, init: dict) -> None:
        """What one eager step of a stateful rule does to a flat group's state besides its
        arrays' values: create the arrays on the first step (``init``: key -> initial value),
        count the step, show both in the per-parameter state dicts."""
        states = self._native_states(flat)
        st = flat.state
        if not st:
            st["step"] = 0
            for k, value in init.items():
                st[k] = np.full_like(flat.data, value)
        st["step"] += 1
        flat.publish(states)

    def _native_states(self, flat: FlatGroup) -> list:
        """The per-parameter state dicts of a flat group, synced with its flat state; raises
        LookupError when they disagree (the step then runs eagerly)."""
        states = [self.state.setdefault(id(p), {}) for p in flat.params]
        if not flat.synced:
            flat.synced = flat._sync(states)
            if not flat.synced:
                raise StateMismatchError("the parameters' optimizer states disagree")
        return states

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
        for flat in self._flat:
            if flat is not None:
                flat.synced = False
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[id(p)] = {
                k: (np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) else v)
                for k, v in s.items()
            }
