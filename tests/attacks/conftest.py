"""Session fixtures: tiny CNNs trained for a second or two on the 8x8 digits (nothing cached on disk)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import digits_models as helpers  # noqa: E402


@pytest.fixture(scope="session")
def digits_models():
    """The helper module: ``gray_model(seed)``, ``rgb_model(seed)``, ``test_batch(n, rgb)``, ``Quantize``, ..."""
    return helpers


@pytest.fixture(scope="session")
def gray_model():
    return helpers.gray_model(0)


@pytest.fixture(scope="session")
def surrogate_model():
    """A second grayscale CNN (another seed): the source of the transfer attacks."""
    return helpers.gray_model(1)


@pytest.fixture(scope="session")
def rgb_model():
    return helpers.rgb_model(0)
