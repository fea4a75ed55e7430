"""A trained CNN encoder of a recording: the frozen neural predictor behind denoised and predicted targets.

Li et al. 2019 denoised their targets with a 3-layer CNN fitted to mouse V1; Safarani et al. 2021 trained a
single-task model on monkey V1 (Poisson loss, Adam) whose predictions became the co-training targets; Shao et
al. 2024 used a frozen trained encoder for pseudo-voxel targets. This module trains such an encoder:

    core:    [conv(k) - BN - ELU] x n_layers  (first kernel ``kernel``, then 3; padding keeps the map size)
    readout: linear (the map average-pooled to ``pool`` x ``pool``, flattened -> outputs; default) or
             Gaussian2d (Lurz et al. 2021; ``readouts.Gaussian2d``: one learned position per neuron)
    loss:    poisson (rate = ELU(z) + 1, loss = rate - r log rate, as neuralpredictors' PoissonLoss) or mse
             (on z-scored responses); ``auto``: poisson when every response is >= 0, else mse.
    refit:   after training, the linear readout is refitted by ridge regression on the frozen core's pooled
             features of the fold's training stimuli (standardised; penalty by leave-one-out, scikit-learn
             ``RidgeCV``, the random-feature ridge's grid). On sim_v1 this adds ~0.02 to the held-out r
             (``benchmarks/bench_encoder.py``): early stopping on a small validation part under-regularises
             the trained readout.

Cross-validation: the stimuli are split into K folds (``alignment.predictivity``'s fold rule); the model of
fold k is trained on the other folds (10% of them held out for early stopping: the epoch with the lowest
validation loss is kept) and predicts fold k. The out-of-fold predictions, scored per output with Pearson r
over all stimuli (the convention of ``alignment.predictivity``), are the encoder's held-out predictivity
``heldout_r_per_output``. The frozen predictor is the mean of the K fold models (a cross-validation ensemble:
no extra fit, and every reported number is out of sample).

Cache: a fitted encoder is saved as safetensors at ``<cache dir>/encoders/<fingerprint>.safetensors``, keyed by
a SHA-256 of the images, the responses and the settings (atomic write, under a file lock so that parallel runs
train it once). The cache dir is ``cache_dir`` or ``$BRAINALIGN_CACHE_DIR`` or ``~/.cache/brainalign``.

Differences from the papers: no behavioural inputs (pupil, running) or shifter; a small core sized for the
data (8 x 8 digits to 64 x 64), trained with Adam for at most ``max_epochs`` epochs; a linear readout by
default, because on 8 x 8 images the simulated cells' receptive fields span most of the map and a
Gaussian2d readout (one point per neuron) predicted worse in our runs (docs/regularizers.md).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brainalign.alignment.predictivity import fold_labels, pearson_columns
from brainalign.errors import BrainAlignError, ConfigError, DataError
from brainalign.regularizers.base import check_choice
from brainalign.regularizers.neural_prediction import prediction_loss
from brainalign.regularizers.predictor import mean_heldout_r
from brainalign.regularizers.readouts import Gaussian2d

#: Bumped when training or the file layout changes, so that old cache entries are not reused.
ENCODER_VERSION = 1


@dataclass(frozen=True)
class EncoderSettings:
    """How the encoder is built and trained (all of it enters the cache key).

    Attributes:
        channels: channels of every core layer.
        n_layers: conv layers of the core.
        kernel: side of the first layer's kernel (later layers use 3).
        readout: ``gaussian2d`` (default) or ``linear``.
        loss: ``auto`` (poisson for non-negative responses, else mse), ``poisson`` or ``mse``.
        folds: K of the cross-validation (>= 2).
        max_epochs, patience: early stopping on a 10% validation part of each fold's training stimuli.
        batch_size, lr, weight_decay: Adam's settings.
        init_sigma: the Gaussian2d readout's initial position noise.
        pool: the linear readout reads the core's map average-pooled to pool x pool (0: the full map).
        refit: refit the linear readout by ridge regression after training (ignored for gaussian2d).
        seed: fixes the folds, the initialisation, the batches and the readout noise.
    """

    channels: int = 32
    n_layers: int = 2
    kernel: int = 5
    readout: str = "linear"
    loss: str = "auto"
    folds: int = 5
    max_epochs: int = 10
    patience: int = 4
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 1e-4
    init_sigma: float = 0.3
    pool: int = 4
    refit: bool = True
    seed: int = 0

    def __post_init__(self):
        check_choice("encoder readout", self.readout, ("gaussian2d", "linear"))
        check_choice("encoder loss", self.loss, ("auto", "poisson", "mse"))
        if not isinstance(self.pool, int) or self.pool < 0:
            raise ConfigError(f"encoder pool must be an integer >= 0, got {self.pool!r}")
        for name in ("channels", "n_layers", "kernel", "max_epochs", "patience", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"encoder {name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"encoder folds must be an integer >= 2, got {self.folds!r}")
        if self.kernel % 2 == 0:
            raise ConfigError(f"encoder kernel must be odd, got {self.kernel}")
        if not self.lr > 0 or self.weight_decay < 0 or not self.init_sigma > 0:
            raise ConfigError("encoder lr and init_sigma must be > 0 and weight_decay >= 0")


class CNNEncoder(nn.Module):
    """Images (B, C, H, W) in [0, 1] -> outputs z (B, F): rates ELU(z) + 1 (poisson) or z-scores (mse)."""

    def __init__(self, in_channels: int, side: tuple[int, int], outdims: int, settings: EncoderSettings,
                 mean_activity: torch.Tensor | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for k in range(settings.n_layers):
            size = settings.kernel if k == 0 else 3
            layers += [nn.Conv2d(c, settings.channels, size, padding=size // 2, bias=False),
                       nn.BatchNorm2d(settings.channels), nn.ELU()]
            c = settings.channels
        self.core = nn.Sequential(*layers)
        self.register_buffer("pixel_mean", torch.zeros(()))
        self.register_buffer("pixel_std", torch.ones(()))
        if settings.readout == "gaussian2d":
            self.readout: nn.Module = Gaussian2d(c, outdims, init_sigma=settings.init_sigma,
                                                 mean_activity=mean_activity, batch_sample=False)
        else:
            if settings.pool:
                side = (min(settings.pool, side[0]), min(settings.pool, side[1]))
            self.readout = nn.Linear(c * side[0] * side[1], outdims)
            if mean_activity is not None:
                with torch.no_grad():
                    self.readout.bias.copy_(mean_activity)
        self.flatten = settings.readout == "linear"
        self.pool = settings.pool
        self.register_buffer("ridge_head", torch.zeros((), dtype=torch.bool))  # outputs on the response scale

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The linear readout's input (B, D): the core's map, pooled and flattened."""
        h = self.core((x - self.pixel_mean) / self.pixel_std)  # (B, C, H, W)
        if self.pool:
            h = F.adaptive_avg_pool2d(h, (min(self.pool, h.shape[-2]), min(self.pool, h.shape[-1])))
        return h.flatten(1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.flatten:
            return self.readout(self.pooled(x))
        return self.readout(self.core((x - self.pixel_mean) / self.pixel_std), generator=generator)


def _inverse_rate(mean: torch.Tensor) -> torch.Tensor:
    """z with ELU(z) + 1 = mean (mean > 0): the Poisson readout's initial bias."""
    mean = mean.clamp_min(1e-3)
    return torch.where(mean >= 1, mean - 1, torch.log(mean))


@dataclass
class TrainedEncoder:
    """The frozen predictor: the mean of K fold models, with their out-of-fold predictivity.

    Attributes:
        models: the K fold models (eval mode, no gradients).
        settings: how they were trained.
        loss: the loss used (``poisson`` or ``mse``; ``auto`` resolved).
        response_mean, response_std: (F,) the z-scoring of mse targets (0 and 1 for poisson).
        heldout_r_per_output: (F,) Pearson r of the out-of-fold predictions (NaN for constant outputs).
        fingerprint: the cache key.
        cache: ``hit``, ``miss`` (trained and saved) or ``off``.
    """

    models: list[CNNEncoder]
    settings: EncoderSettings
    loss: str
    response_mean: torch.Tensor
    response_std: torch.Tensor
    heldout_r_per_output: np.ndarray
    fingerprint: str
    cache: str = "off"
    epochs: list[int] = field(default_factory=list)

    @property
    def heldout_r(self) -> float:
        """Mean held-out r over outputs (constant outputs left out)."""
        return mean_heldout_r(self.heldout_r_per_output)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 1024) -> torch.Tensor:
        """Predicted responses (N, F), float32, on the responses' scale."""
        out = []
        for start in range(0, len(images), batch):
            x = images[start:start + batch].float()
            preds = [_response_scale(m, x, self.loss, self.response_mean, self.response_std) for m in self.models]
            out.append(torch.stack(preds).mean(0))
        return torch.cat(out, 0)

    def describe(self) -> dict:
        r = self.heldout_r_per_output
        return {"kind": "cnn encoder", "readout": self.settings.readout, "loss": self.loss,
                "ridge_head": bool(self.models[0].ridge_head),
                "folds": self.settings.folds, "heldout_r": self.heldout_r,
                "heldout_r_median": float(np.nanmedian(r)) if np.isfinite(r).any() else 0.0,
                "epochs": list(self.epochs), "cache": self.cache, "fingerprint": self.fingerprint[:16]}


def _response_scale(model: CNNEncoder, x: torch.Tensor, loss: str, mean: torch.Tensor,
                    std: torch.Tensor) -> torch.Tensor:
    """A fold model's predictions (B, F) on the responses' scale."""
    z = model(x)
    if bool(model.ridge_head):  # a linear ridge readout: rates (poisson) are clipped at 0
        return z.clamp_min(0) if loss == "poisson" else z
    if loss == "poisson":
        return F.elu(z) + 1
    return z * std + mean


@torch.no_grad()
def _refit_readout(model: CNNEncoder, images: torch.Tensor, y: torch.Tensor) -> None:
    """Replace the trained linear readout by ridge regression (LOO penalty) on the frozen pooled features."""
    from sklearn.linear_model import RidgeCV

    from brainalign.regularizers.predictor import ALPHAS, blas_threads

    f = model.pooled(images).double()
    mu, sd = f.mean(0), f.std(0) + 1e-8
    with blas_threads():
        fit = RidgeCV(alphas=ALPHAS).fit(((f - mu) / sd).numpy(), y.double().numpy())
    coef = torch.from_numpy(np.asarray(fit.coef_, dtype=np.float64).reshape(y.shape[1], -1))  # (F, D)
    intercept = torch.from_numpy(np.asarray(fit.intercept_, dtype=np.float64).reshape(-1))
    model.readout.weight.copy_((coef / sd).float())
    model.readout.bias.copy_((intercept - coef @ (mu / sd)).float())
    model.ridge_head.fill_(True)


def fingerprint(images: torch.Tensor, responses: torch.Tensor, settings: EncoderSettings) -> str:
    """SHA-256 of the images, the responses (both float32, with shapes) and the settings."""
    h = hashlib.sha256()
    h.update(json.dumps({"version": ENCODER_VERSION, "settings": asdict(settings)}, sort_keys=True).encode())
    for t in (images, responses):
        a = np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
        h.update(json.dumps(list(a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$BRAINALIGN_CACHE_DIR``, else ``~/.cache/brainalign``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("BRAINALIGN_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "brainalign"


def fit_encoder(images: torch.Tensor, responses: torch.Tensor, settings: EncoderSettings | None = None, *,
                cache: bool = True, cache_dir: str | os.PathLike | None = None) -> TrainedEncoder:
    """Train (or load from the cache) the cross-validated CNN encoder of (N, F) responses to (N, C, H, W) images.

    Raises:
        DataError: fewer stimuli than 5 per fold, non-finite responses, or poisson with negative responses.
    """
    settings = settings or EncoderSettings()
    n = images.shape[0]
    y = responses.reshape(n, -1).float()
    if images.dim() != 4:
        raise DataError(f"encoder: images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if n < 5 * settings.folds:
        raise DataError(f"encoder: {n} stimuli are too few for {settings.folds}-fold cross-validation "
                        f"(at least {5 * settings.folds})")
    if not torch.isfinite(y).all():
        raise DataError("encoder: responses contain NaN or infinite values")
    if settings.loss == "poisson" and bool((y < 0).any()):
        raise DataError("encoder loss poisson needs non-negative responses; use loss: mse")
    key = fingerprint(images, y, settings)
    if not cache:
        return _fit(images.float(), y, settings, key)
    from filelock import FileLock

    path = cache_root(cache_dir) / "encoders" / f"{key}.safetensors"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrainAlignError(f"encoder cache: cannot create {path.parent} ({exc.strerror or exc}); set "
                              f"BRAINALIGN_CACHE_DIR to a writable folder") from None
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                return _load(path, images, y, settings, key)
            except BrainAlignError:
                pass  # unreadable or stale: train again and replace it
        enc = _fit(images.float(), y, settings, key)
        _save(path, enc)
        enc.cache = "miss"
        return enc


def _fit(images: torch.Tensor, y: torch.Tensor, s: EncoderSettings, key: str) -> TrainedEncoder:
    n = images.shape[0]
    loss = s.loss if s.loss != "auto" else ("poisson" if bool((y >= 0).all()) else "mse")
    if loss == "mse":
        mean, std = y.mean(0), y.std(0).clamp_min(1e-8)
    else:
        mean, std = torch.zeros(y.shape[1]), torch.ones(y.shape[1])
    target = (y - mean) / std  # poisson: the responses themselves
    labels = fold_labels(n, s.folds, None, s.seed)
    oof = torch.zeros_like(y)
    models, epochs = [], []
    for k in range(s.folds):
        train, test = np.flatnonzero(labels != k), np.flatnonzero(labels == k)
        model, epoch = _train_fold(images, target, train, s, loss, k)
        if s.refit and s.readout == "linear":
            _refit_readout(model, images[train], y[train])
        with torch.no_grad():
            oof[test] = _response_scale(model, images[test], loss, mean, std)
        models.append(model)
        epochs.append(epoch)
    r = pearson_columns(oof.double(), y.double()).numpy()
    return TrainedEncoder(models, s, loss, mean, std, r, key, "off", epochs)


def _train_fold(images: torch.Tensor, target: torch.Tensor, train: np.ndarray, s: EncoderSettings, loss: str,
                fold: int) -> tuple[CNNEncoder, int]:
    gen = torch.Generator().manual_seed(s.seed * 1009 + fold)
    order = train[torch.randperm(len(train), generator=gen).numpy()]
    n_val = max(1, len(order) // 10)
    val, fit = torch.as_tensor(order[:n_val]), torch.as_tensor(order[n_val:])
    mean_act = target[fit].mean(0)
    init = _inverse_rate(mean_act) if loss == "poisson" else mean_act
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed * 1009 + fold)
        model = CNNEncoder(images.shape[1], tuple(images.shape[-2:]), target.shape[1], s, init)
    model.pixel_mean.fill_(float(images[fit].mean()))
    model.pixel_std.fill_(float(images[fit].std().clamp_min(1e-6)))
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    best, best_state, best_epoch, waited = float("inf"), None, 0, 0
    for epoch in range(1, s.max_epochs + 1):
        model.train()
        perm = fit[torch.randperm(len(fit), generator=gen)]
        for start in range(0, len(perm), s.batch_size):
            idx = perm[start:start + s.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            opt.zero_grad()
            prediction_loss(model(images[idx], generator=gen), target[idx], loss).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(prediction_loss(model(images[val]), target[val], loss))
        if val_loss < best - 1e-6:
            best, best_epoch, waited = val_loss, epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= s.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, best_epoch


def _save(path: Path, enc: TrainedEncoder) -> None:
    from brainalign.io import save_checkpoint

    tensors = {f"model{k}.{name}": t for k, m in enumerate(enc.models) for name, t in m.state_dict().items()}
    tensors.update(response_mean=enc.response_mean, response_std=enc.response_std,
                   heldout_r=torch.from_numpy(np.asarray(enc.heldout_r_per_output, dtype=np.float64)))
    meta = {"fingerprint": enc.fingerprint, "settings": json.dumps(asdict(enc.settings), sort_keys=True),
            "loss": enc.loss, "epochs": json.dumps(enc.epochs), "version": str(ENCODER_VERSION)}
    save_checkpoint(path, tensors, meta)


def _load(path: Path, images: torch.Tensor, y: torch.Tensor, s: EncoderSettings, key: str) -> TrainedEncoder:
    from brainalign.io import load_checkpoint

    tensors, meta = load_checkpoint(path)
    if meta.get("fingerprint") != key:
        raise BrainAlignError(f"{path}: cached encoder has another fingerprint")
    models = []
    for k in range(s.folds):
        model = CNNEncoder(images.shape[1], tuple(images.shape[-2:]), y.shape[1], s)
        prefix = f"model{k}."
        try:
            model.load_state_dict({name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)})
        except RuntimeError as exc:
            raise BrainAlignError(f"{path}: cached encoder does not fit ({exc})") from None
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        models.append(model)
    return TrainedEncoder(models, s, meta["loss"], tensors["response_mean"], tensors["response_std"],
                          tensors["heldout_r"].numpy(), key, "hit", json.loads(meta.get("epochs", "[]")))
