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
