"""TRADES. Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan (ICML 2019), "Theoretically Principled Trade-off
between Robustness and Accuracy".

    L = CE(f(x), y) + beta * KL(p(x) || p(x'))/B,   x' = argmax_{||x' - x|| <= eps} KL(p(x) || p(x'))

p = softmax of the logits; the KL is summed over the batch and divided by its size B (the reference code's
``(1 / batch_size) * KLDivLoss(size_average=False)``), with gradients through both p(x) and p(x').

The inner max is brainalign's own PGD (``brainalign.attacks.pgd.pgd``, the evaluation's threat-model code)
run on cross-entropy against the soft target p(x) (computed once, in eval mode, held fixed):
CE(f(x'), p(x)) = KL(p(x) || p(x')) + H(p(x)), and H(p(x)) does not depend on x', so every gradient step
is the reference code's KL step. Where this differs from the authors' code (yaodongyu/TRADES): the inner
loop starts from a uniform random point in the ball (our PGD) rather than x + 0.001 N(0, 1), and the L2
version takes normalised-gradient steps rather than the code's SGD on the perturbation. Crafting is in
eval mode with frozen parameters, as in the reference code.

At beta = 0 the loss is plain cross-entropy (the attack still runs, so the control is exact).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from brainalign.attacks.base import threat_model
from brainalign.attacks.pgd import pgd
from brainalign.defences.base import (
    Defence,
    DefenceInfo,
    check_eps_within_evaluation,
    check_norm,
    check_number,
    crafting,
    device_generator,
)
from brainalign.registry import DEFENCES


@DEFENCES.register("trades", description="TRADES (Zhang et al. 2019): CE + beta * KL(clean || PGD-KL example)",
                   info=DefenceInfo(reference="Zhang et al. 2019, ICML, arXiv 1901.08573", uses_attack=True))
class Trades(Defence):
    """Clean cross-entropy plus beta times the KL divergence to the worst-case neighbour.

    Args:
        beta: weight of the robustness term (>= 0; 6 for CIFAR-10 and 1 for MNIST in the paper's code).
        eps: radius of the training threat model, native [0, 1] pixel units.
        steps: inner PGD steps (>= 1).
        step_size: constant inner step size; None gives 2.5 * eps / steps.
        norm: ``Linf`` or ``L2``.
    """

    def __init__(self, beta: float = 6.0, eps: float = 0.031, steps: int = 10, step_size: float | None = None,
                 norm: str = "Linf"):
        self.beta = check_number("beta", beta, minimum=0)
        self.norm = check_norm(norm)
        self.eps = check_number("eps", eps, minimum=0)
        threat_model(self.norm, self.eps)  # Linf eps must be <= 1
        self.steps = check_number("steps", steps, minimum=1, integer=True)
        self.step_size = None if step_size is None else check_number("step_size", step_size, minimum=0,
                                                                     strict=True)

    def validate(self, eval_eps: dict[str, float]) -> None:
        check_eps_within_evaluation(self.eps, self.norm, eval_eps)

    @property
    def inner_step_size(self) -> float:
        """Constant inner step size (passed explicitly: PGD's own default is a schedule, not TRADES's steps)."""
        return 2.5 * self.eps / self.steps if self.step_size is None else self.step_size

    @property
    def training_attack(self) -> dict[str, Any]:
        return {"attack": f"pgd_{self.norm.lower()}", "norm": self.norm, "eps": self.eps, "steps": self.steps,
                "step_size": self.inner_step_size, "random_start": True, "loss": "KL(p(x) || p(x')) (TRADES)"}

    def loss(self, model, x, y, generator):
        with crafting(model):
            target = F.softmax(model(x), dim=1)  # (B, K), fixed during the inner max
            x_adv = pgd(model, x, target, threat_model(self.norm, self.eps), steps=self.steps,
                        step_size=self.inner_step_size, generator=device_generator(generator, x.device))
        logits = model(x)
        kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y) + self.beta * kl, logits
