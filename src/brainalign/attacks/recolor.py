"""Smooth perceptual colour attack, in the spirit of ReColorAdv (Laidlaw & Feizi, NeurIPS 2019).

Stands in for cAdv (Bhattad et al. 2020), whose colourization network cannot ship here. Every colour is
moved by one smooth function of colour, not per pixel:

    x' = lab_to_rgb(lab(x) + 100 * g(x)),   g(c) = trilinear interpolation at c of offsets delta_k (R^3 grid
                                            of control points over the RGB cube),   ||delta_k||_inf <= eps

with offsets in CIELAB / 100 units (L spans [0, 1]). The offsets maximise
CE(f(x'), y) - smoothness * sum_{neighbours k, l} ||delta_k - delta_l||_2  by signed-gradient steps of
2.5 * eps / steps projected onto the eps box. ReColorAdv's own choices differ: CIELUV, a finer grid, a
bound of 0.06 in its normalised units and its own loss and optimiser; this is a re-implementation of the
idea, not of their code. Pixels of one colour stay one colour.
Needs RGB images: on grayscale the attack is undefined and raises ConfigError.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brainalign.attacks._color import lab_to_rgb, require_rgb, rgb_to_lab
from brainalign.attacks.base import AttackInfo
from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS


def apply_color_offsets(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Recolour images (B, 3, H, W) with per-example control-point offsets delta (B, 3, R, R, R)."""
    # grid_sample on a volume: coordinates (x, y, z) index (W, H, D) = (blue, green, red) of the input colour.
    coords = (2 * x.flip(1) - 1).permute(0, 2, 3, 1).unsqueeze(1)  # (B, 1, H, W, 3)
    offset = F.grid_sample(delta, coords, mode="bilinear", align_corners=True).squeeze(2)  # (B, 3, H, W)
    return lab_to_rgb(rgb_to_lab(x) + 100 * offset)


def smoothness(delta: torch.Tensor) -> torch.Tensor:
    """Per-example sum of L2 differences between neighbouring control points (B,)."""
    total = torch.zeros(delta.shape[0], device=delta.device, dtype=delta.dtype)
    for dim in (2, 3, 4):
        diff = delta.diff(dim=dim)
        total = total + (diff.pow(2).sum(1) + 1e-12).sqrt().flatten(1).sum(1)
    return total


@torch.enable_grad()
def recolor_search(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, resolution: int = 8, steps: int = 20,
                   smooth: float = 0.05, random_start: bool = False,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The recoloured images and the control-point offsets (B, 3, R, R, R) chosen for each."""
    require_rgb(x, "recolor")
    if resolution < 2 or steps < 1 or smooth < 0:
        raise ConfigError("recolor needs resolution >= 2, steps >= 1 and smooth >= 0")
    x = x.detach()
    shape = (x.shape[0], 3, resolution, resolution, resolution)
    if random_start:
        delta = eps * (2 * torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype) - 1)
    else:
        delta = torch.zeros(shape, device=x.device, dtype=x.dtype)
    if eps == 0:
        return apply_color_offsets(x, delta).detach(), delta
    alpha = 2.5 * eps / steps
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(apply_color_offsets(x, delta)), y, reduction="sum")
        loss = loss - smooth * smoothness(delta).sum()
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
    return apply_color_offsets(x, delta).detach(), delta.detach()


@ATTACKS.register("recolor", description="smooth colour-space attack in CIELAB (ReColorAdv-style; cAdv stand-in)",
                  info=AttackInfo(family="semantic", parameter="lab_offset", max_strength=1.0,
                                  reference_strength=0.06, requires_color=True))
def recolor(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, resolution: int = 8, steps: int = 20,
            smooth: float = 0.05, random_start: bool = False,
            generator: torch.Generator | None = None) -> torch.Tensor:
    return recolor_search(model, x, y, eps, resolution=resolution, steps=steps, smooth=smooth,
                          random_start=random_start, generator=generator)[0]
