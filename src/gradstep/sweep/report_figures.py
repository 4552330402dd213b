"""The sweep report's two figures, drawn with matplotlib's object API (no pyplot state):
every seed of every configuration as a strip plot, and the best configuration's learning
curves. Written atomically beside report.html."""

from __future__ import annotations

import io
import math

from gradstep.io import atomic_write_bytes

SEED_COLOURS = 10  # up to this many seeds each get a colour of their own


def seed_colours(seeds: list[int]) -> dict[int, str] | None:
    """A colour per seed (the same seed in the same colour in every figure), or None when
    there are too many seeds to tell colours apart."""
    if len(seeds) > SEED_COLOURS:
        return None
    return {s: f"C{i}" for i, s in enumerate(seeds)}


def _figure(width: float, height: float):
    # a Figure without pyplot: no global state, no backend switch, nothing left open
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90)


def _save(fig, path: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")  # long labels widen it, never clip
    atomic_write_bytes(path, buf.getvalue())


def plot_strip(shown: list[dict], labels: list[str], metric: str, mode: str, colours, path):
    """One dot per seed per configuration, best at the top, the mean as a black bar."""
    k = len(shown)
    fig = _figure(7.5, max(2.0, 0.9 + 0.3 * k))
    ax = fig.add_subplot()
    for y, s in enumerate(shown):
        seeds = list(s["values"])
        for j, seed in enumerate(seeds):
            # a small vertical offset per seed so equal scores stay visible as separate dots
            dy = 0.0 if len(seeds) == 1 else 0.3 * (j / (len(seeds) - 1) - 0.5)
            colour = colours[seed] if colours else "C0"
            ax.plot(s["values"][seed], y + dy, "o", ms=5, color=colour, alpha=0.85, mec="none")
        if s["mean"] is not None:
            ax.plot(s["mean"], y, "|", ms=16, mew=2.0, color="black")
    if shown and shown[0]["mean"] is not None:
        ax.axvline(shown[0]["mean"], color="0.6", lw=0.8, ls="--", zorder=0)
    ax.set_yticks(range(k), [label[:48] for label in labels], fontsize=8)
    ax.set_ylim(k - 0.5, -0.5)  # best first, at the top
    better = "lower" if mode == "min" else "higher"
    ax.set_xlabel(f"{metric} ({better} is better)")
    ax.grid(axis="x", color="0.9")
    if colours:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], ls="none", marker="o", color=c, label=str(seed))
            for seed, c in colours.items()
        ]
        handles.append(Line2D([], [], ls="none", marker="|", ms=12, mew=2, color="k", label="mean"))
        ax.legend(handles=handles, title="seed", fontsize=7, title_fontsize=8,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0))  # fmt: skip
    _save(fig, path)


def plot_curves(curves: dict[int, dict], label: str, colours, path) -> None:
    """The best configuration's loss per epoch, one colour per seed: validation solid, training
    dashed."""
    fig = _figure(7.5, 4.0)
    ax = fig.add_subplot()
    values = []
    for i, (seed, curve) in enumerate(curves.items()):
        colour = colours[seed] if colours else f"C{i % 10}"
        for key, style in (("val_loss", "-"), ("loss", "--")):
            ys = [float(v) for v in curve.get(key) or []]
            if ys:
                ax.plot(range(1, len(ys) + 1), ys, style, color=colour, lw=1.2)
                values += [v for v in ys if math.isfinite(v)]
    if values and min(values) > 0 and max(values) / min(values) > 30:
        ax.set_yscale("log")  # a loss falling by decades reads better on a log scale
    ax.set(xlabel="epoch", ylabel="loss", title=label[:70])
    ax.grid(color="0.9")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="0.3", ls="-", label="validation"),
        Line2D([], [], color="0.3", ls="--", label="training"),
    ]
    if colours:
        handles += [Line2D([], [], color=colours[s], label=f"seed {s}") for s in curves]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)
