"""A SIMULATED THINGS-EEG2 tree at a small share of its published shape, shared by the scale tests."""

from __future__ import annotations

import pytest

from brainalign.neural.full_size import write_things_eeg2_tree


@pytest.fixture(scope="session")
def eeg2_tree(tmp_path_factory):
    """5 concepts x 10 training images (32 px JPEGs), 2 test images, EEG at the published 4 x 17 x 100."""
    root = tmp_path_factory.mktemp("things_eeg2")
    sub = write_things_eeg2_tree(root, scale=0.003, image_size=32)
    return root, sub


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Each test its own image cache folder."""
    monkeypatch.setenv("BRAINALIGN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def nsd_tree(tmp_path_factory):
    """The SIMULATED NSD-like set at 1% (730 stimuli, one session of 750 trials, 128 nsdgeneral voxels), 16 px."""
    from brainalign.neural.full_size import write_nsd_tree

    return write_nsd_tree(tmp_path_factory.mktemp("nsd") / "nsd", scale=0.01, image_size=16)
