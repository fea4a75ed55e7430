"""The regularizer protocol and the regularization stream.

A regularizer adds ``weight * R`` to the classification loss. Data-driven regularizers read a
*target representation* ``targets`` (N, F): one row per regularization stimulus, e.g. trial-averaged
neural responses (neuroid x time flattened) or mean-subtracted pixels. Because every data-driven
target is such a matrix, the controls are generic:

- ``shuffled``: rows permuted across stimuli (each image meets another image's response);
- ``random``: Gaussian rows with the same mean and covariance as the real targets.

The training loop, each step, asks every regularizer for the stimuli it wants (``sample``), runs
the model on them once to get the layers it named, and calls ``forward(features, index)``.
Regularizers of the ``classification`` stream see the features of the classification batch instead.

Target kinds (``RegularizerInfo.target``): ``recording`` (neural responses of a loaded recording),
``pixels`` (mean-image-subtracted, channel-averaged pixels of the regularization images), ``images``
(regularization images without targets, e.g. the decorrelation control) and ``none`` (no second stream).
Only ``recording`` and ``pixels`` targets are data-driven, so only they accept a control.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brainalign.errors import ConfigError, DataError


@dataclass(frozen=True)
class RegularizerInfo:
    """Facts about a registered regularizer."""

    target: Literal["recording", "pixels", "images", "none"]  # what ``RegularizationSet.targets`` holds for it
    stream: Literal["regularization", "classification"] = "regularization"
    reference: str = ""  # the paper
    is_control: bool = False  # a control condition (decorrelation, pixel_continuous, ...)
    default_layers: Literal["stages", "penultimate", "first"] = "penultimate"  # when params give no ``layers``
    kind: Literal["similarity", "prediction", "alignment", "spectrum"] = "similarity"
    #: target options (``regularizers.targets``) that this method's paper fixes, used unless ``params`` set
    #: them, e.g. Dapello et al.'s 70-170 ms window or Li et al.'s denoised target: ((option, value), ...)
    target_defaults: tuple[tuple[str, object], ...] = ()

    @property
    def data_driven(self) -> bool:
        """Whether the targets come from data (so that the shuffled and random controls mean something)."""
        return self.target in ("recording", "pixels")


@dataclass
class RegularizationSet:
    """The stimuli of the regularization stream and their target representation.

    Attributes:
        images: (N, C, H, W) in [0, 1], at the classification data's size and channels.
        stimulus_ids: N unique ids.
        targets: (N, F) float32 target representation, or None for target-free regularizers.
        target_shape: the shape of one row before flattening, e.g. (neuroids, time bins).
        description: where the targets come from (for result.json and reports).
        simulated: whether the targets come from simulated neural data.
        control: the control applied to the targets (none, shuffled, random).
    """

    images: torch.Tensor
    stimulus_ids: list[str]
    targets: torch.Tensor | None = None
    target_shape: tuple[int, ...] = ()
    description: str = ""
    simulated: bool = False
    control: str = "none"
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        n = self.images.shape[0]
        if len(self.stimulus_ids) != n:
            raise DataError(f"regularization set has {n} images but {len(self.stimulus_ids)} stimulus ids")
        if len(set(self.stimulus_ids)) != n:
            raise DataError("regularization set has duplicate stimulus ids")
        if self.targets is not None:
            if self.targets.shape[0] != n:
                raise DataError(f"regularization set has {n} images but {self.targets.shape[0]} target rows")
            if not torch.isfinite(self.targets).all():
                raise DataError("regularization targets contain NaN or infinite values; mask or drop those "
                                "neuroids first")

    def __len__(self) -> int:
        return int(self.images.shape[0])


#: Up to this many stimuli or target columns the random control matches the covariance exactly (thin SVD);
#: beyond, it keeps RANDOM_CONTROL_COMPONENTS leading components exactly and the rest as per-column variance.
EXACT_RANDOM_CONTROL = 4096
RANDOM_CONTROL_COMPONENTS = 256


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random permutation of ``range(n)`` that leaves no element in place (n >= 2).

    Rejection sampling: a random permutation is a derangement with probability ~1/e, so a few draws suffice.
    The fallback (never reached in practice) is a random n-cycle, which is also a derangement.
    """
    if n < 2:
        raise DataError(f"a shuffled control needs at least 2 stimuli, got {n}")
    for _ in range(200):
        perm = torch.randperm(n, generator=generator)
        if not bool((perm == torch.arange(n)).any()):
            return perm
    order = torch.randperm(n, generator=generator)
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)
    return perm


def apply_control(targets: torch.Tensor, control: str, generator: torch.Generator) -> torch.Tensor:
    """Return the control version of a target matrix (N, F): shuffled rows, or random with matched stats.

    ``shuffled`` is a derangement: every stimulus meets another stimulus's target row (a permutation with
    fixed points would leave part of the real pairing in place). ``random`` matches the mean and covariance
    exactly up to ``EXACT_RANDOM_CONTROL`` stimuli or columns, and approximately beyond (see below).
    """
    if control == "none":
        return targets
    if control == "shuffled":
        return targets[derangement(targets.shape[0], generator)].clone()
    if control == "random":
        n, f = targets.shape
        mean = torch.sum(targets, 0, dtype=torch.float64) / n
        if min(n, f) <= EXACT_RANDOM_CONTROL:
            # Matched mean and covariance: z S V' / sqrt(N - 1) from the thin SVD of the centred targets,
            # O(N F) memory, never N x N.
            _, s, vh = torch.linalg.svd(targets.double() - mean, full_matrices=False)
            z = torch.randn(n, s.shape[0], generator=generator, dtype=torch.float64)
            samples = (z * s) @ vh / np.sqrt(max(n - 1, 1))
            return (samples + mean).float()
        # Large N and F (e.g. NSD): the leading components exactly (randomised SVD), the remaining variance
        # of each column as independent noise, so means and variances match exactly and covariances up to
        # the discarded components' off-diagonal part.
        centred = targets.float() - mean.float()
        state = torch.random.get_rng_state()
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=generator)))
        try:
            _, s, v = torch.svd_lowrank(centred, q=min(RANDOM_CONTROL_COMPONENTS, n, f), niter=2)
        finally:
            torch.random.set_rng_state(state)
        scale = float(np.sqrt(max(n - 1, 1)))
        z = torch.randn(n, s.shape[0], generator=generator)
        samples = (z * (s / scale)) @ v.T
        explained = ((s / scale) ** 2) @ (v.T ** 2)  # (F,) variance of each column the components carry
        residual = (centred.pow(2).sum(0) / max(n - 1, 1) - explained).clamp_min(0)
        samples += torch.randn(n, f, generator=generator) * residual.sqrt()
        return samples + mean.float()
    raise ConfigError(f"unknown control {control!r}; valid: none, shuffled, random")


class Regularizer(nn.Module, ABC):
    """Base class. Subclasses set ``layers`` and implement ``forward``.

    Lifecycle: ``setup(model, reg_set)`` once before training (validate, precompute); ``sample`` each step;
    ``on_epoch_start`` each epoch; ``forward(features, index)`` returns a scalar to be weighted.
    Parameters of the module (learned layer weights, uncertainty weights) are optimised with the model.
    """

    layers: tuple[str, ...] = ()
    batch_size: int = 32
    stream: str = "regularization"
    default_layers: str = "penultimate"  # "stages" (all but the penultimate), "penultimate" or "first"
    target_info: dict

    def resolve_layers(self, model: nn.Module, penultimate: str | None = None) -> tuple[str, ...]:
        """Fill in the default layers when none were given; check them against the model."""
        if not self.layers:
            self.layers = default_layers(model, self.default_layers, penultimate)
        model.check_layers(self.layers)
        return self.layers

    @property
    def transforms_ce(self) -> bool:
        """Whether ``transform_ce`` changes the classification loss (it must then be the run's first term)."""
        return False

    def setup(self, model: nn.Module, reg_set: RegularizationSet | None, probe: torch.Tensor | None = None) -> None:
        """Validate against the model and data before training starts; precompute targets.

        ``probe``: a few classification images, for regularizers without a set that must size their state.
        """
        self.resolve_layers(model)
        self.reg_set = reg_set

    def check_run(self, config, data) -> None:
        """Check the run's settings (batch sizes, number of steps) before training; raise ConfigError."""

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Indices into the regularization set for one step (default: a random batch without replacement)."""
        if n < 2:
            raise ConfigError("the regularization set needs at least 2 stimuli")
        return torch.randperm(n, generator=generator)[: min(self.batch_size, n)]

    def on_epoch_start(self, model: nn.Module, train_images: torch.Tensor, epoch: int) -> None:
        """Hook for per-epoch work (e.g. the spectral regularizer's eigenvectors)."""

    def run_facts(self) -> dict:
        """Settings resolved for this run (e.g. a warm-up derived from its length), added to ``target_info``."""
        return {}

    def stimulus_features(self, model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The named layers' features of this term's stimuli (the training loop's second stream). Override to
        run the model differently on them (e.g. cka's BatchNorm statistics)."""
        return model.features(images, self.layers)

    def transform_ce(self, ce: torch.Tensor) -> torch.Tensor:
        """Hook for regularizers that reweight the classification loss (learned uncertainty weighting)."""
        return ce

    @abstractmethod
    def forward(self, features: dict[str, torch.Tensor], index: torch.Tensor | None) -> torch.Tensor:
        """The regularization term (a scalar) from the named layers' features of the sampled stimuli."""


def check_choice(field: str, value, allowed: tuple) -> None:
    """ConfigError unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{field} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def default_layers(model: nn.Module, which: str, penultimate: str | None = None) -> tuple[str, ...]:
    """Default layers of a model: ``stages`` = every named layer before the penultimate one (the conv stages
    of small_cnn and the stem + four stages of a ResNet), ``penultimate`` = the layer before the classifier,
    ``first`` = the first named layer, the V1-like block (small_cnn's ``conv1``, a ResNet's ``stem``).

    ``penultimate`` defaults to the model's last named layer (``fc`` for small_cnn, ``pool`` for ResNets).
    """
    names = tuple(model.layer_names)
    pen = penultimate or names[-1]
    if which == "penultimate":
        return (pen,)
    if which == "first":
        return (names[0],)
    if which == "stages":
        stages = names[: names.index(pen)] if pen in names else names[:-1]
        return stages or (pen,)
    raise ConfigError(f"unknown default layer set {which!r}; valid: stages, penultimate, first")


@torch.no_grad()
def feature_shapes(model: nn.Module, images: torch.Tensor, layers: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes of the named layers' outputs, from two images in eval mode (BN statistics untouched)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        feats = model.features(images[:2].to(device), layers)
    finally:
        model.train(was_training)
    return {name: tuple(f.shape[1:]) for name, f in feats.items()}


def flat(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B, D)."""
    return x.reshape(x.shape[0], -1)


def zero_term(features: dict[str, torch.Tensor]) -> torch.Tensor:
    """A zero scalar on the features' device and dtype (for steps on which a term is skipped)."""
    first = next(iter(features.values()))
    return torch.zeros((), dtype=first.dtype, device=first.device)


def readout_features(features: dict[str, torch.Tensor], layers: tuple[str, ...], pool: int | None) -> torch.Tensor:
    """Concatenate the layers, each average-pooled to pool x pool when spatial (None: as is), flattened: (B, D)."""
    parts = []
    for name in layers:
        f = features[name]
        if f.dim() == 4 and pool is not None:
            f = F.adaptive_avg_pool2d(f, pool)
        parts.append(flat(f))
    return torch.cat(parts, 1)


def readout_dim(shapes: dict[str, tuple[int, ...]], layers: tuple[str, ...], pool: int | None) -> int:
    """Width of :func:`readout_features` for per-sample feature shapes."""
    dim = 0
    for name in layers:
        shape = shapes[name]
        spatial = len(shape) == 3 and pool is not None
        dim += shape[0] * pool * pool if spatial else int(torch.tensor(shape).prod())
    return dim
