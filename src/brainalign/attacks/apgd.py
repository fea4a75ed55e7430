"""APGD-CE and APGD-T (Croce & Hein, ICML 2020), with early exit; checked against pyautoattack.

APGD: PGD with a momentum step and a step size halved at checkpoints where the loss stopped rising,
starting from 2 * eps; the best iterate is kept. APGD-CE maximises cross-entropy; APGD-T maximises the
targeted DLR loss  -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)  for each of the top K - 1 (at most 9)
other classes in turn. Defaults are AutoAttack 'standard''s: 100 iterations, 1 restart (APGD-CE), 1 restart
per target (APGD-T), 9 target classes (``targets``: the top-scoring other classes, at most K - 1).
``eot`` > 1 averages the gradient over stochastic forward passes.

``apgd_ce_t_*`` runs the two as AutoAttack runs its sequence: APGD-T attacks only the images APGD-CE left
intact, so an image counts as robust only if both fail on it (the per-image worst case). Over a strength grid
it is evaluated cumulatively (``AttackInfo.cumulative``): each larger eps attacks only the images that survived
the one below.

Why our own and not pyautoattack's (which the full ``autoattack_*`` entries and the headline check still run):
every quantity APGD keeps is per image (step size, checkpoints, best loss), so an image is finished the moment
it is misclassified; pyautoattack attacks it for all remaining iterations. Here a broken image leaves the batch
(early exit). Everything else follows pyautoattack 0.x (``autopgd_base.py``) operation by operation, with the
same random draws from the same seed, so the per-image outcome is the same:
``tests/attacks/test_apgd_reference.py`` compares the two, and ``python -m benchmarks apgd`` measures the
speed-up against pyautoattack (the cost now falls with the share of images broken early).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from brainalign.attacks.base import AttackInfo
from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS

RHO = 0.75  # checkpoint rule: halve the step where the loss rose in fewer than RHO of the steps since the last
_LABELS = {("ce",): "APGD-CE (cross-entropy)", ("t",): "APGD-T (targeted DLR, top-k targets, k = 9)",
           ("ce", "t"): "APGD-CE, then APGD-T on the images it leaves intact (worst case per image)"}


@dataclass(frozen=True)
class Schedule:
    """APGD's checkpoints from its iteration budget (Croce & Hein 2020, Sec. 3.2; pyautoattack's constants)."""

    steps: int

    @property
    def first(self) -> int:  # iterations before the first checkpoint
        return max(int(0.22 * self.steps), 1)

    @property
    def minimum(self) -> int:  # the shortest interval between checkpoints
        return max(int(0.06 * self.steps), 1)

    @property
    def decrease(self) -> int:  # how much the interval shrinks at each checkpoint
        return max(int(0.03 * self.steps), 1)


def _flat_norm(v: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-image Linf or L2 norm, shaped to broadcast over the image dimensions."""
    flat = v.reshape(v.shape[0], -1)
    n = flat.abs().max(1)[0] if norm == "Linf" else (flat ** 2).sum(-1).sqrt()
    return n.view(-1, *([1] * (v.dim() - 1)))


def _normalize(v: torch.Tensor, norm: str) -> torch.Tensor:
    return v / (_flat_norm(v, norm) + 1e-12)


def _project(x: torch.Tensor, x_new: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "Linf":
        return torch.clamp(torch.min(torch.max(x_new, x - eps), x + eps), 0.0, 1.0)
    d = x_new - x
    return torch.clamp(x + _normalize(d, norm) * torch.min(eps * torch.ones_like(x), _flat_norm(d, "L2")), 0.0, 1.0)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR loss per image: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)."""
    z = logits.sort(dim=1)[0]
    u = torch.arange(len(y), device=y.device)
    return -(logits[u, y] - logits[u, target]) / (z[:, -1] - 0.5 * (z[:, -3] + z[:, -4]) + 1e-12)


def _loss_and_grad(model, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, eot: int):
    """Per-image loss and logits of the last pass, and the input gradient averaged over ``eot`` passes."""
    grad = torch.zeros_like(x_adv)
    for _ in range(eot):
        x_in = x_adv.detach().requires_grad_()
        with torch.enable_grad():
            logits = model(x_in)
            loss = F.cross_entropy(logits, y, reduction="none") if target is None else \
                dlr_targeted(logits, y, target)
            grad += torch.autograd.grad(loss.sum(), [x_in])[0].detach()
    return loss.detach(), logits.detach(), grad / float(eot)


def apgd_run(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str, steps: int,
             target: torch.Tensor | None = None, eot: int = 1,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run from a random start; returns (still_correct, x_adv) per image.

    ``target``: per-image target class (APGD-T's targeted DLR loss); None: cross-entropy (APGD-CE).
    ``x_adv`` holds, for each image that was misclassified at some iterate, that iterate, and the clean image
    elsewhere. A misclassified image leaves the batch at once (early exit): every state APGD keeps is per image,
    so the images still being attacked follow the same iterates as without it.
    """
    sched = Schedule(steps)
    n = len(y)
    init = torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1 if norm == "Linf" else \
        torch.randn(x.shape, generator=generator, device=x.device)
    x_adv = (x + eps * torch.ones_like(x) * _normalize(init, norm)).clamp(0.0, 1.0)
    out_adv, out_ok = x.clone(), torch.ones(n, dtype=torch.bool, device=x.device)
    idx = torch.arange(n, device=x.device)  # positions (in the caller's batch) of the images still attacked

    loss, logits, grad = _loss_and_grad(model, x_adv, y, target, eot)
    ok = logits.argmax(1) == y
    state = {
        "x": x, "y": y, "x_adv": x_adv, "x_old": x_adv.clone(), "x_best": x_adv.clone(), "grad": grad,
        "grad_best": grad.clone(), "loss_best": loss.clone(), "loss_best_last_check": loss.clone(),
        "reduced_last_check": torch.ones_like(loss), "step": 2.0 * eps * torch.ones(n, *([1] * (x.dim() - 1)),
                                                                                     device=x.device),
        "loss_steps": torch.zeros(steps, n, device=x.device).T,  # (image, step): compacted along images
    }
    if target is not None:
        state["target"] = target

    def retire(ok: torch.Tensor, x_now: torch.Tensor) -> bool:
        """Record the images just broken (at ``x_now``) and drop them from every state; False if none remain."""
        nonlocal idx
        broken = ~ok
        if broken.any():
            out_adv[idx[broken]] = x_now[broken]
            out_ok[idx[broken]] = False
            idx = idx[ok]
            for key, value in state.items():
                state[key] = value[ok]
        return len(idx) > 0

    if not retire(ok, x_adv):
        return out_ok, out_adv
    interval, counter = sched.first, 0
    s = state
    for i in range(steps):
        with torch.no_grad():
            x0, x_cur = s["x"], s["x_adv"]
            momentum = x_cur - s["x_old"]
            s["x_old"] = x_cur.clone()
            a = 0.75 if i > 0 else 1.0
            if norm == "Linf":
                x_new = _project(x0, x_cur + s["step"] * torch.sign(s["grad"]), eps, norm)
            else:
                x_new = _project(x0, x_cur + s["step"] * _normalize(s["grad"], norm), eps, norm)
            x_new = x_cur + (x_new - x_cur) * a + momentum * (1 - a)
            s["x_adv"] = x_cur = _project(x0, x_new, eps, norm)

        loss, logits, s["grad"] = _loss_and_grad(model, x_cur, s["y"], s.get("target"), eot)
        with torch.no_grad():
            s["loss_steps"][:, i] = loss
            better = loss > s["loss_best"]
            s["x_best"][better] = x_cur[better].clone()
            s["grad_best"][better] = s["grad"][better].clone()
            s["loss_best"][better] = loss[better]
            # the iterate just evaluated is the adversarial of every image it misclassifies; those leave the batch
            # before the checkpoint, which is per image and may move the others back to their best iterate
            if not retire(logits.argmax(1) == s["y"], x_cur):
                break
            counter += 1
            if counter == interval:
                # Halve the step where the loss rose in at most RHO of the last ``interval`` steps, or where it did
                # not improve since the last checkpoint and the step was not halved there; restart from the best.
                # (As in pyautoattack, the comparison for the first iteration wraps to the last column, still 0.)
                steps_ = s["loss_steps"]
                rises = sum((steps_[:, i - c] > steps_[:, i - c - 1]).float() for c in range(interval))
                halve = (rises <= interval * RHO * torch.ones_like(rises)).float()
                stalled = (1.0 - s["reduced_last_check"]) * (s["loss_best_last_check"] >= s["loss_best"]).float()
                halve = torch.max(halve, stalled)
                s["reduced_last_check"] = halve.clone()
                s["loss_best_last_check"] = s["loss_best"].clone()
                h = halve > 0
                if h.any():
                    s["step"][h] /= 2.0
                    s["x_adv"][h] = s["x_best"][h].clone()
                    s["grad"][h] = s["grad_best"][h].clone()
                interval = max(interval - sched.decrease, sched.minimum)
                counter = 0
    return out_ok, out_adv


def _seeded(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def apgd(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str, losses: tuple[str, ...],
         steps: int = 100, restarts: int = 1, targets: int = 9, eot: int = 1,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """APGD-CE (``losses=("ce",)``), APGD-T (``("t",)``) or both in AutoAttack's sequence (``("ce", "t")``): each
    stage attacks only the images still correct. Returns the adversarials (the clean image where none was found).

    Randomness: one seed drawn from ``generator`` seeds each stage's random starts (as AutoAttack seeds each of its
    attacks with its one seed), so the same generator state gives the same result.
    """
    for name, value in (("steps", steps), ("restarts", restarts), ("eot", eot), ("targets", targets)):
        if value < 1:
            raise ConfigError(f"apgd: {name} must be >= 1, got {value}")
    x, y = x.detach(), y.detach()
    if eps == 0:
        return x.clone()
    device = generator.device if generator is not None else x.device
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device))
    with torch.no_grad():
        clean_logits = model(x)
    n_classes = clean_logits.shape[1]
    if "t" in losses and n_classes < 4:
        raise ConfigError(f"apgd_t needs at least 4 classes (its DLR loss uses the 4 largest logits), got {n_classes}")
    alive = clean_logits.argmax(1) == y
    x_adv = x.clone()

    def attack(gen: torch.Generator, target_rank: int | None) -> None:
        todo = torch.nonzero(alive, as_tuple=False).flatten()
        if len(todo) == 0:
            return
        target = None
        if target_rank is not None:
            with torch.no_grad():
                target = model(x[todo]).sort(dim=1)[1][:, -target_rank]
        ok, adv = apgd_run(model, x[todo], y[todo], eps, norm=norm, steps=steps, target=target, eot=eot,
                           generator=gen)
        broken = todo[~ok]
        x_adv[broken] = adv[~ok]
        alive[broken] = False

    for loss in losses:
        gen = _seeded(seed, x.device)
        ranks = [None] if loss == "ce" else list(range(2, min(targets, n_classes - 1) + 2))
        for rank in ranks:
            for _ in range(restarts):
                attack(gen, rank)
    return x_adv


def _register(name: str, norm: str, *losses: str):
    label = _LABELS[losses]

    @ATTACKS.register(name, description=f"{label}, {norm} (Croce & Hein 2020; early exit, checked against "
                                        f"pyautoattack)",
                      info=AttackInfo(family="whitebox", norm=norm, max_strength=1.0 if norm == "Linf" else None,
                                      stochastic_ok=True, cumulative=len(losses) == 2))
    def attack(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 100, restarts: int = 1,
               eot: int = 1, targets: int = 9, generator: torch.Generator | None = None) -> torch.Tensor:
        return apgd(model, x, y, eps, norm=norm, losses=losses, steps=steps, restarts=restarts, targets=targets,
                    eot=eot, generator=generator)

    attack.__name__ = name
    return attack


apgd_ce_linf = _register("apgd_ce_linf", "Linf", "ce")
apgd_ce_l2 = _register("apgd_ce_l2", "L2", "ce")
apgd_t_linf = _register("apgd_t_linf", "Linf", "t")
apgd_t_l2 = _register("apgd_t_l2", "L2", "t")
apgd_ce_t_linf = _register("apgd_ce_t_linf", "Linf", "ce", "t")
apgd_ce_t_l2 = _register("apgd_ce_t_l2", "L2", "ce", "t")
