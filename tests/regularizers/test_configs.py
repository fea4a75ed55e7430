"""The paper configs under configs/ parse, name registered regularizers, and give them valid parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from brainalign.config import load_config
from brainalign.registry import REGULARIZERS
from brainalign.regularizers import _construct
from brainalign.regularizers.targets import PIXEL_OPTIONS, TARGET_OPTIONS, TargetOptions, split_params

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*20[12][0-9]_*.yaml"))


def test_there_is_a_config_per_paper():
    names = {p.name.split("_")[0] for p in CONFIGS}
    assert names >= {"li2019", "attias2024", "safarani2021", "guo2024", "shao2024", "dapello2023", "nassar2020",
                     "pirlot2022"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_paper_config_is_valid_and_says_what_differs(path):
    config = load_config(path)
    assert "What differs here" in path.read_text()
    assert config.regularizers
    for spec in config.regularizers:
        info = REGULARIZERS.info(spec.name)
        opts, params = split_params(spec.params)
        assert set(opts) <= set(TARGET_OPTIONS if info.target == "recording" else PIXEL_OPTIONS)
        TargetOptions(**opts)
        reg = _construct(spec.name, REGULARIZERS.get(spec.name), params, config.train.reg_batch_size)
        if reg.transforms_ce:
            assert spec is config.regularizers[0] and spec.weight == 1.0
        assert (spec.recording is not None) == (info.target == "recording")
