import numpy as np
import pandas as pd
import pytest


def write_table(path, n=240, seed=0):
    """A small regression table: y depends on a and b, not on noise; c is a category."""
    rng = np.random.default_rng(seed)
    a, b, noise = rng.standard_normal((3, n))
    c = rng.choice(["x", "y", "z"], n)
    y = 2 * a - b + (c == "x") + 0.1 * rng.standard_normal(n)
    pd.DataFrame({"a": a, "b": b, "noise": noise, "c": c, "y": y}).to_csv(path, index=False)
    return str(path)


@pytest.fixture
def table(tmp_path):
    return write_table(tmp_path / "table.csv")
