import os

from hypothesis import HealthCheck, settings

# CI runs a fixed, derandomized set of examples; locally "dev" explores more.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_sessionfinish(session, exitstatus):
    """Stop the one headless Chromium the browser tests share (tests/browser.py)."""
    import sys

    browser = sys.modules.get("tests.browser")
    if browser is not None:
        browser.close_shared()
