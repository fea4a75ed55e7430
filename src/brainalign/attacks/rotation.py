"""Rotation attack: rotate about the image centre by an angle in [-eps, eps] degrees per example.

theta* = argmax_{|theta - 0| <= eps} CE(f(T(x, theta)), y), found by ``_semantic.search_parameter``
(random start in the range, 10 signed-gradient steps, per-example early stop).
Bilinear resampling, zeros outside the image.
CAA range (Hsiung et al. 2023): [-10, 10] degrees.
"""

from __future__ import annotations

import torch

from brainalign.attacks._color import rotate
from brainalign.attacks._semantic import search_parameter
from brainalign.attacks.base import AttackInfo
from brainalign.registry import ATTACKS

IDENTITY = 0.0


def rotation_search(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10,
                    random_start: bool = True, early_stop: bool = True,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacked images and the parameter (B,) chosen for each."""
    return search_parameter(model, x, y, rotate, IDENTITY - eps, IDENTITY + eps, steps=steps,
                            random_start=random_start, early_stop=early_stop, generator=generator)


@ATTACKS.register("rotation", description="Rotation attack (CAA component, Hsiung et al. 2023)",
                  info=AttackInfo(family="semantic", parameter="degrees", max_strength=180.0,
                                  reference_strength=10.0))
def rotation(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10, random_start: bool = True,
             early_stop: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    return rotation_search(model, x, y, eps, steps=steps, random_start=random_start, early_stop=early_stop,
                           generator=generator)[0]
