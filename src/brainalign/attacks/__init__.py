"""Attacks: one file per attack, each registered in ``brainalign.registry.ATTACKS``."""

from brainalign.attacks import fgsm, pgd  # noqa: F401  (registration)
from brainalign.attacks.base import AttackInfo, L2Ball, LinfBall, ThreatModel, check_inputs, threat_model

__all__ = ["AttackInfo", "L2Ball", "LinfBall", "ThreatModel", "check_inputs", "threat_model"]
