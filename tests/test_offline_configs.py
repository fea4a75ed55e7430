"""The offline twins in configs/offline/: one per paper config, on digits and a simulated recording, with the
paper config's regularizer except the differences their header states, and each trains as-is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brainalign.cli import main
from brainalign.config import load_config
from brainalign.registry import NEURAL_LOADERS

CONFIGS = Path(__file__).parents[1] / "configs"
PAPERS = sorted(CONFIGS.glob("*20[12][0-9]_*.yaml"))
TWINS = sorted((CONFIGS / "offline").glob("*.yaml"))

# The stated differences in each twin's regularizer, beyond data, model, schedule and the recording:
# parameters the twin adds or changes (name -> value in the twin), and weights. Anything else must equal the
# paper config.
PARAM_CHANGES: dict[str, dict[str, object]] = {
    "shao2024_nsd_guidance": {"region": "V1"},  # sim_fmri's V1 ROI instead of NSD's prf-visualrois V1v + V1d
}
WEIGHT_CHANGES: dict[str, float] = {
    "nassar2020_spectral": 0.01,  # b = 1 collapses fc on digits with the paper's detached anchor (chance)
}
# The simulated stand-in of each paper recording (the one its paper config's header names).
STAND_IN = {"brainio": "sim_it", "things_eeg2": "sim_eeg", "sinz_static": "sim_v1", "cadena2019": "sim_v1",
            "nsd": "sim_fmri"}


def test_every_paper_config_has_an_offline_twin():
    assert {p.name for p in TWINS} == {p.name for p in PAPERS}


@pytest.mark.parametrize("paper", PAPERS, ids=lambda p: p.stem)
def test_twin_runs_offline_with_the_papers_regularizer(paper):
    twin_path = CONFIGS / "offline" / paper.name
    text = twin_path.read_text()
    assert "OFFLINE TWIN of" in text and "What differs from the paper" in text
    twin, orig = load_config(twin_path), load_config(paper)
    assert twin.data.name == "digits" and twin.data.root is None
    assert len(twin.regularizers) == len(orig.regularizers)
    changes = PARAM_CHANGES.get(paper.stem, {})
    for mine, theirs in zip(twin.regularizers, orig.regularizers, strict=True):
        weight = WEIGHT_CHANGES.get(paper.stem, theirs.weight)
        assert (mine.name, mine.weight, mine.control) == (theirs.name, weight, theirs.control)
        expected = {**theirs.params, **changes}
        assert mine.params == expected
        if theirs.recording is None:
            assert mine.recording is None
            continue
        assert mine.recording is not None and mine.recording.path is None
        assert mine.recording.name == STAND_IN[theirs.recording.name]
        assert NEURAL_LOADERS.info(mine.recording.name).simulated
        if "SIMULATED" not in text:
            pytest.fail(f"{twin_path.name} uses a simulated recording but its header does not say SIMULATED")


TINY = ["--set", "train.epochs=1", "--set", "data.max_train=200", "--set", "eval.n_examples=20",
        "--set", "eval.selfcheck_examples=10", "--set", "train.threads=1",
        "--set", "eval.attacks=[{name: pgd_linf, eps: [0.0, 0.1], params: {steps: 2}}]"]


@pytest.mark.slow
@pytest.mark.parametrize("twin", TWINS, ids=lambda p: p.stem)
def test_twin_trains_as_is(twin, tmp_path):
    """The twin itself, only shorter (1 epoch, 200 training images, one tiny attack): about 10-50 s each."""
    assert main(["train", str(twin), "--set", f"out_dir={tmp_path}", *TINY]) == 0
    config = load_config(twin)
    result = json.loads((tmp_path / config.experiment / f"{config.name}__seed{config.seed}" / "result.json")
                        .read_text())
    assert result["epochs"] == 1 and 0.0 <= result["clean_accuracy"] <= 1.0
    assert result["simulated_data"] is any(r.recording is not None for r in config.regularizers)
