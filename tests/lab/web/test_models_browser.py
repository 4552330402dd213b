"""The /models panel used as a person would, in headless Chromium (Playwright), against a real
`gradstep lab` process on 127.0.0.1: the numbers it shows are gradstep.lab.live's (float64,
checked to 1e-9), and two tabs train at the same time, each its own model."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

import gradstep as gs
from gradstep.io import loads
from gradstep.lab.checkpoints import load_model
from gradstep.lab.experiments import windows
from gradstep.lab.live import train_live
from tests.browser import PNG_SIGNATURE, downloaded, screenshot

DONE = "() => /^done/.test(document.querySelector('#status').textContent)"


def _shown(page) -> dict:
    return {
        "epoch": int(page.text_content("#epoch-count")),
        "updates": int(page.text_content("#update-count")),
        "train_mae": float(page.get_attribute("#train-loss", "data-value")),
        "val_mae": float(page.get_attribute("#val-loss", "data-value")),
    }


def _assert_library_numbers(page, *settings):
    last = list(train_live(*settings))[-1]
    shown = _shown(page)
    assert (shown["epoch"], shown["updates"]) == (last["epoch"], last["updates"])
    assert shown["train_mae"] == pytest.approx(last["train_mae"], abs=1e-9)
    assert shown["val_mae"] == pytest.approx(last["val_mae"], abs=1e-9)
    return last


def _set(page, model, batch, lr, epochs, seed):
    page.select_option("#model", model)
    page.fill("#batch-size", str(batch))
    page.fill("#lr", str(lr))
    page.fill("#epochs", str(epochs))
    page.fill("#seed", str(seed))


def test_training_shows_the_librarys_numbers_and_exports_them(open_panel, server, tmp_path):
    p = open_panel(f"{server}/models")
    page = p.page
    assert page.input_value("#model") == "2 layers of 100 ReLU"  # the defaults
    assert page.input_value("#batch-size") == "64" and page.input_value("#lr") == "0.003"
    assert "an update is one gradient step" in page.text_content("#update-explain")
    _set(page, "1 layer of 100 ReLU", 32, 0.01, 20, 0)  # small, and it overfits by epoch 20
    page.click("#train")
    page.wait_for_function(DONE, timeout=30_000)
    last = _assert_library_numbers(page, "1 layer of 100 ReLU", 32, 0.01, 20, 0)
    assert last["overfitting"]  # the library says so, and the page names it
    assert "validation loss rising while training loss falls: overfitting" in page.text_content(
        "#status"
    )
    lengths = page.evaluate("() => document.getElementById('plot').data.map(t => t.x.length)")
    assert lengths == [20, 20]  # one point per epoch, training and validation
    q = parse_qs(urlparse(page.url).query)
    assert q == {
        "model": ["1 layer of 100 ReLU"],
        "batch_size": ["32"],
        "lr": ["0.01"],
        "epochs": ["20"],
        "seed": ["0"],
        "optimizer": ["adam"],
    }
    screenshot(page, "models", tmp_path)

    assert downloaded(page, "#export-png").startswith(PNG_SIGNATURE)
    ckpt = loads(downloaded(page, "#export-model"))
    s = ckpt["settings"]
    assert s["epochs_done"] == 20 and ckpt["architecture"]["hidden"] == [100]
    _, _, Xte, yte = windows(56)
    x = gs.tensor((Xte - s["x_mean"]) / s["x_scale"], dtype=np.float64)
    degrees = load_model(ckpt)(x).numpy()[:, 0] * s["y_std"] + s["y_mean"]
    mae = float(np.mean(np.abs(degrees - yte)))
    assert mae == pytest.approx(float(page.get_attribute("#val-loss", "data-value")), abs=1e-9)

    # a link reproduces the configuration
    again = open_panel(page.url).page
    assert again.input_value("#model") == "1 layer of 100 ReLU"
    assert again.input_value("#lr") == "0.01" and again.input_value("#epochs") == "20"
    assert p.clean()


def test_bad_input_stop_and_two_tabs_training_at_once(open_panel, server):
    p = open_panel(f"{server}/models")
    page = p.page
    page.fill("#lr", "-1")
    page.click("#train")
    page.wait_for_selector("#error:not([hidden])")
    assert "lr must be greater than 0" in page.text_content("#error")
    page.fill("#lr", "0.003")
    page.fill("#batch-size", "100000")
    page.click("#train")
    page.wait_for_function(
        "() => /number of training days/.test(document.querySelector('#error').textContent)"
    )
    assert page.text_content("#update-count") == "0" and page.text_content("#status") == "ready"

    # Stop: the stream ends where the page stopped it, and the export is the epoch shown
    _set(page, "2 layers of 100 ReLU", 64, 0.003, 1000, 0)
    page.click("#train")
    page.wait_for_function("() => Number(document.querySelector('#epoch-count').textContent) >= 2")
    page.click("#train")
    assert page.text_content("#status").startswith("stopped after epoch")
    shown = page.text_content("#epoch-count")
    time.sleep(0.5)
    assert page.text_content("#epoch-count") == shown and int(shown) < 1000
    assert loads(downloaded(page, "#export-model"))["settings"]["epochs_done"] == int(shown)

    # two tabs, two configurations, trained at the same time: each gets its own numbers
    other = open_panel(f"{server}/models").page
    a = ("linear, 7 days", 32, 0.01, 12, 1)
    b = ("1 layer of 100 ReLU", 128, 0.004, 8, 5)
    _set(page, *a)
    _set(other, *b)
    page.click("#train")
    other.click("#train")
    page.wait_for_function(DONE, timeout=30_000)
    other.wait_for_function(DONE, timeout=30_000)
    _assert_library_numbers(page, *a)
    _assert_library_numbers(other, *b)
    # the two refused requests are the only console errors (Chromium logs each 400)
    assert p.outside == [] and len(p.problems) == 2
    assert all("status of 400" in m for m in p.problems)
