"""What a sweep tries: a space of options (lists for a grid, distributions for random search),
crossed with seeds, as a fixed, numbered list of trials.

The grid is every combination, the first option changing slowest; random search is
scikit-learn's ``ParameterSampler`` (seeded,
so the same space gives the same trials on every run: that is what lets a killed sweep resume).
Seeds are their own axis: every configuration runs once per seed, and trial ``c * n_seeds + i``
is configuration ``c`` with the ``i``-th seed, so two configurations are compared over the
same seeds (and, for the tabular trainer, the same validation splits).
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
from dataclasses import dataclass

from gradstep.errors import InputError


@dataclass(frozen=True)
class Trial:
    """One training: configuration ``config_id`` (the options ``config``) with ``seed``."""

    trial_id: int
    config_id: int
    config: dict
    seed: int


class Distribution:
    """A range to sample an option from (random search, Optuna).

    ``kind`` is ``"uniform"`` (floats), ``"loguniform"`` (floats, uniform in log) or ``"int"``
    (integers ``low..high``, both included). ``rvs`` is what scikit-learn's ``ParameterSampler``
    calls; it returns plain Python numbers so a trial's options stay JSON.
    """

    KINDS = ("uniform", "loguniform", "int")

    def __init__(self, kind: str, low, high, name: str = "distribution"):
        if kind not in self.KINDS:
            raise InputError(f"{name}: distribution must be one of {', '.join(self.KINDS)}")
        for what, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise InputError(f"{name}: {what} must be a finite number, got {v!r}")
        if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
            raise InputError(f"{name}: an int distribution needs integer bounds")
        if low > high:
            raise InputError(f"{name}: low {low!r} is greater than high {high!r}")
        if kind == "loguniform" and low <= 0:
            raise InputError(f"{name}: a loguniform distribution needs low > 0, got {low!r}")
        self.kind = kind
        self.low, self.high = (int(low), int(high)) if kind == "int" else (low, high)

    def rvs(self, random_state=None):
        import numpy as np

        rng = np.random.default_rng(random_state.randint(2**31)) if random_state else None
        rng = rng or np.random.default_rng()
        if self.kind == "int":
            return int(rng.integers(self.low, self.high + 1))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def describe(self) -> dict:
        return {"distribution": self.kind, "low": self.low, "high": self.high}

    def __repr__(self) -> str:
        return f"{self.kind}({self.low!r}, {self.high!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Distribution) and self.describe() == other.describe()

    __hash__ = None


def uniform(low: float, high: float) -> Distribution:
    """Floats uniform in [low, high]."""
    return Distribution("uniform", low, high)


def loguniform(low: float, high: float) -> Distribution:
    """Floats uniform in log between low and high (learning rates): 1e-4..1e-1 spends as many
    trials between 1e-4 and 1e-3 as between 1e-2 and 1e-1."""
    return Distribution("loguniform", low, high)


def randint(low: int, high: int) -> Distribution:
    """Integers low..high, both included (unlike NumPy's and scipy's ``randint``, whose high
    is excluded: an option's range reads as written, as Optuna's ``suggest_int`` does)."""
    return Distribution("int", low, high)


def parse_value(key: str, value, source: str):
    """One ``[space]`` entry of a TOML file: a list, or a table ``{distribution = "loguniform",
    low = 1e-4, high = 0.1}``."""
    if isinstance(value, dict):
        unknown = set(value) - {"distribution", "low", "high"}
        if unknown or "distribution" not in value:
            raise InputError(
                f"{source}: space '{key}' must be a list or a table with distribution, low and "
                f"high (got keys {', '.join(sorted(value))})"
            )
        for bound in ("low", "high"):
            if bound not in value:
                raise InputError(f"{source}: space '{key}' needs '{bound}'")
        return Distribution(
            value["distribution"], value["low"], value["high"], f"{source}: '{key}'"
        )
    return value


def check_space(space, source: str = "") -> dict:
    """``space`` as a dict of option -> non-empty list or Distribution; errors name the key
    (and ``source``, the sweep file, when there is one)."""
    at = f"{source}: " if source else ""
    if not isinstance(space, dict):
        raise InputError(f"{at}the space must be a table of options, got {type(space).__name__}")
    if not space:
        raise InputError(f"{at}the space is empty; give at least one option to sweep")
    out = {}
    for key, values in space.items():
        if not isinstance(key, str) or not key:
            raise InputError(f"{at}option names must be text, got {key!r}")
        if isinstance(values, Distribution) or hasattr(values, "rvs"):
            out[key] = values
            continue
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise InputError(
                f"{at}space '{key}' must be a list of values (or a distribution), "
                f"got {values!r}; write [{_suggest(values)}]"
            )
        values = list(values)
        if not values:
            raise InputError(f"{at}space '{key}' is an empty list; give at least one value")
        seen = []
        for v in values:
            if not _jsonable(v):
                raise InputError(f"{at}space '{key}': {v!r} is not a number, text or list")
            if v in seen:
                raise InputError(f"{at}space '{key}' lists {v!r} twice")
            seen.append(v)
        out[key] = values
    return out


def _suggest(v) -> str:
    """``"0.01"`` -> ``0.01``: a number written as text is suggested as a number."""
    if isinstance(v, str):
        try:
            return repr(float(v)) if "." in v or "e" in v.lower() else str(int(v))
        except ValueError:
            return json.dumps(v)
    return json.dumps(v) if _jsonable(v) else repr(v)


def _jsonable(v) -> bool:
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def check_seeds(seeds, source: str = "seeds") -> list[int]:
    try:
        seeds = list(seeds)
    except TypeError:
        raise InputError(f"{source}: must be a list of integers, got {seeds!r}") from None
    if not seeds:
        raise InputError(f"{source}: is empty; give at least one seed, e.g. [0, 1, 2, 3, 4]")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or not 0 <= s < 2**32:
            raise InputError(f"{source}: {s!r} is not an integer in [0, 2**32)")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"{source}: a seed is listed twice")
    return [int(s) for s in seeds]


def is_grid(space: dict) -> bool:
    return all(isinstance(v, list) for v in space.values())


def configs(space: dict, strategy: str, n_trials: int | None, sample_seed: int) -> list[dict]:
    """The configurations to try, in a fixed order: the whole grid, or ``n_trials`` draws."""
    from sklearn.model_selection import ParameterSampler

    if strategy == "grid":
        if not is_grid(space):
            wide = next(k for k, v in space.items() if not isinstance(v, list))
            raise InputError(
                f"space '{wide}' is a distribution: a grid needs lists; use strategy "
                "'random' or 'optuna' with n_trials"
            )
        # nested loops in the space's order (the first option changes slowest), as a reader
        # of the file expects; scikit-learn's ParameterGrid would sort the names first
        return [dict(zip(space, values)) for values in itertools.product(*space.values())]
    if not n_trials or n_trials < 1:
        wide = [k for k, v in space.items() if not isinstance(v, list)]
        why = f" (space '{wide[0]}' is a range, so the search is random)" if wide else ""
        raise InputError(f"strategy '{strategy}' needs n_trials >= 1{why}")
    if is_grid(space):  # ParameterSampler draws without replacement; more is the whole grid
        size = math.prod(len(v) for v in space.values())
        n_trials = min(n_trials, size)
    return [_plain(c, space) for c in ParameterSampler(space, n_trials, random_state=sample_seed)]


def _plain(config: dict, space: dict) -> dict:
    """Python numbers (NumPy's are not JSON), in the space's key order (the grid sorts)."""
    out = {}
    for k in space:
        v = config[k]
        out[k] = v.item() if hasattr(v, "item") and not isinstance(v, (list, dict)) else v
    return out


def trials(configs_: list[dict], seeds: list[int], start: int = 0) -> list[Trial]:
    n = len(seeds)
    return [
        Trial((start + c) * n + i, start + c, config, seed)
        for c, config in enumerate(configs_)
        for i, seed in enumerate(seeds)
    ]


def describe(space: dict) -> dict:
    """The space as JSON (the journal's header compares it on resume)."""
    out = {}
    for k, v in space.items():
        if isinstance(v, Distribution):
            out[k] = v.describe()
        elif isinstance(v, list):
            out[k] = v
        else:  # a user's scipy distribution: its name and arguments, as far as they show
            dist = getattr(v, "dist", v)
            out[k] = {
                "distribution": getattr(dist, "name", type(v).__name__),
                "args": [float(a) for a in getattr(v, "args", ())],
            }
    return out
