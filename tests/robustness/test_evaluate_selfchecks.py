"""evaluate writes the self-checks into result.json, marks the run reliable or not, and validates suites."""

from __future__ import annotations

import json

import pytest

from brainalign.config import AttackSpec
from brainalign.errors import ConfigError
from brainalign.evaluate import SUITES, evaluate_run, suite_specs
from brainalign.registry import ATTACKS
from brainalign.train import train


def test_evaluation_records_selfchecks(tiny_config):
    run = train(tiny_config(), progress=False, evaluate=False)
    attacks = [AttackSpec(name="pgd_linf", eps=[0.0, 0.1, 0.3], params={"steps": 5}),
               AttackSpec(name="cw_l2", eps=[0.0, 0.5, 1.0], params={"steps": 10, "search_steps": 2})]
    result = evaluate_run(run, attacks=attacks, progress=False)
    stored = json.loads((run / "result.json").read_text())
    assert stored["selfchecks"]["checks"].keys() == result["selfchecks"]["checks"].keys()
    assert stored["reliable"] is stored["selfchecks"]["reliable"]
    assert stored["reliable"] is True, stored["selfchecks"]["reasons"]
    cw = stored["robustness"]["cw_l2[search_steps=2,steps=10]"]
    assert cw["minimal_perturbation"]["L2"]["median"] > 0  # minimal attacks: one run, medians recorded
    assert cw["accuracy"] == sorted(cw["accuracy"], reverse=True)


def test_bad_specs_fail_before_any_attack_runs(tiny_config):
    run = train(tiny_config(), progress=False, evaluate=False)
    before = (run / "result.json").read_text()
    good = AttackSpec(name="fgsm", eps=[0.1])
    for bad in (AttackSpec(name="pgd_l2", eps=[100.0]), AttackSpec(name="hue", eps=[0.5]),
                AttackSpec(name="pgd_linf", eps=[0.1], params={"stepz": 3})):
        with pytest.raises(ConfigError):
            evaluate_run(run, attacks=[good, bad], progress=False)  # the valid attack listed first never runs
    assert (run / "result.json").read_text() == before


def test_suites_are_valid_and_drop_colour_attacks_for_grayscale():
    for name in SUITES:
        for spec in suite_specs(name, channels=1):
            assert not ATTACKS.info(spec.name).requires_color
        assert {s.name for s in suite_specs(name, channels=3)} >= {s.name for s in suite_specs(name, channels=1)}
    assert {"hue", "saturation", "recolor"} <= {s.name for s in suite_specs("standard", channels=3)}
