"""The same session fixtures as tests/attacks (one trained copy of each model per session)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "attacks"))
import digits_models as helpers  # noqa: E402


@pytest.fixture(scope="session")
def digits_models():
    return helpers


@pytest.fixture(scope="session")
def gray_model():
    return helpers.gray_model(0)
