"""Shared test fixtures: the ../shared data folder (skip when absent) and hypothesis profiles.

Profiles: `ci` (default, used by `make test`) keeps the property suite short; `thorough`
runs many more examples: `HYPOTHESIS_PROFILE=thorough make test`.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from helpers import SHARED

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout; tests using it skip cleanly on a fresh clone."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (public research data is not part of the repository)")
    return SHARED
