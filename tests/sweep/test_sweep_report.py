"""A sweep's report.html: parsed back with html.parser and checked against the statistics it
shows, for an ordinary sweep and the edge cases (1 config, 1 seed, all failed, 200 configs)."""

from __future__ import annotations

import base64
import json
import os
import warnings
from html.parser import HTMLParser

import numpy as np
import pytest

from gradstep.errors import InputError
from gradstep.sweep import stats
from gradstep.sweep.report import (
    CURVES,
    FILES,
    SHOWN,
    STRIP,
    config_label,
    diff_text,
    mean_sd_text,
    varying_options,
    write_report,
)

ABOUT = {
    "data": "runs/diabetes.csv",
    "target": "target",
    "space": {"hidden": [[32], [64, 32]], "lr": [0.001, 0.01]},
    "seeds": [0, 1, 2, 3, 4],
    "executor": "process pool (2 workers)",
}


def sweep_rows(
    n_configs=4, seeds=range(5), effect=0.05, bad=None, curves=True, metric="val_rmse"
) -> list:
    """A made-up sweep: config c scores 0.5 + effect * c + the seed's luck + noise."""
    rng = np.random.default_rng(0)
    luck = {s: rng.normal(0, 0.05) for s in seeds}
    bad = bad or {}
    rows = []
    for c in range(n_configs):
        config = {"hidden": [64, 32] if c % 2 else [32], "lr": 10.0 ** -(1 + c % 3), "epochs": 20}
        for s in seeds:
            status = bad.get((c, s), "ok")
            value = 0.5 + effect * c + luck[s] + rng.normal(0, 0.01)
            row = {
                "trial_id": len(rows),
                "config_id": c,
                "config": config,
                "seed": s,
                "status": status,
                "metrics": {metric: float(value)} if status == "ok" else {},
                "message": "" if status == "ok" else f"{status}: lr {config['lr']} too large",
                "seconds": 0.5,
                "worker": "127.0.0.1:1",
            }
            if curves and status == "ok":
                n = 10 + s
                row["curve"] = {
                    "loss": list(np.linspace(2.0, value * 0.8, n)),
                    "val_loss": list(np.linspace(2.2, value, n)),
                }
            rows.append(row)
    return rows


class Page(HTMLParser):
    """The parts of report.html the tests read: tables (as lists of rows of cell text),
    images, section ids, paragraphs, and every href/src."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.images, self.sections, self.paragraphs, self.links = [], [], [], [], []
        self.tags, self._cell, self._p = [], None, None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "p":
            self._p = ""
        elif tag == "img":
            self.images.append(a)
        elif tag == "section":
            self.sections.append(a["id"])
        for key in ("href", "src"):
            if key in a:
                self.links.append(a[key])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None
        elif tag == "p" and self._p is not None:
            self.paragraphs.append(self._p)
            self._p = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._p is not None:
            self._p += data


def report(tmp_path, rows, metric="val_rmse", mode="min", about=ABOUT, name="out"):
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_report(rows, str(folder), metric, mode, "Sweep of the diabetes regressor", about)
    assert [str(w.message) for w in caught] == []  # matplotlib's included
    text = (folder / "report.html").read_text(encoding="utf-8")
    return folder, text, Page(text)


def self_contained(folder, page):
    """Every image is a PNG from the folder, embedded; nothing else is requested."""
    assert all(link.startswith(("#", "data:image/png;base64,")) for link in page.links)
    for img in page.images:
        png = base64.b64decode(img["src"].split(",", 1)[1])
        assert png.startswith(b"\x89PNG")
        assert any((folder / f).exists() and (folder / f).read_bytes() == png for f in FILES)
        assert int(img["width"]) > 0 and int(img["height"]) > 0


def narrow(page):
    """No cell holds a word (text between plain spaces, where a line may break) long enough to
    widen a table past a 360 px screen (see the browser test below)."""
    words = [w for t in page.tables for row in t for cell in row for w in cell.split(" ")]
    assert max(len(w) for w in words) <= 20


def test_the_report_shows_the_statistics(tmp_path):
    rows = sweep_rows(6, bad={(2, 1): "failed", (5, 0): "diverged", (5, 3): "diverged"})
    folder, text, page = report(tmp_path, rows)
    assert sorted(os.listdir(folder)) == sorted(FILES)  # no temporary file left behind
    assert page.sections == ["swept", "configs", "compare", "spread", "curves", "failures"]
    self_contained(folder, page)
    assert len(page.images) == 2
    summary = stats.summarize(rows, "val_rmse", "min")
    keys = varying_options([s["config"] for s in summary])
    assert keys == ["hidden", "lr"]  # epochs is the same everywhere: said once, not per row
    labels = {s["config_id"]: config_label(s["config_id"], s["config"], keys) for s in summary}
    means, comparison = page.tables
    assert means[0] == ["configuration", "seeds ok", "mean ± sd"]
    assert means[1:] == [
        [labels[s["config_id"]], f"{s['n_ok']}/5", mean_sd_text(s["mean"], s["sd"])]
        for s in summary
    ]
    assert means[1][0] == "config 0: hidden=32 lr=0.1" and summary[0]["config_id"] == 0
    assert means[3][1] == "4/5" and means[6][1] == "3/5"  # configs 2 and 5 lost trials
    compared = stats.compare(rows, "val_rmse", "min")
    assert comparison[1:] == [
        [labels[c["config_id"]], str(c["n_pairs"]), diff_text(c), c["verdict"]] for c in compared
    ]
    # effect 0.05 per config against 0.01 noise around a shared seed luck: beyond noise
    assert {c["verdict"] for c in compared} == {"better beyond seed noise"}
    c1 = compared[0]
    assert diff_text(c1) == f"{c1['diff']:+.3f} ({c1['ci_low']:.3f} to {c1['ci_high']:.3f})"
    best = summary[0]
    noise = f"Seed noise is ± {best['sd']:.3f}"
    assert any(p.startswith(noise) for p in page.paragraphs)
    assert "The same in every configuration: epochs=20." in page.paragraphs
    assert "Of the 5 other configurations: 5 behind the best beyond seed noise." in text
    # what was swept, and the failures with their messages
    assert "space: hidden: [32], [64, 32]; lr: 0.001, 0.01" in page.paragraphs
    assert "Trials in this report: 30 (27 ok, 1 failed, 2 diverged)" in text
    assert any(
        p.startswith("diverged, 2 trials: diverged: lr 0.001 too large") for p in page.paragraphs
    )
    assert "config 2 (hidden=32 lr=0.001) seed 1 (trial 11)" in text
    narrow(page)


def test_a_higher_is_better_metric_puts_the_highest_first(tmp_path):
    rows = sweep_rows(3, metric="val_r2")
    _, _, page = report(tmp_path, rows, metric="val_r2", mode=None)  # mode from the name
    means = page.tables[0]
    assert [r[0].split(":")[0] for r in means[1:]] == ["config 2", "config 1", "config 0"]
    assert page.tables[1][1][3] == "better beyond seed noise"


def test_one_configuration(tmp_path):
    folder, text, page = report(tmp_path, sweep_rows(1))
    self_contained(folder, page)
    assert len(page.tables) == 1 and len(page.tables[0]) == 2
    assert page.tables[0][1][0] == "config 0: hidden=32 lr=0.1 epochs=20"  # says what it is
    assert "There is one configuration: nothing to compare it with." in page.paragraphs
    assert len(page.images) == 2


def test_one_seed(tmp_path):
    folder, text, page = report(tmp_path, sweep_rows(3, seeds=[4]))
    self_contained(folder, page)
    assert [r[1] for r in page.tables[0][1:]] == ["1/1"] * 3
    assert [r[3] for r in page.tables[1][1:]] == ["too few seeds to tell"] * 2
    assert any("its seed noise cannot be measured" in p for p in page.paragraphs)
    assert "3 configurations × 1 seed: 3 trials" in text


def test_every_trial_failed(tmp_path):
    bad = {(c, s): "failed" if c else "diverged" for c in range(3) for s in range(5)}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / STRIP).write_bytes(b"an earlier report's figure")
    (tmp_path / "out" / ".gradstep.json").write_text(
        json.dumps({"kind": "sweep", "files": [STRIP, "report.html"]})
    )
    folder, text, page = report(tmp_path, sweep_rows(3, bad=bad))
    assert page.sections == ["swept", "results", "failures"]
    assert page.images == [] and page.tables == []
    # the stale figure the marker says gradstep wrote went with it
    assert sorted(os.listdir(folder)) == [".gradstep.json", "report.html"]
    assert any(
        p.startswith("No trial finished with a value of val_rmse: all 15") for p in page.paragraphs
    )
    assert "15 of 15 trials have no score (10 failed, 5 diverged)" in text
    assert "failed, 5 trials: failed: lr 0.01 too large" in text
    assert "paired comparison below" not in text


def test_no_trials_yet(tmp_path):
    _, _, page = report(tmp_path, [])
    assert "The sweep has no trials yet." in page.paragraphs


def test_two_hundred_configurations_stay_readable(tmp_path):
    rows = sweep_rows(200, seeds=range(3), effect=0.001, curves=False)
    for r in rows:  # a long list of feature names, cut short in the tables
        names = ["age"] if r["config_id"] == 0 else ["age", "sex", "bmi", "bp", "s1", "s2"]
        r["config"] = {**r["config"], "features": names}
    folder, text, page = report(tmp_path, rows)
    self_contained(folder, page)
    means, comparison = page.tables
    assert len(means) == 1 + SHOWN and len(comparison) == SHOWN  # the best 30 (29 + the best)
    assert "The table shows the best 30 of 200 configurations; 170 more are not shown" in text
    assert "the counts above cover all 199" in text
    (strip,) = [img for img in page.images]  # no curves were recorded
    assert int(strip["height"]) < 1400  # 30 rows, not 200
    assert "recorded no learning curve" in text and not (folder / CURVES).exists()
    assert any(r[0].endswith("features=age,sex,…") for r in means[1:])
    narrow(page)


def test_user_text_is_escaped(tmp_path):
    about = {"data": "<script>alert(1)</script>.csv", "target": "a&b"}
    _, text, page = report(tmp_path, sweep_rows(2), about=about)
    assert "<script>" not in text and "script" not in page.tags
    assert "data: <script>alert(1)</script>.csv" in page.paragraphs  # shown, as text


def test_a_metric_without_a_known_direction_needs_a_mode(tmp_path):
    with pytest.raises(InputError, match="metric 'epochs_run'"):
        write_report(sweep_rows(2), str(tmp_path), "epochs_run", None, "t", {})
    with pytest.raises(InputError, match="mode 'best'"):
        write_report(sweep_rows(2), str(tmp_path), "val_rmse", "best", "t", {})
    assert os.listdir(tmp_path) == []


def test_the_tables_fit_a_phone_in_a_real_browser(tmp_path):
    from tests.browser import chromium

    rows = sweep_rows(40, seeds=range(3), bad={(3, 1): "diverged"})
    for r in rows:
        r["config"] = {
            **r["config"],
            "features": ["age", "sex", "bmi", "bp", "s1", "s2"][: 1 + r["config_id"] % 6],
        }
    folder, _, _ = report(tmp_path, rows)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 360, "height": 800})
        page.goto((folder / "report.html").as_uri())
        tables = page.evaluate(
            "() => [...document.querySelectorAll('table')]"
            ".map(t => [t.scrollWidth, t.parentElement.clientWidth])"
        )
        assert len(tables) == 2 and all(w <= room for w, room in tables), tables
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        page.close()


def test_a_users_file_named_like_a_figure_is_never_removed(tmp_path):
    """Without gradstep's marker listing it, a file named as a figure is the user's."""
    bad = {(c, s): "failed" for c in range(2) for s in range(2)}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / CURVES).write_bytes(b"my own plot")
    folder, _, _ = report(tmp_path, sweep_rows(2, seeds=range(2), bad=bad))
    assert (folder / CURVES).read_bytes() == b"my own plot"
