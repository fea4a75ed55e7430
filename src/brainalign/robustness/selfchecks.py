"""Self-checks that catch a weak evaluation or gradient masking (Athalye et al. 2018; Carlini et al. 2019,
"On evaluating adversarial robustness"; the flags of AutoAttack). Run with every evaluation; any failure
marks the result unreliable, with the reason.

    out = run_selfchecks(model, x, y, result["robustness"], num_classes=10)
    out == {"reliable": bool, "reasons": [str, ...], "checks": {name: {...}}, "settings": {...}}

``results`` maps a key to one attack's curve, as evaluate writes it into result.json:
``{"attack": registry name, "eps": [...], "accuracy": [...], "params": {...}, "n_examples": int}``
(``family`` and ``norm`` are read from the registry when absent). Each check is
``{"name", "passed": bool, "skipped": bool, "value", "reason"}``; a skipped check (nothing to compare) passes.

Checks, in order:
  monotone_in_strength   no curve's accuracy rises with strength (beyond sampling noise); curves evaluated
                         cumulatively (``"cumulative": true``) are monotone by construction and not counted
  reaches_chance         PGD-Linf from the clean image (no random start) at ``large_eps`` gets accuracy to chance
  more_steps_not_better  FGSM >= PGD(steps) >= PGD(4 x steps, 3 restarts) in accuracy at ``eps_check``
  blackbox_not_stronger  no black-box or transfer result beats the white-box ones at the same norm and strength,
                         and a quick Square attack does not beat PGD at ``eps_check``
  zero_gradients         the fraction of examples whose input gradient is exactly zero is at most ``max_zero_grad``
  stochastic_model       if repeated forward passes differ, some white-box result used EOT (eot > 1) or
                         AutoAttack 'rand'
The attacks the checks run themselves use the first ``n_check`` examples and their own generator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from brainalign.attacks.base import threat_model
from brainalign.attacks.fgsm import fgsm
from brainalign.attacks.pgd import pgd
from brainalign.attacks.square import square
from brainalign.registry import ATTACKS
from brainalign.robustness.metrics import correct_flags

CHECKS = ("monotone_in_strength", "reaches_chance", "more_steps_not_better", "blackbox_not_stronger",
          "zero_gradients", "stochastic_model")
FALLBACK_EPS = {"Linf": 8 / 255, "L2": 0.5}


def _check(name: str, passed: bool, value: Any, reason: str, skipped: bool = False) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "skipped": skipped, "value": value, "reason": reason}


def _entries(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Normalise result entries: attack name, family, norm, sorted (eps, accuracy)."""
    out = []
    for key, r in results.items():
        name = r.get("attack", key)
        info = ATTACKS.info(name) if name in ATTACKS else None
        pairs = sorted(zip((float(e) for e in r["eps"]), (float(a) for a in r["accuracy"]), strict=True))
        out.append({"key": key, "attack": name, "cumulative": bool(r.get("cumulative")),
                    "family": r.get("family", getattr(info, "family", "unknown")),
                    "norm": r.get("norm", getattr(info, "norm", "none")), "params": dict(r.get("params") or {}),
                    "n": int(r.get("n_examples") or 0), "eps": [p[0] for p in pairs], "acc": [p[1] for p in pairs]})
    return out


def _accuracy_under(model, x, y, attack, batch_size: int) -> float:
    flags = []
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        flags.append(correct_flags(model, attack(xb, yb), yb, batch_size))
    return float(torch.cat(flags).float().mean())


def detect_stochastic(model, x: torch.Tensor, passes: int = 4) -> tuple[bool, float]:
    """Whether repeated forward passes of the same images give different logits (max abs difference)."""
    with torch.no_grad():
        outs = [model(x) for _ in range(passes)]
    diff = max(float((o - outs[0]).abs().max()) for o in outs[1:])
    scale = 1.0 + float(outs[0].abs().max())
    return diff > 1e-5 * scale, diff


def zero_gradient_fraction(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Fraction of examples whose input gradient of the cross-entropy is exactly zero (AutoAttack's flag)."""
    zero = []
    for i in range(0, len(y), batch_size):
        xb = x[i:i + batch_size].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(F.cross_entropy(model(xb), y[i:i + batch_size], reduction="sum"), xb)
        zero.append(grad.flatten(1).abs().sum(1) == 0)
    return float(torch.cat(zero).float().mean())


def _pick_eps(entries: list[dict[str, Any]], clean: float) -> tuple[str, float]:
    """A white-box strength where accuracy is about half the clean accuracy: where more steps would show."""
    for norm in ("Linf", "L2"):
        curves = [e for e in entries if e["family"] == "whitebox" and e["norm"] == norm]
        points = [(abs(a - clean / 2), e) for c in curves for e, a in zip(c["eps"], c["acc"], strict=True) if e > 0]
        if points:
            return norm, min(points)[1]
    return "Linf", FALLBACK_EPS["Linf"]


def run_selfchecks(model, x: torch.Tensor, y: torch.Tensor, results: Mapping[str, Mapping[str, Any]], *,
                   num_classes: int | None = None, n_check: int = 200, steps: int = 20,
                   eps_check: float | None = None, norm_check: str | None = None, large_eps: float = 0.5,
                   tol: float = 0.02, max_zero_grad: float = 0.01, square_queries: int = 300, eot: int = 8,
                   seed: int = 0, batch_size: int = 256) -> dict[str, Any]:
    """Run every check; see the module docstring. ``tol`` is the accuracy slack on top of one example.

    Args:
        model: the evaluated model (eval mode, logits).
        x, y: the evaluation images and labels (the first ``n_check`` are re-attacked here).
        results: the curves of the evaluation (``result.json["robustness"]``).
        eps_check, norm_check: where the step/restart and Square comparisons run; by default the white-box
            strength whose accuracy is closest to half the clean accuracy.
        large_eps: the Linf radius at which a working attack must reach chance (0.5: any image can be
            moved to uniform grey, far past every class boundary).
        eot: EOT samples for the checks' own attacks when the model is stochastic.
    """
    xs, ys = x[:n_check].detach(), y[:n_check].detach()
    n = len(ys)
    slack = tol + 1.0 / max(n, 1)
    with torch.no_grad():
        k = num_classes or int(model(xs[:1]).shape[1])
    entries = _entries(results)
    checks: dict[str, dict[str, Any]] = {}
    gen = lambda: torch.Generator(device=xs.device).manual_seed(seed)  # noqa: E731  (a fresh stream per attack)

    stochastic, diff = detect_stochastic(model, xs[:64])
    eot_used = eot if stochastic else 1
    clean = float(correct_flags(model, xs, ys, batch_size).float().mean())

    # 1. Accuracy does not rise with strength (cumulative curves cannot rise by construction: not evidence).
    rises = []
    curves = [e for e in entries if not e["cumulative"]]
    for e in curves:
        m = e["n"] or len(y)
        for j in range(1, len(e["acc"])):
            best = min(e["acc"][:j])
            allowed = tol + 1.0 / m
            if e["family"] in ("noise", "corruption"):  # independent random draws per strength
                allowed += 2 * math.sqrt(max(best * (1 - best), 1.0 / m) / m)
            if e["acc"][j] - best > allowed:
                rises.append({"key": e["key"], "eps": e["eps"][j], "accuracy": e["acc"][j], "lower_before": best})
    checks["monotone_in_strength"] = _check(
        "monotone_in_strength", not rises, rises,
        "accuracy rises with strength in " + "; ".join(
            f"{r['key']} (eps {r['eps']:g}: {r['accuracy']:.3f} > {r['lower_before']:.3f})" for r in rises[:3])
        if rises else f"no accuracy curve rises with strength ({len(curves)} curves"
                      + (f"; {len(entries) - len(curves)} cumulative ones, monotone by construction, not counted)"
                         if len(curves) < len(entries) else ")"),
        skipped=not curves)

    # 2. A large budget reaches chance; the attack must get there from the clean image, by gradients alone.
    big = threat_model("Linf", large_eps)
    acc_big = _accuracy_under(model, xs, ys, lambda xb, yb: pgd(model, xb, yb, big, steps=steps, random_start=False,
                                                                eot=eot_used, generator=gen()), batch_size)
    chance = 1.0 / k
    checks["reaches_chance"] = _check(
        "reaches_chance", acc_big <= chance, {"eps": large_eps, "accuracy": acc_big, "chance": chance},
        f"PGD-Linf at eps {large_eps:g} leaves accuracy {acc_big:.3f} above chance {chance:.3f}: "
        "gradients do not lead the attack (masking?)" if acc_big > chance else
        f"PGD-Linf at eps {large_eps:g} reaches accuracy {acc_big:.3f} <= chance {chance:.3f}")

    # 3. More steps and restarts do not raise accuracy (single step >= PGD >= longer PGD with restarts).
    if eps_check is None:
        norm, eps = _pick_eps(entries, clean)
    else:
        norm, eps = norm_check or "Linf", float(eps_check)
    ball = threat_model(norm, eps)
    if norm == "Linf":
        one = _accuracy_under(model, xs, ys, lambda xb, yb: fgsm(model, xb, yb, eps), batch_size)
    else:
        one = _accuracy_under(model, xs, ys, lambda xb, yb: pgd(model, xb, yb, ball, steps=1, step_size=eps,
                                                                random_start=False, eot=eot_used), batch_size)
    acc_pgd = _accuracy_under(model, xs, ys, lambda xb, yb: pgd(model, xb, yb, ball, steps=steps, eot=eot_used,
                                                                generator=gen()), batch_size)
    acc_long = _accuracy_under(model, xs, ys, lambda xb, yb: pgd(model, xb, yb, ball, steps=4 * steps, restarts=3,
                                                                 eot=eot_used, generator=gen()), batch_size)
    order_ok = acc_pgd <= one + slack and acc_long <= acc_pgd + slack
    checks["more_steps_not_better"] = _check(
        "more_steps_not_better", order_ok,
        {"norm": norm, "eps": eps, "single_step": one, f"pgd_{steps}": acc_pgd, f"pgd_{4 * steps}x3": acc_long},
        f"at {norm} eps {eps:g}: single step {one:.3f}, PGD-{steps} {acc_pgd:.3f}, PGD-{4 * steps} x 3 restarts "
        f"{acc_long:.3f}; " + ("accuracy does not rise with more steps" if order_ok else
                               "more steps or restarts raised accuracy (masking or a broken attack)"))

    # 4. Black-box and transfer attacks are not stronger than white-box ones.
    violations = []
    compared = 0
    for e in entries:
        if e["family"] not in ("blackbox", "transfer") or e["norm"] not in ("Linf", "L2"):
            continue
        for eps_b, acc_b in zip(e["eps"], e["acc"], strict=True):
            white = [a for w in entries if w["family"] == "whitebox" and w["norm"] == e["norm"]
                     for ew, a in zip(w["eps"], w["acc"], strict=True) if math.isclose(ew, eps_b, abs_tol=1e-9)]
            if not white:
                continue
            compared += 1
            m = max(e["n"] or len(y), 1)
            if acc_b < min(white) - (tol + 1.0 / m):
                violations.append({"key": e["key"], "eps": eps_b, "accuracy": acc_b, "whitebox": min(white)})
    acc_square = None
    if square_queries > 0 and eps > 0:
        acc_square = _accuracy_under(model, xs, ys, lambda xb, yb: square(model, xb, yb, eps, norm=norm,
                                                                          n_queries=square_queries,
                                                                          generator=gen()), batch_size)
        compared += 1
        if acc_square < min(acc_pgd, acc_long) - slack:
            violations.append({"key": f"square_{norm.lower()} ({square_queries} queries, self-check)", "eps": eps,
                               "accuracy": acc_square, "whitebox": min(acc_pgd, acc_long)})
    checks["blackbox_not_stronger"] = _check(
        "blackbox_not_stronger", not violations, {"violations": violations, "square": acc_square,
                                                  "comparisons": compared},
        "black-box/transfer stronger than white-box: " + "; ".join(
            f"{v['key']} at eps {v['eps']:g}: {v['accuracy']:.3f} < {v['whitebox']:.3f}" for v in violations[:3])
        + " (gradient masking)" if violations else
        f"no black-box or transfer attack beats the white-box ones ({compared} comparisons)",
        skipped=compared == 0)

    # 5. Exactly-zero input gradients.
    zero = zero_gradient_fraction(model, xs, ys, batch_size)
    checks["zero_gradients"] = _check(
        "zero_gradients", zero <= max_zero_grad, zero,
        f"{zero:.1%} of examples have an exactly zero input gradient (> {max_zero_grad:.1%}): gradient masking"
        if zero > max_zero_grad else f"{zero:.1%} of examples have a zero input gradient")

    # 6. Stochastic forward passes need EOT or AutoAttack 'rand'.
    eot_results = [e["key"] for e in entries if e["family"] == "whitebox" and (
        int(e["params"].get("eot", 1) or 1) > 1 or e["attack"].startswith("autoattack_rand"))]
    ok = not stochastic or bool(eot_results)
    checks["stochastic_model"] = _check(
        "stochastic_model", ok, {"stochastic": stochastic, "max_logit_difference": diff, "eot_results": eot_results},
        "deterministic forward passes" if not stochastic else
        f"stochastic model; EOT results: {', '.join(eot_results)}" if ok else
        "stochastic model (repeated forward passes differ) but no white-box result uses EOT (eot > 1) "
        "or AutoAttack 'rand'")

    failed = [c for c in checks.values() if not c["passed"]]
    return {"reliable": not failed, "reasons": [f"{c['name']}: {c['reason']}" for c in failed], "checks": checks,
            "settings": {"n_check": n, "steps": steps, "eps_check": eps, "norm_check": norm, "large_eps": large_eps,
                         "tol": tol, "max_zero_grad": max_zero_grad, "square_queries": square_queries,
                         "eot": eot_used, "seed": seed, "clean_accuracy": clean}}
