"""The ../shared material beside the checkout (the method page, the CIFAR-10 subset)."""

from __future__ import annotations

import os

import pytest


def skip_unless_shared(path, what: str) -> None:
    """Skip a test whose ../shared material is absent (a checkout on its own), but fail under
    RAYSWEEP_REQUIRE_SHARED=1 (set by .ci/run, which always has ../shared beside the clone)."""
    if path.exists():
        return
    why = f"{what} is not at {path}"
    if os.environ.get("RAYSWEEP_REQUIRE_SHARED") == "1":
        pytest.fail(why)
    pytest.skip(why)
