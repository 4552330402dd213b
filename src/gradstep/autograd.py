"""Reverse-mode automatic differentiation: the chain rule as a forward pass, then a backward pass.

A :class:`Function` is one primitive op. Its ``forward`` works on raw arrays and keeps what its
``backward`` will need; ``backward`` receives the gradient of the loss with respect to the op's
output and returns one gradient per input (``None`` where an input needs none). The engine, not
the op, sums a broadcast gradient back to the input's shape (:func:`unbroadcast`) and accumulates
gradients: a tensor used twice receives both contributions.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import itertools
import os
import traceback
from collections.abc import Iterator
from heapq import heappop, heappush

import numpy as np

from gradstep.backend import const

#: Set by :mod:`gradstep.tensor` on import (it imports this module; this breaks the cycle).
Tensor = None

_grad_enabled = True
_new = object.__new__
#: Numbers the nodes in the order they are made (see :func:`backward`).
_next_seq = itertools.count().__next__
_anomaly = False
#: The active gradstep.tracing.recorder.Tracer while a compiled step is traced, else None.
_tracer = None


class Function(abc.ABC):
    """Base class of every op: ``forward`` and ``backward`` on raw arrays.

    ``needs_input_grad`` holds one bool per input, so a backward can skip work nobody needs.
    ``inputs`` holds the arguments the op was applied to; it is ``None`` on the class itself
    and after the graph was freed by a backward pass.
    """

    inputs = None
    needs_input_grad: tuple = ()
    #: When the node was made, counting from the start of the process; its inputs' are lower.
    _seq = -1
    created_at = None
    #: None, or a static method that raises on arguments the op cannot take, from what a
    #: compiled step's signature fixes (shapes, dtypes, Python parameters): ``apply`` calls it
    #: before ``forward``, a replay does not. Checks of values (labels in range) stay in
    #: ``forward``.
    check = None

    @abc.abstractmethod
    def forward(self, *arrays):
        """The op on raw arrays; keeps what backward needs; returns the output array."""

    @abc.abstractmethod
    def backward(self, grad):
        """The gradient w.r.t. each input (None where not needed) from the output's.

        Each is a new array, a view, or ``grad`` itself passed on; never one new array for
        two inputs (the engine may let a leaf keep a new array and add into it later).
        """

    @classmethod
    def apply(cls, *args, **params):
        """Run ``forward`` on the arrays inside ``args`` and record the node if needed.

        Non-Tensor arguments (Python scalars, arrays, index tuples) pass through unchanged. The
        node keeps ``args`` as its inputs; ``needs_input_grad`` says which of them get a
        gradient, so nothing else is built per op (this is the hot path of every step).
        """
        fn = cls.__new__(cls)
        arrays = []
        needs = []
        track = False
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a.data)
                if a.requires_grad:
                    needs.append(True)
                    track = True
                    continue
            else:
                arrays.append(a)
            needs.append(False)
        if cls.check is not None:
            cls.check(*arrays, **params)
        if track and _grad_enabled:
            fn.needs_input_grad = tuple(needs)
            out = fn.forward(*arrays, **params)
            fn.inputs = args
            fn._seq = _next_seq()
            if _anomaly:
                fn.created_at = _user_frame()
            node = fn
        else:
            fn.needs_input_grad = (False,) * len(args)
            out = fn.forward(*arrays, **params)
            node = None
        generic = isinstance(out, np.generic)
        if generic:  # NumPy returns scalars for 0-d results
            out = np.asarray(out)
        result = _new(Tensor)  # Tensor._make inlined: this runs once per op
        result.data = out
        result._grad = None
        result.requires_grad = node is not None
        result._node = node
        tracer = _tracer  # read once: another thread's trace may end meanwhile
        if tracer is not None:
            tracer.record_op(fn, args, params, result, generic)
        return result


def unbroadcast(grad, shape: tuple):
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _freed_error() -> RuntimeError:
    return RuntimeError(
        "backward through a graph that was already freed: a second backward() through "
        "the same ops needs retain_graph=True on the first call"
    )


def backward(root, grad=None, retain_graph: bool = False) -> None:
    """Fill ``.grad`` of every leaf that ``root`` depends on (see :meth:`Tensor.backward`)."""
    given = grad
    if not root.requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad: no input of the computation "
            "had requires_grad=True (or it ran under no_grad())"
        )
    data = root.data
    if grad is None:
        if data.size != 1:
            raise ValueError(
                f"backward() without a gradient needs a scalar output, got shape "
                f"{root.shape}; reduce it first (e.g. .sum() or .mean()) or pass grad="
            )
        # a loss is 0-d: copying a kept 1 is a third of the cost of ones_like
        grad = const(1, data).copy() if data.ndim == 0 else np.ones_like(data)
    else:
        grad = grad.data if isinstance(grad, Tensor) else np.asarray(grad)
        if grad.shape != root.shape:
            raise ValueError(
                f"backward(grad): the gradient has shape {grad.shape}, the output {root.shape}"
            )
        grad = np.array(grad, dtype=root.dtype)  # a copy: the user's array is never adopted
    # A trace (gradstep.compile) gets every decision below as named records (tracing.ir).
    tracer = _tracer  # read once: another thread's trace may end meanwhile
    rec = None if tracer is None else tracer.record_backward(root, given)
    if root._node is None:
        _accumulate_leaf(root, grad, None)  # a trace refuses this case in record_backward
        return
    # A node's inputs are made before it, so taking the waiting node made last is always a
    # topological order: the pass needs no sort of its own. The heap holds (negated) numbers
    # of the nodes a gradient is waiting for; `pending` the tensor and that gradient.
    node = root._node
    if node.inputs is None:
        raise _freed_error()
    pending = {node._seq: (root, grad)}
    heap = [-node._seq]
    anomaly = _anomaly
    while heap:
        t, g = pending.pop(-heappop(heap))
        node = t._node
        in_grads = node.backward(g)
        tupled = type(in_grads) is tuple
        if not tupled:
            in_grads = (in_grads,)
        if rec is not None:
            rec.node(t, node, tupled, retain_graph)
        if anomaly:
            _check_finite(node, in_grads)
        pos = -1
        for inp, need, ig in zip(node.inputs, node.needs_input_grad, in_grads):
            pos += 1
            if not need or ig is None:
                continue
            data = inp.data
            reshaped = ig.shape != data.shape
            if reshaped:
                ig = unbroadcast(ig, data.shape)
            made_by = inp._node
            if made_by is None:
                kind = "leaf"
                if (  # the common case of _accumulate_leaf, inlined: adopt a fresh array
                    inp._grad is None
                    and ig is not g
                    and type(ig) is np.ndarray
                    and ig.base is None
                    and ig.dtype == data.dtype
                ):
                    inp._grad = ig
                else:
                    _accumulate_leaf(inp, ig, g)
            else:
                if made_by.inputs is None:
                    raise _freed_error()
                key = made_by._seq
                waiting = pending.get(key)
                if waiting is None:
                    pending[key] = (inp, ig)
                    heappush(heap, -key)
                    kind = "first"
                else:
                    pending[key] = (inp, waiting[1] + ig)
                    kind = "add"
            if rec is not None:
                rec.grad(kind, inp, pos, reshaped)
        if not retain_graph:
            node.__dict__.clear()  # drop saved arrays now, as PyTorch does; inputs -> None


def _accumulate_leaf(leaf, g, upstream) -> None:
    """Add ``g`` to ``leaf._grad``, adopting ``g`` without a copy when nothing else can see it.

    The rule is local to the op that returned ``g``: its backward was given ``upstream`` and
    returns, per input, a fresh array, a view (it has a ``base``), or ``upstream`` itself
    passed on (Add gives it to both inputs), and never one fresh array for two inputs (see
    :meth:`Function.backward`). So a fresh array that is not ``upstream`` belongs to this
    leaf alone, and the leaf may keep it and ``+=`` into it later. Anything else is copied:
    ``upstream`` may be what another tensor waits on, or the root's seed. (A gradient waiting
    for a tensor is never changed in place: a second one makes a new sum.)
    """
    if leaf._grad is None:
        if (
            g is not upstream
            and type(g) is np.ndarray
            and g.base is None
            and g.dtype == leaf.data.dtype
        ):
            leaf._grad = g
        else:
            leaf._grad = np.array(g, dtype=leaf.data.dtype, copy=True)
    else:
        leaf._grad += g


def replayable(func):
    """Mark ``func`` as a step a compiled training step re-runs on every call.

    Inside a trace (:func:`gradstep.compile`) the call is recorded with its arguments and the
    replay calls it again at the same point; nothing it does inside is traced. Optimizer.step,
    Optimizer.zero_grad, LRScheduler.step and clip_grad_norm_ carry it; use it on your own
    functions that change state from the gradients (e.g. a custom update rule).
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        tracer = _tracer
        if tracer is None or tracer.ignores():
            return func(*args, **kwargs)
        return tracer.record_call(func, args, kwargs)

    return wrapper


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator: no graph is recorded inside it."""

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


class enable_grad(contextlib.ContextDecorator):
    """Context manager and decorator: record the graph again inside a ``no_grad`` block."""

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = True
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


def is_grad_enabled() -> bool:
    """Whether ops record the graph now."""
    return _grad_enabled


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise as soon as a backward pass produces a NaN, naming the op and where it was created.

    Costs a stack capture per op and a NaN scan per gradient: for debugging, not for training.
    """
    global _anomaly
    previous = _anomaly
    _anomaly = True
    try:
        yield
    finally:
        _anomaly = previous


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _user_frame() -> str:
    """'file:line in function' of the innermost frame outside gradstep itself."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR + os.sep):
            return f"{frame.filename}:{frame.lineno} in {frame.name}: {frame.line}"
    return "<inside gradstep>"


class AnomalyError(RuntimeError):
    """A backward pass produced a NaN (raised only under :func:`detect_anomaly`)."""


def _check_finite(node, in_grads) -> None:
    for i, g in enumerate(in_grads):
        if g is not None and np.isnan(g).any():
            raise AnomalyError(
                f"{type(node).__name__}.backward produced NaN in the gradient of its input {i}; "
                f"the op was created at {node.created_at}"
            )
