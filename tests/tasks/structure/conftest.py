"""Shared fixtures of the structuring tests."""

from __future__ import annotations

import pytest

from tasks.structure import llm_dialects


@pytest.fixture(autouse=True)
def _fresh_dialect_memory():
    """Each test's servers start unknown: ephemeral ports repeat, and what one fake accepted is no rule."""
    llm_dialects.forget_accepted()
    yield
    llm_dialects.forget_accepted()
