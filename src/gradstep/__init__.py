"""gradstep: machine learning in three steps.

(1) a function with unknown parameters, (2) a loss computed from training data, (3) optimization
by gradient descent, with the gradients found by backpropagation. This package is the engine:
``Tensor`` with reverse-mode automatic differentiation on NumPy arrays. It imports NumPy alone.

>>> import gradstep as gs
>>> w = gs.tensor(2.0, requires_grad=True)
>>> loss = (w * 3.0 - 1.0) ** 2
>>> loss.backward()
>>> float(w.grad)
30.0
"""

from __future__ import annotations

import numbers

import numpy as np

from gradstep import autograd, compat, functional
from gradstep.autograd import (
    AnomalyError,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    replayable,
)
from gradstep.backend import default_dtype, get_default_dtype, set_default_dtype
from gradstep.functional import cat, concatenate, einsum, stack, where
from gradstep.io import load, save
from gradstep.random import default_generator, manual_seed
from gradstep.tensor import Tensor
from gradstep.tracing import CompiledStep, CompileWarning, compile  # noqa: A004 - gradstep.compile, as torch.compile

__version__ = "0.1.0"


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """A new tensor holding a copy of ``data``.

    Floating input of any precision becomes the default dtype (float32 unless changed with
    :func:`set_default_dtype`) unless ``dtype`` is given; integer input stays integer.
    """
    t = Tensor(data, requires_grad=requires_grad, dtype=dtype)
    source = data.data if isinstance(data, Tensor) else data
    if isinstance(source, np.ndarray) and np.may_share_memory(t.data, source):
        shared = t.data
        t.data = shared.copy()
        tracer = autograd._tracer  # read once: another thread's trace may end
        if tracer is not None:  # inside gradstep.compile: the copy is part of the step
            tracer.record_derived(np.copy, shared, t)
    return t


def _dtype(dtype):
    return np.dtype(dtype) if dtype is not None else get_default_dtype()


def _shape(shape) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(shape), dtype=_dtype(dtype)), requires_grad, dtype)


def ones(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(shape), dtype=_dtype(dtype)), requires_grad, dtype)


def zeros_like(t, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros_like(np.asarray(t)), requires_grad)


def ones_like(t, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones_like(np.asarray(t)), requires_grad)


def randn(*shape, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Standard normal samples from gradstep's seeded generator (or ``generator``)."""
    rng = generator or default_generator()
    data = rng.standard_normal(_shape(shape)).astype(_dtype(dtype))
    return Tensor(data, requires_grad, dtype)


def rand(*shape, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Uniform samples in [0, 1) from gradstep's seeded generator (or ``generator``)."""
    rng = generator or default_generator()
    data = rng.random(_shape(shape)).astype(_dtype(dtype))
    return Tensor(data, requires_grad, dtype)


def arange(*args, dtype=None) -> Tensor:
    return Tensor(np.arange(*args, dtype=dtype), dtype=dtype)


def full(*shape, fill_value=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """``gs.full((2, 3), 7.0)`` or ``gs.full(2, 3, fill_value=7.0)``."""
    if fill_value is None and len(shape) == 2 and isinstance(shape[0], (tuple, list)):
        shape, fill_value = shape
    arr = np.full(_shape(shape), fill_value, dtype=_dtype(dtype))
    return Tensor(arr, requires_grad=requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.eye(n, m, dtype=_dtype(dtype)), requires_grad=requires_grad)


def linspace(start, end, steps: int, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.linspace(start, end, steps, dtype=_dtype(dtype)), requires_grad=requires_grad)


def randint(low, high=None, size=(), dtype=np.int64, generator=None) -> Tensor:
    """Integers in [low, high) from gradstep's seeded generator (``randint(high, size)`` too)."""
    if high is None or isinstance(high, (tuple, list)):
        low, high, size = 0, low, (high if high is not None else size)
    rng = generator or default_generator()
    return Tensor(rng.integers(low, high, size=tuple(size), dtype=dtype))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory and keeping its dtype (float64 stays float64)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array, dtype=array.dtype)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a tensor, sharing memory where it can (a tensor of the right dtype is
    returned as it is)."""
    if device is not None:
        compat.device_type(device)
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
        return data
    return Tensor(data, dtype=dtype)


def _typed(name: str, dt):
    def make(*data) -> Tensor:
        if len(data) == 1 and not isinstance(data[0], numbers.Integral):
            return tensor(data[0], dtype=dt)
        return zeros(*data, dtype=dt)  # FloatTensor(2, 3): a (2, 3) tensor

    make.__name__ = make.__qualname__ = name
    make.__doc__ = f"PyTorch's legacy ``torch.{name}(data)``: a {np.dtype(dt)} tensor."
    return make


FloatTensor = _typed("FloatTensor", np.float32)
DoubleTensor = _typed("DoubleTensor", np.float64)
LongTensor = _typed("LongTensor", np.int64)
IntTensor = _typed("IntTensor", np.int32)
BoolTensor = _typed("BoolTensor", np.bool_)


def empty(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """PyTorch leaves it uninitialised; here it is zeros (the same cost in NumPy)."""
    return zeros(*shape, dtype=dtype, requires_grad=requires_grad)


def _like(maker):
    def like(t, dtype=None, requires_grad: bool = False, **kwargs) -> Tensor:
        dt = dtype or (t.dtype if isinstance(t, Tensor) else np.asarray(t).dtype)
        return maker(
            *np.shape(t.data if isinstance(t, Tensor) else t),
            dtype=dt,
            requires_grad=requires_grad,
            **kwargs,
        )

    like.__name__ = like.__qualname__ = f"{maker.__name__}_like"
    like.__doc__ = f"``{maker.__name__}`` with the shape (and dtype) of ``t``."
    return like


empty_like = _like(empty)
randn_like = _like(randn)
rand_like = _like(rand)


def full_like(t, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    dt = dtype or (t.dtype if isinstance(t, Tensor) else np.asarray(t).dtype)
    return full(
        np.shape(getattr(t, "data", t)),
        fill_value=fill_value,
        dtype=dt,
        requires_grad=requires_grad,
    )


def mm(a, b) -> Tensor:
    """Matrix product of two 2-d tensors (``matmul`` for any batch)."""
    if np.ndim(getattr(a, "data", a)) != 2 or np.ndim(getattr(b, "data", b)) != 2:
        raise ValueError("mm expects two 2-d tensors; use matmul for other shapes")
    return (a if isinstance(a, Tensor) else tensor(a)) @ b


def bmm(a, b) -> Tensor:
    """Batched matrix product of two 3-d tensors."""
    if np.ndim(getattr(a, "data", a)) != 3 or np.ndim(getattr(b, "data", b)) != 3:
        raise ValueError("bmm expects two 3-d tensors; use matmul for other shapes")
    return (a if isinstance(a, Tensor) else tensor(a)) @ b


def equal(a, b) -> bool:
    """True when both have the same shape and the same values (``torch.equal``)."""
    x, y = np.asarray(getattr(a, "data", a)), np.asarray(getattr(b, "data", b))
    return x.shape == y.shape and np.array_equal(x, y)


def numel(t) -> int:
    return np.size(getattr(t, "data", t)).__index__()


def _function(name: str, fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = fn.__doc__
    return method


# Tensor methods that are the functional ops of the same name.
for _name in ("softplus", "softmax", "log_softmax", "logsumexp", "leaky_relu"):
    setattr(Tensor, _name, _function(_name, getattr(functional, _name)))


def _namespace(name: str):
    """``gs.exp(x)`` as ``torch.exp(x)``: the Tensor method of that name, on any input."""

    def fn(x, *args, **kwargs):
        return getattr(x if isinstance(x, Tensor) else tensor(x), name)(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``x.{name}(...)`` for a Tensor or anything ``gs.tensor`` takes."
    return fn


_NAMESPACE = [
    "exp",
    "log",
    "sqrt",
    "abs",
    "sigmoid",
    "relu",
    "tanh",
    "softmax",
    "log_softmax",
    "logsumexp",
    "matmul",
    "sum",
    "mean",
    "max",
    "min",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "clip",
    "flatten",
    "reshape",
    "transpose",
    "permute",
    "unsqueeze",
    "squeeze",
    "prod",
    "norm",
    "cumsum",
    "var",
    "std",
    "all",
    "any",
    "sin",
    "cos",
    "log1p",
    "expm1",
    "log2",
    "rsqrt",
    "sign",
    "floor",
    "ceil",
    "round",
    "maximum",
    "minimum",
    "pow",
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "isnan",
    "isfinite",
    "isclose",
    "allclose",
    "gather",
    "scatter",
    "scatter_add",
    "index_select",
    "masked_fill",
    "sort",
    "topk",
    "flip",
    "tril",
    "triu",
    "chunk",
    "split",
    "nonzero",
]
for _name in _NAMESPACE:
    globals()[_name] = _namespace(_name)
clamp = _namespace("clip")

# PyTorch's dtype names (gs.float32 ... gs.long, gs.bool), Generator, device, cuda, backends.
# They are set last: `float`, `int`, `bool` and `long` then shadow the builtins in this module,
# so nothing below may call those builtins.
from gradstep.compat import DTYPES as _DTYPES  # noqa: E402
from gradstep.compat import Generator, backends, cuda, device  # noqa: E402, F401

for _name in _DTYPES:
    globals()[_name] = getattr(compat, _name)

# Submodules a plain `import gradstep as gs` gives on first use (PEP 562), so `gs.nn.Linear`
# works as `torch.nn.Linear` does while `import gradstep` still loads NumPy alone.
_LAZY = (
    "nn",
    "optim",
    "data",
    "train",
    "estimators",
    "export",
    "lab",
    "testing",
    "io",
    "paths",
    "sweep",
)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"gradstep.{name}")
    raise AttributeError(f"module 'gradstep' has no attribute '{name}'")


__all__ = [  # the torch-style namespace functions, then the rest
    *_DTYPES,
    "Generator",
    "backends",
    "cuda",
    "device",
    "from_numpy",
    "as_tensor",
    "FloatTensor",
    "DoubleTensor",
    "LongTensor",
    "IntTensor",
    "BoolTensor",
    "empty",
    "empty_like",
    "randn_like",
    "rand_like",
    "full_like",
    "mm",
    "bmm",
    "equal",
    "numel",
    "einsum",
    "eye",
    "full",
    "linspace",
    "randint",
    *_NAMESPACE,
    "clamp",
    "AnomalyError",
    "CompileWarning",
    "CompiledStep",
    "Tensor",
    "arange",
    "cat",
    "compile",
    "concatenate",
    "default_dtype",
    "default_generator",
    "detect_anomaly",
    "enable_grad",
    "functional",
    "get_default_dtype",
    "is_grad_enabled",
    "load",
    "manual_seed",
    "no_grad",
    "ones",
    "ones_like",
    "rand",
    "randn",
    "replayable",
    "save",
    "set_default_dtype",
    "stack",
    "tensor",
    "where",
    "zeros",
    "zeros_like",
]
