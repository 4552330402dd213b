"""One real `gradstep lab` process and one headless Chromium for every browser test of the lab:
started here on 127.0.0.1, stopped here by PID (Ctrl-C first, as a user would)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.browser import PanelPage, chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    """The base URL of a running ``gradstep lab --no-browser`` (the lecture's data)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradstep.cli", "lab", "--no-browser", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/surface", line)
        assert match, line
        base = f"http://127.0.0.1:{match.group(1)}"
        for _ in range(100):  # until it answers
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError("gradstep lab did not stop on Ctrl-C") from None
        assert "stopped" in out, out


@pytest.fixture(scope="session")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def open_panel(browser):
    pages = []

    def opener(url, **kwargs) -> PanelPage:
        pages.append(PanelPage(browser, url, **kwargs))
        return pages[-1]

    yield opener
    for p in pages:
        p.page.close()
