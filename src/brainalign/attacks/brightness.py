"""Brightness attack: add one offset in [-eps, eps] per example to every pixel, clipped to [0, 1].

theta* = argmax_{|theta - 0| <= eps} CE(f(T(x, theta)), y), found by ``_semantic.search_parameter``
(random start in the range, 10 signed-gradient steps, per-example early stop).
CAA range (Hsiung et al. 2023): [-0.2, 0.2], i.e. eps = 0.2.
"""

from __future__ import annotations

import torch

from brainalign.attacks._color import adjust_brightness
from brainalign.attacks._semantic import search_parameter
from brainalign.attacks.base import AttackInfo
from brainalign.registry import ATTACKS

IDENTITY = 0.0


def brightness_search(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10,
                      random_start: bool = True, early_stop: bool = True,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacked images and the parameter (B,) chosen for each."""
    return search_parameter(model, x, y, adjust_brightness, IDENTITY - eps, IDENTITY + eps, steps=steps,
                            random_start=random_start, early_stop=early_stop, generator=generator)


@ATTACKS.register("brightness", description="Brightness attack (CAA component, Hsiung et al. 2023)",
                  info=AttackInfo(family="semantic", parameter="brightness_delta", max_strength=1.0,
                                  reference_strength=0.2))
def brightness(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10, random_start: bool = True,
               early_stop: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    return brightness_search(model, x, y, eps, steps=steps, random_start=random_start, early_stop=early_stop,
                             generator=generator)[0]
