"""Contrast attack: multiply every pixel by a factor in [1 - eps, 1 + eps] per example, clipped to [0, 1].

theta* = argmax_{|theta - 1| <= eps} CE(f(T(x, theta)), y), found by ``_semantic.search_parameter``
(random start in the range, 10 signed-gradient steps, per-example early stop).
As kornia's adjust_contrast that CAA uses, this is a gain, not a stretch about the mean.
CAA range (Hsiung et al. 2023): [0.7, 1.3], i.e. eps = 0.3.
"""

from __future__ import annotations

import torch

from brainalign.attacks._color import adjust_contrast
from brainalign.attacks._semantic import search_parameter
from brainalign.attacks.base import AttackInfo
from brainalign.registry import ATTACKS

IDENTITY = 1.0


def contrast_search(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10,
                    random_start: bool = True, early_stop: bool = True,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacked images and the parameter (B,) chosen for each."""
    return search_parameter(model, x, y, adjust_contrast, IDENTITY - eps, IDENTITY + eps, steps=steps,
                            random_start=random_start, early_stop=early_stop, generator=generator)


@ATTACKS.register("contrast", description="Contrast attack (CAA component, Hsiung et al. 2023)",
                  info=AttackInfo(family="semantic", parameter="contrast_delta", max_strength=1.0,
                                  reference_strength=0.3))
def contrast(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10, random_start: bool = True,
             early_stop: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    return contrast_search(model, x, y, eps, steps=steps, random_start=random_start, early_stop=early_stop,
                           generator=generator)[0]
