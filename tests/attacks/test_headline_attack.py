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
