"""Initialisation, drawing from gradstep's seeded generator."""

from __future__ import annotations

import math

import numpy as np

from gradstep.backend import get_default_dtype
from gradstep.random import default_generator


def uniform(shape: tuple, bound: float, generator=None, dtype=None) -> np.ndarray:
    """Samples from U(-bound, bound), as PyTorch's default Linear initialisation uses."""
    rng = generator or default_generator()
    return rng.uniform(-bound, bound, size=shape).astype(dtype or get_default_dtype())


def linear_bound(fan_in: int) -> float:
    """1/sqrt(fan_in): PyTorch's kaiming_uniform(a=sqrt(5)) bound for weight and bias alike."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


# --- PyTorch's in-place initialisers (nn.init.*_), on a Parameter or Tensor ---------------------
def _fans(t) -> tuple[int, int]:
    shape = t.shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fill(t, values: np.ndarray):
    t.data[...] = values.astype(t.dtype)
    return t


def _gain(nonlinearity: str, a: float = 0.0) -> float:
    gains = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5 / 3, "relu": math.sqrt(2.0)}
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity not in gains:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; known: {sorted(gains)}")
    return gains[nonlinearity]


def uniform_(t, a: float = 0.0, b: float = 1.0, generator=None):
    return _fill(t, (generator or default_generator()).uniform(a, b, t.shape))


def normal_(t, mean: float = 0.0, std: float = 1.0, generator=None):
    return _fill(t, (generator or default_generator()).normal(mean, std, t.shape))


def constant_(t, val: float):
    return _fill(t, np.full(t.shape, val))


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def xavier_uniform_(t, gain: float = 1.0, generator=None):
    fan_in, fan_out = _fans(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound, generator)


def xavier_normal_(t, gain: float = 1.0, generator=None):
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(
    t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None
):
    fan = _fans(t)[0 if mode == "fan_in" else 1]
    bound = _gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(
    t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None
):
    fan = _fans(t)[0 if mode == "fan_in" else 1]
    return normal_(t, 0.0, _gain(nonlinearity, a) / math.sqrt(fan), generator)
