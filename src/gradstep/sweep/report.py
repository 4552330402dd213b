"""A sweep's report.html: mean ± sd per configuration, the best against each other one over
the same seeds, every seed's score as a strip plot, and the best's learning curves.

It is laid out by the lecture report's template (:func:`gradstep.lab.report.render_html`), so
the two read alike and the page is one self-contained file (the PNGs are data URIs in it and
also lie beside it). Tables stay narrow enough for a 360 px phone: configurations are written
with only the options that differ between them, and long sweeps show their best 30.
"""

from __future__ import annotations

import contextlib
import json
import math
import os

from gradstep.io import atomic_write_bytes
from gradstep.sweep import stats
from gradstep.sweep.report_figures import plot_curves, plot_strip, seed_colours
from gradstep.sweep.report_text import (
    config_label,
    diff_text,
    mean_sd_text,
    num,
    two_digits,
    value_text,
    varying_options,
)

SHOWN = 30  # configurations in the tables and the strip plot; the rest are counted
STRIP, CURVES = "sweep_spread.png", "sweep_best_curves.png"
FILES = ("report.html", STRIP, CURVES)  # what write_report may write into its folder


def _prose(label: str) -> str:
    """A table's label in a sentence: "config 3: lr=0.01" -> "config 3 (lr=0.01)"."""
    head, _, rest = label.partition(": ")
    return f"{head} ({rest})" if rest else head


def _about_text(v) -> str:
    """A value of ``about`` in words: {"lr": [0.001, 0.01]} -> "lr: 0.001, 0.01"."""
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_about_text(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_about_text(x) if isinstance(x, dict) else _bracketed(x) for x in v)
    return _bracketed(v)


def _bracketed(v) -> str:
    if isinstance(v, (list, tuple)):  # a list inside a list keeps its brackets: [32], [64, 32]
        return "[" + ", ".join(_bracketed(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _counts(rows: list[dict]) -> dict[str, int]:
    out = {"ok": 0, "failed": 0, "diverged": 0}
    for r in rows:
        out[r.get("status", "failed")] = out.get(r.get("status", "failed"), 0) + 1
    return out


def _noise_sentence(top: dict, metric: str) -> str:
    if top["sd"] is None:
        return (
            f"The best configuration finished one seed, so its seed noise cannot be measured: "
            f"run more seeds before trusting any difference in {metric}."
        )
    return (
        f"Seed noise is ± {two_digits(top['sd'])} (the sd of the best configuration's {metric} "
        f"over its {top['n_ok']} seeds, from {num(top['min'])} to {num(top['max'])}). A gap "
        "between two means smaller than this may be the seeds' luck; the paired comparison "
        "below tells, since a seed's luck that every configuration shares cancels in pairs."
    )


def _configs_section(summary, labels, metric, mode, constant) -> dict:
    better = "lower" if mode == "min" else "higher"
    shown = summary[:SHOWN]
    top = summary[0]
    score = mean_sd_text(top["mean"], top["sd"]) + (" (one seed)" if top["sd"] is None else "")
    paragraphs = [
        f"The mean of {metric} over the seeds each configuration finished, ± the standard "
        "deviation over those seeds"
        + (
            f", best first ({better} is better). The best is "
            f"{_prose(labels[top['config_id']])} with {score}."
            if len(summary) > 1
            else f": {_prose(labels[top['config_id']])} scores {score}."
        ),
        _noise_sentence(top, metric),
    ]
    if constant:
        paragraphs.append(f"The same in every configuration: {constant}.")
    rows = [
        [
            labels[s["config_id"]],
            f"{s['n_ok']}/{s['n_ok'] + s['n_failed']}",
            mean_sd_text(s["mean"], s["sd"]),
        ]
        for s in shown
    ]
    if len(summary) > SHOWN:
        paragraphs.append(
            f"The table shows the best {SHOWN} of {len(summary)} configurations; "
            f"{len(summary) - SHOWN} more are not shown (trials.csv has every trial)."
        )
    return {
        "id": "configs",
        "title": "Mean ± sd per configuration",
        "paragraphs": paragraphs,
        "tables": [
            {
                "caption": f"{metric} per configuration, best first",
                "header": ["configuration", "seeds ok", "mean ± sd"],
                "rows": rows,
            }
        ],
    }


def _compare_section(comparisons, labels, metric, mode, best_id) -> dict:
    if not comparisons:
        return {
            "id": "compare",
            "title": "The best against the others, seed by seed",
            "paragraphs": ["There is one configuration: nothing to compare it with."],
        }
    counts = {v: 0 for v in stats.VERDICTS}
    for c in comparisons:
        counts[c["verdict"]] += 1
    said = {
        "better beyond seed noise": "behind the best beyond seed noise",
        "within seed noise": "within seed noise of the best",
        "worse beyond seed noise": "ahead of the best beyond seed noise on the paired seeds",
        "too few seeds to tell": "with too few paired seeds to tell",
    }
    tally = "; ".join(f"{n} {said[v]}" for v, n in counts.items() if n)
    paragraphs = [
        f"Each row pairs a configuration with the best, {_prose(labels[best_id])}, on the seeds "
        "both finished (the same seed is the same split and the same initial weights) and gives "
        f"the mean of other − best in {metric}, with its 95% confidence interval from Student's t. "
        "An interval that contains 0 is within seed noise: these seeds cannot tell the two "
        "apart.",
        f"Of the {len(comparisons)} other configurations: {tally}.",
    ]
    runner_up = comparisons[0]
    paragraphs.append(f"The runner-up: {runner_up['sentence']}")
    if len(comparisons) > 1:
        paragraphs.append(
            f"The best was picked as the best of {len(comparisons) + 1} on these same seeds, "
            "which flatters it: a gap just beyond the noise deserves a rerun on new seeds."
        )
    rows = []
    for c in comparisons[: SHOWN - 1]:
        rows.append([labels[c["config_id"]], str(c["n_pairs"]), diff_text(c), c["verdict"]])
    if len(comparisons) > SHOWN - 1:
        paragraphs.append(
            f"The table shows the {SHOWN - 1} configurations after the best; the counts above "
            f"cover all {len(comparisons)}."
        )
    return {
        "id": "compare",
        "title": "The best against the others, seed by seed",
        "paragraphs": paragraphs,
        "tables": [
            {
                "caption": f"other − best in {metric}, paired over n seeds (95% CI)",
                "header": ["configuration", "n", "other − best (95% CI)", "the best is"],
                "rows": rows,
            }
        ],
    }


def _lucky_seed(summary) -> str | None:
    """A note when one seed gives the best score of most configurations ("Seed 3 gives the best
    score of 8 of the 10 ..."): then the split, more than the configuration, decides who looks
    best."""
    winners: dict[int, int] = {}
    ranked = [s for s in summary if s["n_ok"] >= 2]
    for s in ranked:
        seed = min(s["values"], key=s["values"].get)  # lowest is best (see _flipped)
        winners[seed] = winners.get(seed, 0) + 1
    if len(ranked) < 2 or not winners:
        return None
    seed, n = max(winners.items(), key=lambda kv: (kv[1], -kv[0]))
    if n < max(2, math.ceil(len(ranked) / 2)):
        return None
    return (
        f"Seed {seed} gives the best score of {n} of the {len(ranked)} configurations with two "
        "or more seeds: part of every score is the seed's luck, shared by all configurations, "
        "which is why the comparison above pairs scores by seed."
    )


def _spread_section(summary, labels, metric, mode, colours, folder) -> dict:
    shown = [s for s in summary[:SHOWN] if s["mean"] is not None]
    plot_strip(
        shown, [labels[s["config_id"]] for s in shown], metric, mode, colours,
        os.path.join(folder, STRIP),
    )  # fmt: skip
    notes = [
        "Each dot is one seed's score; the black bar is the configuration's mean and the dashed "
        "line the best's mean. Configurations whose dots overlap the best's are not told apart "
        "by these seeds."
    ]
    if colours:
        notes.append("Each seed has one colour in every row, so a seed that is lucky for every "
                     "configuration shows as one colour at the same end of each row.")  # fmt: skip
    lucky = _lucky_seed(summary if mode == "min" else _flipped(summary))
    if lucky:
        notes.append(lucky)
    if len(summary) > len(shown):
        notes.append(
            f"The best {len(shown)} of {len(summary)} configurations are shown "
            "(configurations without a finished trial have no dots)."
        )
    return {
        "id": "spread",
        "title": "Every seed of every configuration",
        "paragraphs": [],
        "figures": [
            {
                "file": STRIP,
                "caption": f"{metric} per seed, best configuration at the top",
                "notes": notes,
            }
        ],
    }


def _flipped(summary):
    """The summary with values negated, so that "lowest is best" holds for a "max" metric."""
    return [{**s, "values": {k: -v for k, v in s["values"].items()}} for s in summary]


def _curves_section(rows, top, label, colours, folder) -> dict:
    curves = {
        r["seed"]: r["curve"]
        for r in sorted(rows, key=lambda r: r["seed"])
        if r["config_id"] == top["config_id"]
        and r.get("status") == "ok"
        and any((r.get("curve") or {}).get(k) for k in ("loss", "val_loss"))
    }
    section = {"id": "curves", "title": "Learning curves of the best", "paragraphs": []}
    if not curves:
        section["paragraphs"] = [f"The trials of {label} recorded no learning curve."]
        return section
    plot_curves(curves, label, colours, os.path.join(folder, CURVES))
    notes = [
        "Validation loss solid, training loss dashed, one colour per seed. Curves that end at "
        "different epochs stopped early at different points; a validation curve that turns up "
        "while training loss keeps falling is overfitting."
    ]
    section["figures"] = [{"file": CURVES, "caption": f"Loss per epoch of {label}", "notes": notes}]
    return section


def _failures_section(rows, labels, metric) -> dict:
    bad = [r for r in rows if stats.metric_value(r, metric) is None]
    section = {"id": "failures", "title": "Failed and diverged trials", "paragraphs": []}
    if not bad:
        section["paragraphs"] = ["None: every trial finished with a value."]
        return section
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(bad, key=lambda r: (r["config_id"], r["seed"])):
        status = r.get("status", "failed")
        message = (r.get("message") or "").strip() or "(no message)"
        if status == "ok":
            status, message = "ok", f"finished without a finite value of {metric}"
        message = message if len(message) <= 400 else message[:399] + "…"
        groups.setdefault((status, message), []).append(r)
    counts = _counts(bad)
    said = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    paragraphs = [f"{len(bad)} of {len(rows)} trials have no score ({said}); grouped by message:"]
    for (status, message), members in list(groups.items())[:SHOWN]:
        where = "; ".join(
            f"{_prose(labels[r['config_id']])} seed {r['seed']} (trial {r['trial_id']})"
            for r in members[:5]
        )
        more = f" and {len(members) - 5} more" if len(members) > 5 else ""
        n = len(members)
        paragraphs.append(f"{status}, {n} trial{'s' if n > 1 else ''}: {message} — {where}{more}.")
    if len(groups) > SHOWN:
        paragraphs.append(f"{len(groups) - SHOWN} more messages are in trials.csv.")
    section["paragraphs"] = paragraphs
    return section


def report_sections(rows: list[dict], folder: str, metric: str, mode: str, about: dict):
    """The report's sections (see :func:`gradstep.lab.report.render_html`), drawing the
    figures into ``folder``; also returns the lead paragraph."""
    summary = stats.summarize(rows, metric, mode)
    configs = {s["config_id"]: s["config"] for s in summary}
    keys = varying_options(list(configs.values()))
    if not keys and len(configs) == 1:
        keys = list(next(iter(configs.values())))  # one config: say what it is
    labels = {cid: config_label(cid, c, keys) for cid, c in configs.items()}
    first = next(iter(configs.values()), {})
    constant = " ".join(f"{k}={value_text(v)}" for k, v in first.items() if k not in keys)
    seeds = sorted({r["seed"] for r in rows})
    counts = _counts(rows)
    better = "lower" if mode == "min" else "higher"
    lead = (
        f"{_plural(len(configs), 'configuration')} × {_plural(len(seeds), 'seed')}: "
        f"{_plural(len(rows), 'trial')}, scored by {metric} ({better} is better)."
    )
    if len(configs) > 1 and counts["ok"]:
        lead += (
            " A configuration is better only if it beats the others by more than the seed "
            "noise; the paired comparison below says which do."
        )
    swept = {
        "id": "swept",
        "title": "What was swept",
        "paragraphs": [
            *(f"{k}: {_about_text(v)}" for k, v in about.items()),
            f"Trials in this report: {len(rows)} ({counts['ok']} ok, {counts['failed']} failed, "
            f"{counts['diverged']} diverged), {_plural(len(configs), 'configuration')}, seeds "
            f"{', '.join(map(str, seeds))}; "
            f"{sum(float(r.get('seconds') or 0) for r in rows):.1f} s of training in all.",
        ],
    }
    if not summary or summary[0]["mean"] is None:
        nothing = {
            "id": "results",
            "title": "No results",
            "paragraphs": [
                f"No trial finished with a value of {metric}: all {len(rows)} failed or diverged, "
                "so there is nothing to rank or compare. Their messages are below; fix the "
                "cause (a learning rate too large, a wrong column name) and run the sweep again."
                if rows
                else "The sweep has no trials yet."
            ],
        }
        return [swept, nothing, _failures_section(rows, labels, metric)], lead
    top = summary[0]
    colours = seed_colours(seeds)
    comparisons = stats.compare(rows, metric, mode)
    return [
        swept,
        _configs_section(summary, labels, metric, mode, constant),
        _compare_section(comparisons, labels, metric, mode, top["config_id"]),
        _spread_section(summary, labels, metric, mode, colours, folder),
        _curves_section(rows, top, labels[top["config_id"]], colours, folder),
        _failures_section(rows, labels, metric),
    ], lead


def _written_by_gradstep(folder: str) -> set:
    """The files the folder's marker (:mod:`gradstep.paths`) says gradstep wrote there."""
    from gradstep.paths import MARKER

    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            return set(json.load(f).get("files", []))
    except (OSError, ValueError, AttributeError, TypeError):
        return set()


def write_report(
    rows: list[dict],
    folder: str,
    metric: str,
    mode: str | None = None,
    title: str = "Sweep report",
    about: dict | None = None,
) -> None:
    """Write ``report.html`` and its figures (:data:`FILES`) into ``folder``.

    Parameters
    ----------
    rows : list of dict
        The sweep's trial rows (see :mod:`gradstep.sweep.stats`); a row's ``curve`` (``loss``
        and ``val_loss`` per epoch) is drawn for the best configuration when present.
    folder : str
        An existing folder the caller owns (the sweep's ``--out``); each file is written
        atomically, so a reader never sees half a report.
    metric : str
        The metric that ranks the configurations.
    mode : {"min", "max"}, optional
        Whether smaller or larger is better; by default from the metric's name
        (:func:`gradstep.sweep.stats.metric_mode`).
    title : str
        The page's heading.
    about : dict, optional
        What was swept, shown as "key: value" lines: data file, target, space, seeds,
        executor...
    """
    mode = stats.metric_mode(metric) if mode is None else stats.check_mode(mode)
    from gradstep.lab.report import render_html  # the lecture report's layout, shared

    sections, lead = report_sections(rows, folder, metric, mode, dict(about or {}))
    drawn = {f["file"] for s in sections for f in s.get("figures") or []}
    for stale in (STRIP, CURVES):  # a figure of an earlier report that this one lacks,
        # removed only where the folder's gradstep marker lists it: a user's file of that
        # name is never touched
        if stale not in drawn and stale in _written_by_gradstep(folder):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, stale))
    html = render_html(
        sections,
        folder,
        title=title,
        lead=lead,
        command="gradstep sweep",
        footer="Every trial is in trials.csv; the figures are beside this file as PNGs.",
    )
    atomic_write_bytes(os.path.join(folder, "report.html"), html.encode("utf-8"))
