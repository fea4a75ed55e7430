"""Composite Adversarial Attack, CAA (Hsiung et al., CVPR 2023): a sequence of semantic and Linf perturbations.

x_adv = A_{pi(n)}( ... A_{pi(1)}(x; theta_1) ... ; theta_n),  each theta_k inside its range, pi an order.

Components and their ranges at strength 1 (the paper's CIFAR-10 setting; strength s scales every range
about its identity value): hue [-pi, pi] rad, saturation [0.7, 1.3], rotation [-10, 10] deg, brightness
[-0.2, 0.2], contrast [0.7, 1.3], Linf 8/255 (``linf_eps``; 4/255 for ImageNet). Each component in turn
takes ``inner_steps`` signed-gradient steps on its own parameter (step 2.5 * half-range / steps, random
start inside the range; the Linf component starts at 0 and takes ``linf_steps`` steps), given the image
the previous components produced; an example stops at the first parameters that fool the model, and the
components it had not reached yet stay at identity. The Linf ball is around the image the Linf component
receives, as in the authors' code. Order:
  'fixed'     the order of ``components``;
  'random'    a new random permutation per pass;
  'scheduled' (the paper's default) the order maximising the loss, found by a gradient step on a doubly
              stochastic matrix (Sinkhorn-normalised) through a soft composition, rounded to a permutation
              by the Hungarian algorithm; a different order each pass (5 passes).
Differences from the authors' code: the soft composition for scheduling uses the current parameters
instead of 3 extra steps per component; the permutation is rounded by an exact assignment
(scipy's linear_sum_assignment) instead of their greedy top-k; the Linf perturbation carries over between
passes. Hue and saturation need RGB images: on grayscale the default drops them and naming them raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from brainalign.attacks._color import adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, rotate
from brainalign.attacks.base import AttackInfo
from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS

# name -> (transform, half-range at strength 1, identity parameter, needs RGB)
SEMANTIC = {
    "hue": (adjust_hue, math.pi, 0.0, True),
    "saturation": (adjust_saturation, 0.3, 1.0, True),
    "rotation": (rotate, 10.0, 0.0, False),
    "brightness": (adjust_brightness, 0.2, 0.0, False),
    "contrast": (adjust_contrast, 0.3, 1.0, False),
}
COMPONENTS = (*SEMANTIC, "linf")  # the paper's enabled_attack indices 0..5, in that order
ORDERS = ("fixed", "random", "scheduled")


@dataclass
class CAAResult:
    """The attacked images and, per example, the parameters and order that reproduce them (``compose``)."""

    x_adv: torch.Tensor  # (B, C, H, W)
    params: dict[str, torch.Tensor]  # semantic component -> (B,), identity where not applied
    delta: torch.Tensor  # (B, C, H, W) Linf perturbation (zeros without the linf component)
    order: torch.Tensor  # (B, n) indices into ``components``, the order applied
    components: tuple[str, ...]


def default_components(channels: int) -> tuple[str, ...]:
    """All six components for RGB; without hue and saturation (undefined) for grayscale."""
    return tuple(c for c in COMPONENTS if channels == 3 or c not in ("hue", "saturation"))


def _apply(name: str, z: torch.Tensor, params: dict[str, torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
    if name == "linf":
        return (z + delta).clamp(0, 1)
    return SEMANTIC[name][0](z, params[name])


def compose(x: torch.Tensor, components: tuple[str, ...], params: dict[str, torch.Tensor], delta: torch.Tensor,
            order: torch.Tensor) -> torch.Tensor:
    """Apply the components to x in each example's order (B, n)."""
    out = torch.empty_like(x)
    for row in torch.unique(order, dim=0):
        sel = (order == row).all(1)
        z = x[sel]
        sub = {k: v[sel] for k, v in params.items()}
        for idx in row.tolist():
            z = _apply(components[idx], z, sub, delta[sel])
        out[sel] = z
    return out


def _sinkhorn(m: torch.Tensor, iters: int = 20) -> torch.Tensor:
    for _ in range(iters):
        m = m / m.sum(0, keepdim=True)
        m = m / m.sum(1, keepdim=True)
    return m


def _assign(dsm: torch.Tensor) -> list[int]:
    from scipy.optimize import linear_sum_assignment

    _, cols = linear_sum_assignment(dsm.detach().cpu().numpy(), maximize=True)
    return [int(c) for c in cols]


@torch.enable_grad()
def _schedule(model, x, y, comps, params, delta, seq, dsm, generator):
    """One scheduling step: the loss gradient on the doubly stochastic matrix picks a new order."""
    n = len(comps)
    if n == 1:
        return [0], dsm
    if dsm is None:
        dsm = _sinkhorn(torch.rand((n, n), generator=generator, device=x.device) + 1e-3)
        seq = _assign(dsm)
    dsm = dsm.detach().requires_grad_(True)
    z = x
    for t in range(n):
        outs = torch.stack([_apply(c, z, params, delta) for c in comps])  # (n, B, C, H, W)
        z = torch.einsum("j,jbchw->bchw", dsm[t], outs)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(z), y), dsm)
    noise = torch.zeros_like(grad)
    new = seq
    for _ in range(20):  # move off the current order, as the authors' loop does, with bounded retries
        cand = _sinkhorn(torch.exp(dsm.detach() + grad + noise))
        new = _assign(cand)
        if new != seq:
            break
        noise = (torch.randn((n, n), generator=generator, device=x.device) + 1) * 2
    return new, cand


@torch.enable_grad()
def caa_search(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, components: list[str] | None = None,
               order: str = "scheduled", iters: int | None = None, inner_steps: int = 10, linf_steps: int = 20,
               linf_eps: float = 8 / 255, early_stop: bool = True,
               generator: torch.Generator | None = None) -> CAAResult:
    """Run CAA at strength ``eps`` (1 = the paper's ranges) and return the images with their parameters."""
    comps = tuple(components) if components is not None else default_components(x.shape[1])
    unknown = [c for c in comps if c not in COMPONENTS]
    if unknown or not comps or len(set(comps)) != len(comps):
        raise ConfigError(f"caa: components must be distinct names from {', '.join(COMPONENTS)}, got {list(comps)}")
    if x.shape[1] != 3 and any(SEMANTIC.get(c, (0, 0, 0, False))[3] for c in comps):
        raise ConfigError(f"caa: hue and saturation need RGB images, got {x.shape[1]} channel(s); "
                          "leave them out of components for grayscale")
    if order not in ORDERS:
        raise ConfigError(f"caa: order must be one of {', '.join(ORDERS)}, got {order!r}")
    iters = iters if iters is not None else (5 if order == "scheduled" else 1)
    if iters < 1 or inner_steps < 1 or linf_steps < 1 or not 0 <= linf_eps <= 1:
        raise ConfigError("caa needs iters >= 1, inner_steps >= 1, linf_steps >= 1 and linf_eps in [0, 1]")

    x = x.detach()
    b = x.shape[0]
    ranges = {c: (SEMANTIC[c][2] - eps * SEMANTIC[c][1], SEMANTIC[c][2] + eps * SEMANTIC[c][1])
              for c in comps if c != "linf"}
    identity = {c: torch.full((b,), SEMANTIC[c][2], device=x.device, dtype=x.dtype) for c in ranges}
    params = {c: lo + (hi - lo) * torch.rand(b, generator=generator, device=x.device, dtype=x.dtype)
              for c, (lo, hi) in ranges.items()}
    e = eps * linf_eps
    delta = torch.zeros_like(x)

    x_adv = x.clone()
    kept = {c: v.clone() for c, v in identity.items()}
    kept_delta = torch.zeros_like(x)
    kept_order = torch.zeros((b, len(comps)), dtype=torch.long, device=x.device)
    frozen = torch.zeros(b, dtype=torch.bool, device=x.device)

    def keep(mask, out, visited, seq):
        x_adv[mask] = out[mask].detach()
        for c in ranges:
            kept[c][mask] = params[c][mask] if c in visited else identity[c][mask]
        kept_delta[mask] = delta[mask] if "linf" in visited else 0
        kept_order[mask] = torch.tensor(seq, device=x.device)

    seq, dsm = list(range(len(comps))), None
    for _ in range(iters):
        if frozen.all():
            break
        if order == "random":
            seq = torch.randperm(len(comps), generator=generator, device=x.device).tolist()
        elif order == "scheduled":
            seq, dsm = _schedule(model, x, y, comps, params, delta, seq, dsm, generator)
        z = x
        visited: list[str] = []
        for idx in seq:
            c = comps[idx]
            visited.append(c)
            steps = linf_steps if c == "linf" else inner_steps
            lo, hi = (-e, e) if c == "linf" else ranges[c]
            alpha = 2.5 * (hi - lo) / 2 / steps
            for _ in range(steps):
                p = (delta if c == "linf" else params[c]).detach().requires_grad_(True)
                out = (z + p).clamp(0, 1) if c == "linf" else SEMANTIC[c][0](z, p)
                logits = model(out)
                (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), p)
                with torch.no_grad():
                    if c == "linf":
                        delta = p.detach()
                    else:
                        params[c] = p.detach()
                    if early_stop:
                        newly = ~frozen & (logits.argmax(1) != y)
                        if newly.any():
                            keep(newly, out, visited, seq)
                            frozen |= newly
                    live = (~frozen).view(-1, *([1] * (grad.dim() - 1))).to(grad.dtype)
                    stepped = (p.detach() + alpha * grad.sign() * live).clamp(lo, hi)
                    if c == "linf":
                        delta = stepped
                    else:
                        params[c] = stepped
            with torch.no_grad():
                z = _apply(c, z, params, delta)
        keep(~frozen, z, visited, seq)
    return CAAResult(x_adv=x_adv, params=kept, delta=kept_delta, order=kept_order, components=comps)


@ATTACKS.register("caa", description="Composite Adversarial Attack (Hsiung et al. 2023): hue, saturation, rotation, "
                                     "brightness, contrast, Linf in fixed, random or scheduled order",
                  info=AttackInfo(family="composite", parameter="range_fraction", max_strength=1.0,
                                  reference_strength=1.0))
def caa(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, components: list[str] | None = None,
        order: str = "scheduled", iters: int | None = None, inner_steps: int = 10, linf_steps: int = 20,
        linf_eps: float = 8 / 255, early_stop: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    return caa_search(model, x, y, eps, components=components, order=order, iters=iters, inner_steps=inner_steps,
                      linf_steps=linf_steps, linf_eps=linf_eps, early_stop=early_stop, generator=generator).x_adv
