"""How the sweep report writes numbers and configurations: a mean to the precision its sd
allows, a paired difference with its interval, and configurations by only the options that
differ between them, cut short so tables fit a 360 px phone."""

from __future__ import annotations

import json
import math

_VALUE_CHARS = 12  # a longer option value (a list of feature names) is cut, so tables stay narrow
_PART_CHARS = 18  # and an option=value part past this many characters


def num(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def decimals(spread: float | None) -> int | None:
    """Decimals that show ``spread`` to two significant digits (None: no usable spread)."""
    if spread is None or not math.isfinite(spread) or spread <= 0:
        return None
    d = 1 - math.floor(math.log10(spread))
    return d if 0 <= d <= 8 else None


def two_digits(x: float) -> str:
    d = decimals(x)
    return num(x) if d is None else f"{x:.{d}f}"


def mean_sd_text(mean: float | None, sd: float | None) -> str:
    """``0.441 ± 0.060``: the sd to two significant digits and the mean to the same decimals
    (more digits than the seed noise allows would be noise); ``—`` without a mean."""
    if mean is None:
        return "—"
    d = decimals(sd)
    if sd is None:
        return num(mean)
    # a no-break space after ±: a narrow column breaks "52.7 ± 3.9" before the ± only
    return f"{num(mean)} ±\u00a0{num(sd)}" if d is None else f"{mean:.{d}f} ±\u00a0{sd:.{d}f}"


def diff_text(c: dict) -> str:
    """``+0.052 (0.031 to 0.073)``: a paired difference and its 95% interval, to two
    significant digits of the interval's half-width."""
    if c["diff"] is None:
        return "—"
    if c["ci_low"] is None:
        return f"{c['diff']:+.3g}"
    d = decimals((c["ci_high"] - c["ci_low"]) / 2)
    if d is None:
        return f"{c['diff']:+.4g} ({num(c['ci_low'])} to {num(c['ci_high'])})"
    return f"{c['diff']:+.{d}f} ({c['ci_low']:.{d}f} to {c['ci_high']:.{d}f})"


def value_text(v) -> str:
    """An option's value, short: [64, 32] -> 64,32; 0.001 -> 0.001; cut past _VALUE_CHARS."""
    if isinstance(v, bool) or v is None:
        text = str(v).lower()
    elif isinstance(v, float):
        text = f"{v:g}"
    elif isinstance(v, (list, tuple)):
        text = ",".join(value_text(x) for x in v)
    elif isinstance(v, dict):
        text = json.dumps(v, separators=(",", ":"), default=str)
    else:
        text = str(v)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def varying_options(configs: list[dict]) -> list[str]:
    """The options whose value differs between ``configs``, in the first config's order."""
    keys: list[str] = []
    for c in configs:
        keys += [k for k in c if k not in keys]
    first = configs[0] if configs else {}
    return [k for k in keys if any(c.get(k, None) != first.get(k, None) for c in configs)]


def config_label(config_id: int, config: dict, keys: list[str]) -> str:
    """``config 3: hidden=64,32 lr=0.01``: the config's id and the options in ``keys``."""
    parts = [f"{k}={value_text(config[k])}" for k in keys if k in config]
    # a part has no space to wrap at: a long one would widen the tables past a phone's width
    parts = [p if len(p) <= _PART_CHARS else p[: _PART_CHARS - 1] + "…" for p in parts]
    return " ".join([f"config {config_id}" + (":" if parts else ""), *parts])
