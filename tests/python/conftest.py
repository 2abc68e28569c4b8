"""Shared pytest fixtures for the Python checks (scripts/test.sh runs them with $ENDFACE_BIN)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def endface_bin() -> Path:
    """The endface binary: $ENDFACE_BIN, else the newer of target/debug/endface and
    target/release/endface (an older one would test code that has since changed); skips the test
    without one."""
    env = os.environ.get("ENDFACE_BIN")
    if env and Path(env).is_file():
        return Path(env)
    built = [p for p in (ROOT / "target" / "debug" / "endface", ROOT / "target" / "release" / "endface")
             if p.is_file()]
    if built:
        return max(built, key=lambda p: p.stat().st_mtime)
    pytest.skip("no endface binary: set ENDFACE_BIN (scripts/test.sh does)")
