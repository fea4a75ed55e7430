"""configs/sweep_population.yaml: a population of at least 60 models that `brainalign sweep` accepts and
`brainalign study` can read with the one headline."""

from __future__ import annotations

from pathlib import Path

from brainalign.headline import HEADLINE_ATTACKS, threat_model
from brainalign.sweep import load_sweep

SWEEP = Path(__file__).resolve().parents[2] / "configs" / "sweep_population.yaml"


def test_population_sweep_has_60_models_and_the_headline_attacks():
    sweep = load_sweep(SWEEP)
    assert len(sweep.trials) >= 60
    names = {t.config.name for t in sweep.trials}
    assert "w0-stdtrue-fixed" in names  # the baseline the docs pass to `brainalign study --baseline`
    regularized = [t for t in sweep.trials if t.config.regularizers[0].weight > 0]
    assert len(regularized) >= 48 and len({t.config.name for t in regularized}) >= 16
    eps = threat_model("digits").eps
    for trial in sweep.trials:
        attacks = {a.name: a for a in trial.config.eval.attacks}
        assert all(name in attacks and eps in attacks[name].eps for name in HEADLINE_ATTACKS)
        assert trial.config.regularizers[0].recording.options["preset"] == "things_eeg2"
