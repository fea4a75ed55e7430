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
    """``targets`` top-scoring other classes are attacked in turn (at most K - 1), and fewer targets never break
    more images."""
    from brainalign.attacks import apgd as apgd_module

    runs = []
    run = apgd_module.apgd_run

    def spy(model, x, y, eps, **kwargs):
        rank = len(runs) + 2  # the first target is the second-highest class by clean logit
        with torch.no_grad():
            runs.append(torch.equal(kwargs["target"], model(x).argsort(1)[:, -rank]))
        return run(model, x, y, eps, **kwargs)

    monkeypatch.setattr(apgd_module, "apgd_run", spy)
    x, y = digits_models.test_batch(60)
    robust, ranks = {}, {}
    for k in (1, 3, 20):
        runs.clear()
        x_adv = ATTACKS.get("apgd_t_linf")(gray_model, x, y, 0.1, steps=10, targets=k,
                                           generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            robust[k] = int((gray_model(x_adv).argmax(1) == y).sum())
        ranks[k] = len(runs)
        assert all(runs)  # each run's target: the next-ranked class by clean logit of the images it attacks
    assert ranks == {1: 1, 3: 3, 20: 9}  # 10 classes: 9 other classes at most
    assert robust[1] >= robust[3] >= robust[20]  # each target attacks only what the earlier ones left intact


def test_targets_below_one_is_refused(digits_models, gray_model):
    import pytest

    from brainalign.errors import ConfigError

    x, y = digits_models.test_batch(4)
    with pytest.raises(ConfigError, match="targets must be >= 1"):
        ATTACKS.get("apgd_t_linf")(gray_model, x, y, 0.1, steps=2, targets=0)
