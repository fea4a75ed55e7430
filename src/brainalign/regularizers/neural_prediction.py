"""Neural-prediction co-training: a readout head on the model predicts neural responses (multi-task learning).

    L = CE + w * L_neural,   L_neural = mean_{stimuli, outputs} loss(head(phi(x)), r)

phi(x): the chosen layer(s), each average-pooled to ``pool`` x ``pool`` and flattened, concatenated; head:
a linear readout to every target output (neuroid x time bin, flattened; EEG: channel x time point)
(``readout: linear``, default), or ``readout: gaussian2d``: Safarani et al.'s Gaussian2d readout
(``readouts.Gaussian2d``: one learned position per output on one conv layer's map, sampled around mu during
training, linear weights over channels; default layer the deepest stage that is still a map).
loss: ``mse`` (default) or ``poisson`` (rate = ELU(z) + 1, loss = rate - r log(rate + eps), as
neuralpredictors' ``PoissonLoss``).

Three papers, three weightings (``weighting``):

- ``fixed``: CE + w L (w is the run's weight).
- ``uncertainty`` (learned; set the run's weight to 1): Kendall-style log-variances s.
  ``uncertainty_form="safarani"`` (Safarani et al. 2021, sinzlab/neural_cotraining):
  e^{-s_c} CE + s_c/2 + 1/2 e^{-s_n} L + s_n/2.
  ``uncertainty_form="guo"`` (Guo et al. 2024, EEG dual task): L/(2 d_1^2) + CE/(2 d_2^2) + log d_1 + log d_2,
  i.e. 1/2 e^{-s} for both terms with s = log d^2.
- ``convex`` (Shao et al. 2024, NSD guidance): (1 - alpha) CE + alpha L, alpha = 0.9 (set the run's weight to 1).

The learned and convex weightings change the CE term; the training loop applies that to the run's first
regularizer only, so such a regularizer must be listed first (checked before training).

Targets (chosen by the data pipeline, see ``build_regularizers``): trial-averaged responses of the recording's
stimuli, reliability-weighted responses, or a frozen fitted predictor's responses ("denoised", Safarani's
two-stage training) -- optionally for the run's *training images* (``stimuli: train``), Shao's pseudo-voxel
guidance, restricted to one ROI with ``neuroid_filter``.

References: Safarani et al., "Towards robust vision by multi-task learning on monkey visual cortex", NeurIPS
2021. Guo et al., "Limited but consistent gains in adversarial robustness by co-training object recognition
models with human EEG", arXiv 2409.03646. Shao, Ma, Li & Beck, arXiv 2405.02564.
Differences: Safarani read V1 from VGG19 features[:17] with a Gaussian2d readout (``readout: gaussian2d``
on a stage of our models; the linear readout of pooled features stays the default, ``pool`` > 1 keeps a coarse
spatial map). Guo's best head concatenated blocks 3 and 4
(``layers: [layer3, layer4]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brainalign.errors import ConfigError, DataError
from brainalign.registry import REGULARIZERS
from brainalign.regularizers.base import (
    RegularizationSet,
    Regularizer,
    RegularizerInfo,
    check_choice,
    default_layers,
    feature_shapes,
    flat,
    readout_dim,
    readout_features,
)
from brainalign.regularizers.readouts import Gaussian2d


def poisson_loss(rate: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """mean(rate - target * log(rate + eps)); minimal at rate = target."""
    return (rate - target * torch.log(rate + eps)).mean()


def prediction_loss(output: torch.Tensor, target: torch.Tensor, loss: str = "mse") -> torch.Tensor:
    """MSE of the raw outputs, or the Poisson loss of the rates ELU(output) + 1."""
    if loss == "poisson":
        return poisson_loss(F.elu(output) + 1, target)
    return F.mse_loss(output, target)


@REGULARIZERS.register(
    "neural_prediction",
    description="multi-task co-training: a readout head predicts neural responses (Safarani 2021, Guo 2024, "
                "Shao 2024)",
    info=RegularizerInfo(target="recording", reference="Safarani et al. 2021; Guo et al. 2024; Shao et al. 2024",
                         default_layers="penultimate", kind="prediction"))
class NeuralPrediction(Regularizer):
    """A linear readout from the chosen layer(s) to every neuroid x time bin, trained with the model.

    Args:
        layers: layers read (default: the penultimate layer).
        loss: ``mse`` (default) or ``poisson`` (non-negative responses).
        weighting: ``fixed`` (default), ``uncertainty`` or ``convex`` (see the module docstring).
        uncertainty_form: ``safarani`` (default) or ``guo``.
        alpha: the convex weighting's share of the neural loss (Shao et al.: 0.9).
        pool: spatial side each conv layer is average-pooled to before the linear readout (default 1).
        readout: ``linear`` (default) or ``gaussian2d`` (one conv layer; default the deepest stage still a map).
        init_sigma: the Gaussian2d readout's initial position noise (in map coordinates [-1, 1]).
        init_log_var: initial log-variance of the learned weighting.
        batch_size: stimuli per step (default: the run's ``train.reg_batch_size``).
    """

    default_layers = "penultimate"

    def __init__(self, layers=None, loss: str = "mse", weighting: str = "fixed", uncertainty_form: str = "safarani",
                 alpha: float = 0.9, pool: int = 1, init_log_var: float = 0.0, batch_size: int | None = None,
                 readout: str = "linear", init_sigma: float = 0.3):
        super().__init__()
        check_choice("loss", loss, ("mse", "poisson"))
        check_choice("readout", readout, ("linear", "gaussian2d"))
        self.readout, self.init_sigma = readout, float(init_sigma)
        check_choice("weighting", weighting, ("fixed", "uncertainty", "convex"))
        check_choice("uncertainty_form", uncertainty_form, ("safarani", "guo"))
        if not 0 < alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
        if int(pool) < 1:
            raise ConfigError(f"pool must be >= 1, got {pool}")
        self.layers = tuple(layers) if layers else ()
        self.loss, self.weighting, self.uncertainty_form = loss, weighting, uncertainty_form
        self.alpha, self.pool = float(alpha), int(pool)
        self.init_log_var = float(init_log_var)
        if batch_size is not None:
            self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        self.targets: torch.Tensor | None = None
        self.head: nn.Module | None = None

    @property
    def transforms_ce(self) -> bool:
        return self.weighting != "fixed"

    def resolve_layers(self, model: nn.Module, penultimate: str | None = None) -> tuple[str, ...]:
        """The Gaussian2d readout reads one conv map: by default the deepest stage whose output is a map (chosen
        in ``setup``, from the feature shapes; here the stages are the candidates)."""
        if self.readout == "gaussian2d":
            if not self.layers:
                self._candidates = default_layers(model, "stages", penultimate)
                self.layers = self._candidates[-1:]
            if len(self.layers) != 1:
                raise ConfigError(f"readout: gaussian2d reads one layer; got layers {list(self.layers)}")
        return super().resolve_layers(model, penultimate)

    def setup(self, model: nn.Module, reg_set: RegularizationSet | None, probe: torch.Tensor | None = None) -> None:
        if reg_set is None or reg_set.targets is None:
            raise ConfigError("neural_prediction needs neural targets (a recording)")
        super().setup(model, reg_set)
        targets = flat(reg_set.targets).float()
        if self.loss == "poisson" and bool((targets < 0).any()):
            if reg_set.control != "random":
                raise DataError("neural_prediction loss=poisson needs non-negative responses (rates or counts); "
                                "these targets have negative values: use loss: mse")
            targets = targets.clamp_min(0)  # Gaussian random targets with matched statistics: rates >= 0
        self.targets = targets
        shapes = feature_shapes(model, reg_set.images, self.layers)
        device = next(model.parameters()).device
        if self.readout == "gaussian2d":
            candidates = getattr(self, "_candidates", None)
            if candidates:  # no layer named: the deepest stage that still has a spatial map
                all_shapes = feature_shapes(model, reg_set.images, tuple(candidates))
                spatial = [name for name in candidates if len(all_shapes[name]) == 3]
                self.layers = (spatial[-1],) if spatial else self.layers
                shapes = feature_shapes(model, reg_set.images, self.layers)
            shape = shapes[self.layers[0]]
            if len(shape) != 3:
                raise ConfigError(f"readout: gaussian2d needs a conv layer (C, H, W); {self.layers[0]} gives "
                                  f"{shape}; name one with layers: [...]")
            mean = targets.mean(0)
            if self.loss == "poisson":  # the bias starts where the rate ELU(z) + 1 equals the mean response
                mean = torch.where(mean >= 1, mean - 1, torch.log(mean.clamp_min(1e-3)))
            self.head = Gaussian2d(shape[0], targets.shape[1], init_sigma=self.init_sigma,
                                   mean_activity=mean).to(device)
        else:
            in_dim = readout_dim(shapes, self.layers, self.pool)
            self.head = nn.Linear(in_dim, targets.shape[1]).to(device)
        if self.weighting == "uncertainty":
            self.log_var_neural = nn.Parameter(torch.tensor(self.init_log_var))
            self.log_var_ce = nn.Parameter(torch.tensor(self.init_log_var))

    def predict(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Head outputs (B, F) (for the Poisson loss, rates are ELU(output) + 1)."""
        if self.readout == "gaussian2d":
            return self.head(features[self.layers[0]])
        return self.head(readout_features(features, self.layers, self.pool))

    def transform_ce(self, ce: torch.Tensor) -> torch.Tensor:
        if self.weighting == "convex":
            return (1 - self.alpha) * ce
        if self.weighting == "uncertainty":
            s = self.log_var_ce
            factor = 1.0 if self.uncertainty_form == "safarani" else 0.5
            return factor * torch.exp(-s) * ce + s / 2
        return ce

    def forward(self, features: dict[str, torch.Tensor], index: torch.Tensor | None) -> torch.Tensor:
        if index is None:
            raise ConfigError("neural_prediction needs the indices of its regularization stimuli")
        out = self.predict(features)
        target = self.targets[index.cpu()].to(device=out.device, dtype=out.dtype)
        term = prediction_loss(out, target, self.loss)
        if self.weighting == "convex":
            return self.alpha * term
        if self.weighting == "uncertainty":
            s = self.log_var_neural
            return 0.5 * torch.exp(-s) * term + s / 2
        return term
