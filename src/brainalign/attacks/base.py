"""Threat models and the facts every attack declares.

An attack is a plain callable registered in ``ATTACKS``::

    attack(model, x, y, eps, *, generator, **params) -> x_adv

``x`` are images in [0, 1] (B, C, H, W) at the data's native resolution, ``model`` returns
logits and is in eval mode, ``eps`` is the attack strength in the unit named by the entry's
``AttackInfo.parameter`` (an Lp radius in native [0, 1] pixel units for norm-bounded attacks).
Randomness comes only from ``generator``, so the same seed gives bit-identical results.
Threat models follow MadryLab's ``attack_steps``: ``project`` and ``step``.
"""

from __future__ import annotations

import functools
import inspect
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from brainalign.errors import ConfigError

Norm = Literal["Linf", "L2"]


@dataclass(frozen=True)
class AttackInfo:
    """Facts about a registered attack, read by the CLI, docs, tests and self-checks."""

    family: Literal["whitebox", "blackbox", "transfer", "noise", "corruption", "semantic", "composite"]
    norm: Literal["Linf", "L2", "L0", "none"] = "none"
    parameter: str = "eps"  # what the strength grid means (eps, sigma, severity, ...)
    needs_gradients: bool = True
    max_strength: float | None = None  # largest valid strength (Linf eps <= 1, severity <= 5, ...)
    # Added for the evaluation suites and self-checks:
    min_strength: float = 0.0  # smallest valid strength
    integer_strength: bool = False  # strengths must be whole numbers (corruption severities)
    minimal_perturbation: bool = False  # searches the smallest adversarial; ``fn.minimal`` returns it
    stochastic_ok: bool = False  # handles stochastic models (EOT or AutoAttack's 'rand' version)
    requires_color: bool = False  # needs 3-channel RGB images (hue, saturation, colour)
    needs_surrogate: bool = False  # crafted on ``surrogate=`` model, evaluated on the target (transfer)
    reference_strength: float | None = None  # the strength of the paper that defines it (CAA ranges, ...)
    label: str = ""  # how reports must name it (e.g. "imagecorruptions-style"), when the name is not enough
    # Evaluated cumulatively over its strength grid (brainalign.evaluate): at each strength only the images still
    # correct at the strength below are attacked, and an image broken at a smaller radius counts as broken at every
    # larger one (its adversarial lies in the larger ball too): the per-image worst case over the grid.
    cumulative: bool = False


class ThreatModel(ABC):
    """An Lp ball of radius eps around x, intersected with the [0, 1] image box."""

    norm: Norm

    def __init__(self, eps: float):
        if not eps >= 0:
            raise ConfigError(f"eps must be >= 0 for {self.norm}, got {eps}")
        self.eps = float(eps)

    @abstractmethod
    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ...

    @abstractmethod
    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        ...

    @abstractmethod
    def random_init(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        ...

    @abstractmethod
    def distance(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ...

    def projector(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``project(., x)`` with whatever depends only on x computed once (for attack loops)."""
        return lambda x_adv: self.project(x_adv, x)


def _flat_norm(v: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, shaped to broadcast against v."""
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


class LinfBall(ThreatModel):
    norm = "Linf"

    def __init__(self, eps: float):
        super().__init__(eps)
        if self.eps > 1:
            raise ConfigError(f"Linf eps must be in [0, 1] (pixel units), got {eps}")

    def project(self, x_adv, x):
        return self.projector(x)(x_adv)

    def projector(self, x):
        # The ball intersected with [0, 1] is the box [max(x - eps, 0), min(x + eps, 1)]: one clamp per step.
        low, high = (x - self.eps).clamp_(min=0.0), (x + self.eps).clamp_(max=1.0)
        return lambda x_adv: torch.clamp(x_adv, low, high)

    def step(self, x_adv, grad, step_size):
        return torch.add(x_adv, grad.sign(), alpha=step_size)

    def random_init(self, x, generator):
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return self.project(x + (2 * noise - 1) * self.eps, x)

    def distance(self, x_adv, x):
        return (x_adv - x).flatten(1).abs().amax(dim=1)


class L2Ball(ThreatModel):
    norm = "L2"

    def __init__(self, eps: float):
        super().__init__(eps)

    def project(self, x_adv, x):
        delta = x_adv - x
        factor = torch.clamp(self.eps / (_flat_norm(delta) + 1e-12), max=1.0)
        return torch.clamp(x + delta * factor, 0.0, 1.0)

    def step(self, x_adv, grad, step_size):
        return x_adv + step_size * grad / (_flat_norm(grad) + 1e-12)

    def random_init(self, x, generator):
        # Uniform in the ball: direction from a Gaussian, radius eps * U^(1/d).
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        direction = direction / (_flat_norm(direction) + 1e-12)
        d = x[0].numel()
        u = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=generator, device=x.device, dtype=x.dtype)
        return self.project(x + direction * self.eps * u ** (1.0 / d), x)

    def distance(self, x_adv, x):
        return (x_adv - x).flatten(1).norm(dim=1)


THREAT_MODELS: dict[str, type[ThreatModel]] = {"Linf": LinfBall, "L2": L2Ball}


def threat_model(norm: str, eps: float) -> ThreatModel:
    try:
        return THREAT_MODELS[norm](eps)
    except KeyError:
        raise ConfigError(f"unknown norm {norm!r}; valid: {', '.join(THREAT_MODELS)}") from None


def check_inputs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int | None = None) -> None:
    """Fail before any attack runs on inputs that would make its result meaningless."""
    if model.training:
        raise ConfigError("the model must be in eval mode before it is attacked (call model.eval())")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ConfigError(f"inputs must be images in [0, 1], got range [{x.min():.3g}, {x.max():.3g}]")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ConfigError(f"labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if num_classes is not None and y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ConfigError(f"labels must be in [0, {num_classes - 1}], got [{int(y.min())}, {int(y.max())}]")
    if x.numel():
        check_logits(model, x[:32], num_classes)


def check_logits(model: torch.nn.Module, x: torch.Tensor, num_classes: int | None = None) -> None:
    """The model must return finite (B, K) logits, not probabilities (a softmax flattens every attack's loss)."""
    with torch.no_grad():
        out = model(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"the model must return logits of shape ({x.shape[0]}, num_classes), got {shape}")
    if num_classes is not None and out.shape[1] != num_classes:
        raise ConfigError(f"the model returns {out.shape[1]} logits but the data have {num_classes} classes")
    if not torch.isfinite(out).all():
        raise ConfigError("the model returned non-finite outputs (NaN or inf) on clean images")
    if out.shape[1] > 1 and out.min() >= 0 and out.max() <= 1 and torch.allclose(
            out.sum(1), torch.ones(out.shape[0], dtype=out.dtype, device=out.device), atol=1e-4):
        raise ConfigError("the model returns probabilities (rows in [0, 1] summing to 1); attacks need logits: "
                          "remove the final softmax")


def max_strength(info: AttackInfo, image_shape: tuple[int, ...]) -> float | None:
    """The largest meaningful strength for images of ``image_shape`` (C, H, W): an L2 radius tops out at
    the diameter of the [0, 1] box, sqrt(C * H * W)."""
    if info.norm == "L2" and info.parameter == "eps":
        return math.sqrt(math.prod(image_shape))
    return info.max_strength


def check_attack(name: str, strengths: list[float] | tuple[float, ...], params: Mapping[str, Any] | None = None,
                 image_shape: tuple[int, ...] | None = None) -> None:
    """Validate one attack of a suite before anything runs: known name, strengths in range, known params,
    colour images where colour is needed, a surrogate where one is needed. One-line ``ConfigError``."""
    from brainalign.registry import ATTACKS

    entry = ATTACKS.entry(name)  # unknown names raise, listing the valid ones
    info: AttackInfo = entry.info
    params = dict(params or {})
    top = max_strength(info, tuple(image_shape)) if image_shape is not None else info.max_strength
    for s in strengths:
        if not (isinstance(s, (int, float)) and math.isfinite(s)):
            raise ConfigError(f"{name}: {info.parameter} must be a finite number, got {s!r}")
        if s < info.min_strength or (top is not None and s > top):
            upper = f"{top:g}" if top is not None else "inf"
            raise ConfigError(f"{name}: {info.parameter} must be in [{info.min_strength:g}, {upper}], got {s:g}")
        if info.integer_strength and float(s) != int(s):
            raise ConfigError(f"{name}: {info.parameter} must be a whole number, got {s:g}")
    if image_shape is not None and info.requires_color and image_shape[0] != 3:
        raise ConfigError(f"{name} needs RGB images (3 channels), got {image_shape[0]}: "
                          f"{info.parameter} is undefined for grayscale; leave it out of the suite")
    if info.needs_surrogate and params.get("surrogate") is None:
        raise ConfigError(f"{name} needs surrogate= a model to craft the adversarials on (e.g. an unregularized run)")
    accepted = attack_params(entry.obj)
    if accepted is not None:
        unknown = sorted(set(params) - accepted)
        if unknown:
            valid = ", ".join(sorted(accepted)) or "(none)"
            raise ConfigError(f"{name}: unknown parameter {unknown[0]!r}; valid: {valid}")


def attack_entry(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """What registering an attack returns (so calls from Python get it too): the call validates its inputs
    (images in [0, 1], the strength and params as ``evaluate`` checks them) and runs with the model in eval
    mode, restoring each module's previous mode afterwards (a train-mode BatchNorm keeps its statistics)."""

    @functools.wraps(fn)
    def attack(model, x, y, eps, *args, **kwargs):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ConfigError(f"{name}: inputs must be a floating-point image tensor in [0, 1]")
        if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
            raise ConfigError(f"{name}: inputs must be images in [0, 1] (scale 0-255 images by 1/255), "
                              f"got range [{float(x.min()):.3g}, {float(x.max()):.3g}]")
        params = {k: v for k, v in kwargs.items() if k != "generator"}
        check_attack(name, [eps], params, image_shape=tuple(x.shape[1:]))
        modes = [(m, m.training) for m in model.modules()] if isinstance(model, torch.nn.Module) else []
        if modes:
            model.eval()
        try:
            return fn(model, x, y, eps, *args, **kwargs)
        finally:
            for module, training in modes:
                module.training = training

    return attack


def attack_params(fn: Callable[..., Any]) -> set[str] | None:
    """The keyword parameters an attack accepts, or None when it forwards ``**params`` it cannot list."""
    sig = inspect.signature(fn)
    names = {p.name for p in sig.parameters.values()
             if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "generator"}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        listed = getattr(fn, "params", None)  # an attack that forwards **params may list them
        return None if listed is None else names | set(listed)
    return names


@contextmanager
def global_rng_from(generator: torch.Generator | None, device: torch.device | str = "cpu") -> Iterator[int | None]:
    """Seed torch's, numpy's and Python's global RNGs from ``generator`` and restore them afterwards.

    For libraries that draw from global state (pyautoattack, foolbox, imagecorruptions): the same
    generator seed gives the same result, and the caller's global random state is left untouched.
    Yields the seed drawn (None when ``generator`` is None: then nothing is seeded).
    """
    seed = None if generator is None else int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                                                            device=generator.device))
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)
        try:
            yield seed
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@dataclass
class MinimalResult:
    """The smallest adversarial a minimal-perturbation attack found for each example.

    ``success`` is False where no adversarial was found (its distance is inf, ``x_adv`` is ``x``);
    examples the model already misclassifies have distance 0.
    """

    x: torch.Tensor  # (B, C, H, W) clean
    x_adv: torch.Tensor  # (B, C, H, W)
    success: torch.Tensor  # (B,) bool
    norm: str  # the norm the attack minimises

    def distances(self, norm: str | None = None) -> torch.Tensor:
        """Per-example distance (B,) in ``norm`` ('Linf', 'L2' or 'L2sq/D', Attias et al.'s ||d||^2 / D)."""
        norm = norm or self.norm
        d = (self.x_adv - self.x).flatten(1)
        if norm == "Linf":
            dist = d.abs().amax(1)
        elif norm == "L2":
            dist = d.norm(dim=1)
        elif norm == "L2sq/D":
            dist = d.pow(2).sum(1) / d.shape[1]
        else:
            raise ConfigError(f"unknown distance {norm!r}; valid: Linf, L2, L2sq/D")
        return torch.where(self.success, dist, torch.full_like(dist, math.inf))

    def at_budget(self, eps: float) -> torch.Tensor:
        """The adversarial where it lies within ``eps`` (in the attack's norm), the clean image elsewhere."""
        inside = self.distances() <= eps
        return torch.where(inside.view(-1, *([1] * (self.x.dim() - 1))), self.x_adv, self.x)


def finish_minimal(model, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, found: torch.Tensor,
                   norm: str) -> MinimalResult:
    """Keep only adversarials the model really misclassifies; clean misclassifications are distance 0."""
    with torch.no_grad():
        clean_wrong = model(x).argmax(1) != y
        adv_wrong = model(x_adv).argmax(1) != y
    success = clean_wrong | (found & adv_wrong)
    x_adv = torch.where(clean_wrong.view(-1, *([1] * (x.dim() - 1))), x, x_adv)
    x_adv = torch.where(success.view(-1, *([1] * (x.dim() - 1))), x_adv, x)
    return MinimalResult(x=x.detach(), x_adv=x_adv.detach(), success=success, norm=norm)


def minimal_attack(name: str) -> Callable[..., MinimalResult]:
    """``minimal(model, x, y, *, generator, **params) -> MinimalResult`` of a minimal-perturbation attack."""
    from brainalign.registry import ATTACKS

    info = ATTACKS.info(name)
    if not info.minimal_perturbation:
        raise ConfigError(f"{name} is not a minimal-perturbation attack; those are: "
                          + ", ".join(e.name for e in ATTACKS.entries() if e.info.minimal_perturbation))
    return ATTACKS.get(name).minimal
