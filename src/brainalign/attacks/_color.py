"""Differentiable image transforms for the semantic attacks, in torch (kornia's conventions, no kornia).

Every transform takes images (B, C, H, W) in [0, 1] and a per-example parameter (B,), returns images in
[0, 1], and is differentiable in the parameter (almost everywhere), so attacks can take gradient steps on it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from brainalign.errors import ConfigError

_EPS = 1e-8


def _col(p: torch.Tensor) -> torch.Tensor:
    return p.view(-1, 1, 1, 1)


def require_rgb(x: torch.Tensor, what: str) -> None:
    if x.shape[1] != 3:
        raise ConfigError(f"{what} needs RGB images (3 channels), got {x.shape[1]}: "
                          "it is undefined (identity) on grayscale; leave it out for grayscale data")


def rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue in [0, 1) (fraction of a turn), saturation and value in [0, 1]; each (B, H, W)."""
    r, g, b = x.unbind(1)
    v, arg = x.max(1)
    delta = v - x.min(1).values
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(arg == 0, ((g - b) / safe) % 6, torch.where(arg == 1, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(delta > 0, h / 6, torch.zeros_like(h))
    s = delta / (v + _EPS)
    return h, s, v


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rgb_to_hsv``: f(n) = v - v s max(0, min(k, 4 - k, 1)), k = (n + 6h) mod 6, n = 5, 3, 1."""
    n = torch.tensor([5.0, 3.0, 1.0], device=h.device, dtype=h.dtype).view(1, 3, 1, 1)
    k = (n + 6 * h.unsqueeze(1)) % 6
    f = (torch.minimum(k, 4 - k)).clamp(0, 1)
    return v.unsqueeze(1) - v.unsqueeze(1) * s.unsqueeze(1) * f


def adjust_hue(x: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``hue`` radians (kornia.enhance.adjust_hue; CAA range [-pi, pi])."""
    require_rgb(x, "hue")
    h, s, v = rgb_to_hsv(x)
    h = (h + hue.view(-1, 1, 1) / (2 * math.pi)) % 1.0
    return hsv_to_rgb(h, s, v).clamp(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale HSV saturation by ``factor``, clipped to [0, 1] (kornia.enhance.adjust_saturation; CAA [0.7, 1.3])."""
    require_rgb(x, "saturation")
    h, s, v = rgb_to_hsv(x)
    return hsv_to_rgb(h, (s * factor.view(-1, 1, 1)).clamp(0, 1), v).clamp(0, 1)


def adjust_brightness(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """x + delta, clipped (kornia.enhance.adjust_brightness; CAA range [-0.2, 0.2])."""
    return (x + _col(delta)).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """x * factor, clipped (kornia.enhance.adjust_contrast, which CAA uses: a gain, not a stretch about the
    mean; CAA range [0.7, 1.3])."""
    return (x * _col(factor)).clamp(0, 1)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate about the image centre by ``degrees`` (counter-clockwise), bilinear, zeros outside
    (kornia.geometry.rotate; CAA range [-10, 10])."""
    _, _, h, w = x.shape
    t = degrees * (math.pi / 180)
    cos, sin = torch.cos(t), torch.sin(t)
    zero = torch.zeros_like(t)
    # affine_grid works in [-1, 1] coordinates per axis; convert so the rotation is rigid in pixels.
    # Output pixel (u, v) samples input (cos u - sin v, sin u + cos v): counter-clockwise on screen (y down).
    theta = torch.stack([torch.stack([cos, -sin * h / w, zero], -1),
                         torch.stack([sin * w / h, cos, zero], -1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)


# --- CIELAB (D65), for the perceptual colour attack --------------------------------------------------------

_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]])
_WHITE = torch.tensor([0.95047, 1.0, 1.08883])
_DELTA = 6 / 29


def _to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def _to_srgb(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (B, 3, H, W) -> CIELAB (L in [0, 100], a, b roughly [-128, 127])."""
    xyz = torch.einsum("ij,bjhw->bihw", _RGB_TO_XYZ.to(x), _to_linear(x)) / _WHITE.to(x).view(1, 3, 1, 1)
    f = torch.where(xyz > _DELTA**3, xyz.clamp(min=_DELTA**3) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rgb_to_lab``; out-of-gamut colours are clipped to [0, 1]."""
    big_l, a, b = lab.unbind(1)
    fy = (big_l + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], 1)
    xyz = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29)) * _WHITE.to(lab).view(1, 3, 1, 1)
    rgb = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_XYZ).to(lab), xyz)
    return _to_srgb(rgb.clamp(0, 1)).clamp(0, 1)
