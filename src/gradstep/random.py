"""One seeded source of randomness for everything in gradstep.

Initialisation, dropout, shuffling and random splits all draw from :func:`default_generator`
unless they are given a ``numpy.random.Generator`` of their own, so ``manual_seed(n)`` makes a
whole run reproducible. The generator's state is a plain dict, so checkpoints can save it as JSON.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed gradstep's global generator and return it."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """The global generator that :func:`manual_seed` seeds."""
    return _generator


def get_rng_state() -> dict:
    """The global generator's state, a JSON-able dict."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state
