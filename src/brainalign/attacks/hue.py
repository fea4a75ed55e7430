"""Hue attack: rotate every pixel's HSV hue by one angle per example, in [-eps, eps] radians.

theta* = argmax_{|theta - 0| <= eps} CE(f(T(x, theta)), y), found by ``_semantic.search_parameter``
(random start in the range, 10 signed-gradient steps, per-example early stop).
CAA range (Hsiung et al. 2023): [-pi, pi].
Undefined on grayscale images: a ConfigError says so.
"""

from __future__ import annotations

import math

import torch

from brainalign.attacks._color import adjust_hue
from brainalign.attacks._semantic import search_parameter
from brainalign.attacks.base import AttackInfo
from brainalign.registry import ATTACKS

IDENTITY = 0.0


def hue_search(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10,
               random_start: bool = True, early_stop: bool = True,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacked images and the parameter (B,) chosen for each."""
    return search_parameter(model, x, y, adjust_hue, IDENTITY - eps, IDENTITY + eps, steps=steps,
                            random_start=random_start, early_stop=early_stop, generator=generator)


@ATTACKS.register("hue", description="Hue attack (CAA component, Hsiung et al. 2023)",
                  info=AttackInfo(family="semantic", parameter="hue_radians", max_strength=math.pi,
                                  reference_strength=math.pi, requires_color=True))
def hue(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10, random_start: bool = True,
        early_stop: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    return hue_search(model, x, y, eps, steps=steps, random_start=random_start, early_stop=early_stop,
                      generator=generator)[0]
