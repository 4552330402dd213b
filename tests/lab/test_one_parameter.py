"""The one-parameter curve: the engine's slope, the minima, and where descent stops."""

from __future__ import annotations

import numpy as np
import pytest

from gradstep.lab import one_parameter as lib


def test_slope_is_the_derivative_of_the_polynomial():
    derivative = np.polyder(np.poly1d(lib.COEFFICIENTS))
    for w in (-1.3, -0.3, 0.0, 0.7, 2.2):
        value, slope = lib.loss_and_slope(w)
        assert value == pytest.approx(np.poly1d(lib.COEFFICIENTS)(w), rel=1e-14)
        assert slope == pytest.approx(derivative(w), rel=1e-12, abs=1e-14)


def test_minima_are_where_the_curve_is_lowest_nearby():
    m = lib.minima()
    grid = np.linspace(-1.5, 3, 90001)
    assert m["global"] == pytest.approx(grid[np.argmin(lib.loss(grid))], abs=1e-4)
    (local,) = m["local"]
    left = grid[grid < 0.5]
    assert local == pytest.approx(left[np.argmin(lib.loss(left))], abs=1e-4)
    assert lib.loss(local) > lib.loss(m["global"])


def test_descent_from_the_left_is_stuck_and_from_the_right_is_not():
    last = list(lib.descend(-0.3, 0.05, 10_000))[-1]
    assert last["status"] == "converged" and last["where"] == "local minimum"
    assert last["w"] == pytest.approx(lib.minima()["local"][0], abs=1e-5)
    last = list(lib.descend(2.5, 0.05, 10_000))[-1]
    assert last["where"] == "global minimum"
    # by hand: the same recursion with the polynomial's derivative
    derivative = np.polyder(np.poly1d(lib.COEFFICIENTS))
    w = -0.3
    for p in lib.descend(-0.3, 0.05, 20):
        w = w - 0.05 * derivative(w)
        assert p["w"] == pytest.approx(w, rel=1e-12)


def test_a_large_rate_diverges_in_words():
    last = list(lib.descend(-0.3, 5.0, 1000))[-1]
    assert last["status"] == "diverged" and last["w"] is None
