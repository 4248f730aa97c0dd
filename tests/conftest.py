"""Shared fixtures: where the real LLaVA records live, and a skip when they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from code_coverage import pytest_sessionfinish  # noqa: F401 - the catalogue coverage check

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """`../shared/realdata` beside the project root; tests using it skip when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present")
    return REALDATA
