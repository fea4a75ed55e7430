"""The headline attack runs APGD-T only on the images APGD-CE leaves intact (AutoAttack's sequence)."""

from __future__ import annotations

import torch

from brainalign.registry import ATTACKS


def _robust(model, x, y, name: str, seed: int = 0) -> torch.Tensor:
    x_adv = ATTACKS.get(name)(model, x, y, 0.1, steps=20, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def test_combined_attack_is_the_worst_case_of_its_two_parts(digits_models, gray_model):
    model = gray_model
    x, y = digits_models.test_batch(120)
    ce = _robust(model, x, y, "apgd_ce_linf")
    t = _robust(model, x, y, "apgd_t_linf")
    both = _robust(model, x, y, "apgd_ce_t_linf")
    # Its APGD-CE stage is APGD-CE under the same seed, so it never keeps an image APGD-CE breaks.
    assert not (both & ~ce).any()
    # Its APGD-T stage then breaks what APGD-T alone breaks among those images (random starts may differ on a
    # few images, hence the margin of 2 of 120).
    assert int(both.sum()) <= int((ce & t).sum()) + 2


class _Saturated(torch.nn.Module):
    """Logits x 1e4: softmax saturates, so cross-entropy's gradient vanishes while DLR (scale-free) still works."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x) * 1e4


def test_the_apgd_t_stage_breaks_what_apgd_ce_misses(digits_models, gray_model):
    model = _Saturated(gray_model)
    x, y = digits_models.test_batch(60)
    ce = _robust(model, x, y, "apgd_ce_linf")
    both = _robust(model, x, y, "apgd_ce_t_linf")
    assert not (both & ~ce).any()
    assert int(both.sum()) < int(ce.sum())


def test_apgd_t_attacks_the_number_of_targets_it_is_given(digits_models, gray_model, monkeypatch):
    """``targets`` reaches pyautoattack (at most K - 1 classes) and fewer targets never break more images."""
    from pyautoattack import AutoAttack

    seen = []
    run = AutoAttack.run_standard_evaluation

    def spy(self, *args, **kwargs):
        seen.append(self.apgd_targeted.n_target_classes)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(AutoAttack, "run_standard_evaluation", spy)
    x, y = digits_models.test_batch(60)
    robust = {}
    for k in (1, 3, 20):
        x_adv = ATTACKS.get("apgd_t_linf")(gray_model, x, y, 0.1, steps=10, targets=k,
                                           generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            robust[k] = int((gray_model(x_adv).argmax(1) == y).sum())
    assert seen == [1, 3, 9]  # 10 classes: 9 other classes at most
    assert robust[1] >= robust[3] - 2 and robust[3] >= robust[20] - 2  # more targets: as strong or stronger


def test_targets_below_one_is_refused(digits_models, gray_model):
    import pytest

    from brainalign.errors import ConfigError

    x, y = digits_models.test_batch(4)
    with pytest.raises(ConfigError, match="targets must be >= 1"):
        ATTACKS.get("apgd_t_linf")(gray_model, x, y, 0.1, steps=2, targets=0)
