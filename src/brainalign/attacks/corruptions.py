"""The 15 common corruptions x 5 severities of Hendrycks & Dietterich (ICLR 2019), imagecorruptions-style.

Computed on the fly with the ``imagecorruptions`` package (imagecorruptions-imaug), NOT the released
CIFAR-10-C / TinyImageNet-C arrays: numbers are comparable across brainalign runs, not with published
-C tables. Reports must call them "imagecorruptions-style".

The package wants H x W x 3 uint8 images of at least 32 x 32 pixels. Smaller images are upsampled by
pixel replication (nearest, factor k = ceil(32 / min(H, W))), corrupted, and averaged back over k x k
blocks, so that an identity corruption returns the original up to 8-bit rounding. Grayscale images are
replicated to 3 channels and converted back with ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B); the
colour corruptions then act on the luminance only (saturate is not among the 15). Randomness (noise,
frost crops, glass-blur shuffles, ...) is seeded per image from ``generator``; numpy's global state is
restored afterwards. Severity 0 returns the clean images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from brainalign.attacks.base import AttackInfo, global_rng_from
from brainalign.registry import ATTACKS

CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise",  # noise
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",  # blur
    "snow", "frost", "fog", "brightness",  # weather
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",  # digital
)
MIN_SIDE = 32  # imagecorruptions refuses smaller images
_LUMA = torch.tensor([0.299, 0.587, 0.114])
_SEEDED = {"impulse_noise", "glass_blur"}  # take their own seed instead of numpy's global state


def corrupt(x: torch.Tensor, name: str, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply one corruption at one severity (1..5) to images (B, C, H, W) in [0, 1], C in {1, 3}."""
    from imagecorruptions import corrupt as _corrupt

    if severity == 0:
        return x.detach().clone()
    b, c, h, w = x.shape
    k = math.ceil(MIN_SIDE / min(h, w)) if min(h, w) < MIN_SIDE else 1
    up = x.detach().repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)  # (B, C, kH, kW)
    if c == 1:
        up = up.expand(b, 3, h * k, w * k)
    imgs = (up.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)  # (B, kH, kW, 3)
    seeds = torch.randint(0, 2**31 - 1, (b,), generator=generator,
                          device=generator.device if generator is not None else "cpu").tolist()
    out = np.empty(imgs.shape, dtype=np.float32)
    with global_rng_from(None):  # saves and restores numpy's global state around the per-image seeds
        for i, seed in enumerate(seeds):
            np.random.seed(seed)
            kwargs = {"seed": seed} if name in _SEEDED else {}
            out[i] = _corrupt(imgs[i], corruption_name=name, severity=int(severity), **kwargs)
    y = torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2) / 255.0  # (B, 3, kH, kW)
    if c == 1:
        y = (y * _LUMA.to(y.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if k > 1:
        y = F.avg_pool2d(y, k)
    return y.clamp(0.0, 1.0).to(x.dtype)


def _register(name: str):
    attack_name = f"corruption_{name}"

    @ATTACKS.register(attack_name, description=f"{name.replace('_', ' ')} (Hendrycks & Dietterich 2019), "
                                               "imagecorruptions-style, severity 1-5",
                      info=AttackInfo(family="corruption", norm="none", parameter="severity", needs_gradients=False,
                                      max_strength=5, integer_strength=True, label="imagecorruptions-style"))
    def attack(model, x: torch.Tensor, y: torch.Tensor, eps: float, *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        return corrupt(x, name, int(eps), generator)

    attack.__name__ = attack_name
    return attack


for _name in CORRUPTIONS:
    globals()[f"corruption_{_name}"] = _register(_name)
