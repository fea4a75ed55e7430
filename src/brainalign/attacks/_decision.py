"""Plumbing shared by the decision-based attacks that run through foolbox (Boundary, HopSkipJump).

foolbox's own initialisation raises when it fails on any example and draws from torch's global RNG.
Here the starting points come from the caller's generator: uniform-noise images the model already
misclassifies (as foolbox's LinearSearchBlendedUniformNoiseAttack draws), else another image of the batch
with a different predicted class, then blended towards the original as far as the label stays wrong.
Examples with no starting point are reported as not broken (distance inf), never dropped.
"""

from __future__ import annotations

import torch

from brainalign.attacks.base import MinimalResult, finish_minimal, global_rng_from


def starting_points(model, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None, *,
                    tries: int = 20, blend_steps: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Misclassified starting points (B, C, H, W) near x, and which examples have one (B,)."""
    with torch.no_grad():
        pred = model(x).argmax(1)
        found = pred != y  # already adversarial: start at x
        start = x.clone()
        for _ in range(tries):
            need = ~found
            if not need.any():
                break
            noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            ok = need & (model(noise).argmax(1) != y)
            start[ok] = noise[ok]
            found |= ok
        for i in torch.nonzero(~found).flatten().tolist():  # fall back on another image of the batch
            others = torch.nonzero(pred != y[i]).flatten()
            if len(others):
                start[i] = x[others[0]]
                found[i] = True
        # Blend towards x: the smallest blend weight on a grid that still fools the model (foolbox's rule).
        best = torch.ones(len(y), device=x.device)
        done = ~found | (pred != y)
        for b in torch.linspace(0, 1, blend_steps + 1, device=x.device)[1:]:
            if done.all():
                break
            hit = ~done & (model((1 - b) * x + b * start).argmax(1) != y)
            best[hit] = b
            done |= hit
        blended = (1 - best.view(-1, 1, 1, 1)) * x + best.view(-1, 1, 1, 1) * start
        start = torch.where((found & (pred == y)).view(-1, 1, 1, 1), blended, start)
    return start, found


def run_foolbox(attack, model, x: torch.Tensor, y: torch.Tensor, norm: str,
                generator: torch.Generator | None) -> MinimalResult:
    """Run a foolbox minimisation attack on the examples the model gets right and that have a start."""
    import foolbox as fb

    x, y = x.detach(), y.detach()
    with global_rng_from(generator, x.device):
        start, found = starting_points(model, x, y, generator)
        with torch.no_grad():
            todo = found & (model(x).argmax(1) == y)
        x_adv = start.clone()
        if todo.any():
            fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
            idx = torch.nonzero(todo).flatten()
            advs = attack.run(fmodel, x[idx], fb.criteria.Misclassification(y[idx]), starting_points=start[idx])
            x_adv[idx] = advs.detach().to(x.dtype)
    return finish_minimal(model, x, y, x_adv, found, norm=norm)
