"""Attacks: one file per attack, each registered in ``brainalign.registry.ATTACKS``.

Importing this package registers them all. Third-party libraries (pyautoattack, foolbox,
imagecorruptions) are imported only when their attack runs.
"""

from brainalign.attacks import (  # noqa: F401  (registration)
    apgd,
    autoattack,
    boundary,
    brightness,
    caa,
    contrast,
    corruptions,
    cw,
    fgsm,
    gaussian_noise,
    hopskipjump,
    hue,
    pgd,
    recolor,
    rotation,
    salt_pepper,
    saturation,
    square,
    transfer,
    uniform_noise,
)
from brainalign.attacks.base import (
    AttackInfo,
    L2Ball,
    LinfBall,
    MinimalResult,
    ThreatModel,
    check_attack,
    check_inputs,
    check_logits,
    global_rng_from,
    minimal_attack,
    threat_model,
)

__all__ = [
    "AttackInfo",
    "L2Ball",
    "LinfBall",
    "MinimalResult",
    "ThreatModel",
    "check_attack",
    "check_inputs",
    "check_logits",
    "global_rng_from",
    "minimal_attack",
    "threat_model",
]
