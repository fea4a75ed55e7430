"""PGD adversarial training. Madry, Makelov, Schmidt, Tsipras & Vladu (ICLR 2018), "Towards Deep Learning
Models Resistant to Adversarial Attacks".

    min_theta E_(x,y) [ max_{||d|| <= eps, x+d in [0,1]} CE(f_theta(x + d), y) ]

The inner max is brainalign's own PGD (``brainalign.attacks.pgd.pgd``, the evaluation's threat-model code:
random start in the ball, ``steps`` sign-gradient (Linf) or normalised-gradient (L2) steps of constant size
``step_size``, projection onto the ball and [0, 1]); the outer loss is CE on the adversarial batch only
(Madry et al.; no clean term). Adversarial examples are crafted in eval mode with frozen parameters (see
:func:`~brainalign.defences.base.crafting`), then the model is back in train mode for the update.

Warm-up: with ``warmup_epochs = W > 0``, epoch e < W trains at eps * e / W (epoch 0 is plain training),
epoch W onward at eps; the step size scales with it. Needs the training loop to call ``on_epoch_start``.
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
    clean_logits,
    crafting,
    device_generator,
)
from brainalign.registry import DEFENCES


@DEFENCES.register("adversarial_training",
                   description="PGD adversarial training (Madry et al. 2018): CE on PGD examples, random start",
                   info=DefenceInfo(reference="Madry et al. 2018, ICLR, arXiv 1706.06083", uses_attack=True))
class AdversarialTraining(Defence):
    """CE on PGD adversarial examples crafted each step.

    Args:
        eps: radius of the training threat model, native [0, 1] pixel units.
        norm: ``Linf`` or ``L2``.
        steps: inner PGD steps (>= 1).
        step_size: inner step size; None gives 2.5 * eps / steps (Madry et al.).
        warmup_epochs: epochs over which eps grows linearly from 0 to ``eps`` (0: no warm-up).
    """

    def __init__(self, eps: float, norm: str = "Linf", steps: int = 10, step_size: float | None = None,
                 warmup_epochs: int = 0):
        self.norm = check_norm(norm)
        self.eps = check_number("eps", eps, minimum=0)
        threat_model(self.norm, self.eps)  # Linf eps must be <= 1
        self.steps = check_number("steps", steps, minimum=1, integer=True)
        self.step_size = None if step_size is None else check_number("step_size", step_size, minimum=0,
                                                                     strict=True)
        self.warmup_epochs = check_number("warmup_epochs", warmup_epochs, minimum=0, integer=True)
        self.epoch: int | None = None

    def validate(self, eval_eps: dict[str, float]) -> None:
        check_eps_within_evaluation(self.eps, self.norm, eval_eps)

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def current_eps(self) -> float:
        """The eps of the current epoch (below ``eps`` during the warm-up)."""
        if self.warmup_epochs == 0:
            return self.eps
        if self.epoch is None:
            raise RuntimeError("eps warm-up needs the training loop to call defence.on_epoch_start(epoch) "
                               "before the epoch's first step")
        return self.eps * min(1.0, self.epoch / self.warmup_epochs)

    def current_step_size(self) -> float:
        """The constant inner step size of the current epoch (passed explicitly: PGD's own default is a
        schedule, not Madry et al.'s constant steps)."""
        base = 2.5 * self.eps / self.steps if self.step_size is None else self.step_size
        return base * (self.current_eps / self.eps) if self.eps > 0 else base

    @property
    def training_attack(self) -> dict[str, Any]:
        return {"attack": f"pgd_{self.norm.lower()}", "norm": self.norm, "eps": self.eps, "steps": self.steps,
                "step_size": 2.5 * self.eps / self.steps if self.step_size is None else self.step_size,
                "random_start": True, "warmup_epochs": self.warmup_epochs,
                "loss": "cross-entropy on the label"}

    def loss(self, model, x, y, generator):
        ball = threat_model(self.norm, self.current_eps)
        with crafting(model):
            logits = clean_logits(model, x)
            x_adv = pgd(model, x, y, ball, steps=self.steps, step_size=self.current_step_size(),
                        generator=device_generator(generator, x.device))
        return F.cross_entropy(model(x_adv), y), logits
