"""What a test needs from the machine (corpus, shipped UBM, chromium): absent, it is skipped
locally and fails under CI, where everything must be there."""

import os

import pytest


def require(condition: bool, what: str) -> None:
    """Skip (fail when ``CI`` is set) unless ``condition``; ``what`` says what is missing."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"must run in CI: {what}")
    pytest.skip(what)
