"""Shared pytest fixtures for the Python checks (scripts/test.sh runs them with $ENDFACE_BIN)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def endface_bin() -> Path:
    """The endface binary: $ENDFACE_BIN, else target/debug/endface; skips the test without one."""
    for p in (os.environ.get("ENDFACE_BIN"), ROOT / "target" / "debug" / "endface"):
        if p and Path(p).is_file():
            return Path(p)
    pytest.skip("no endface binary: set ENDFACE_BIN (scripts/test.sh does)")
