"""A frozen neural predictor for denoised targets and pseudo-targets (two-stage training).

Li et al. 2019 regularized with the similarity of *model-predicted* V1 responses (a 3-layer CNN fitted to
mouse V1; r = 0.73 with repeat-averaged similarity versus 0.39 for raw single trials); Safarani et al. 2021
co-trained on a single-task model's predicted responses; Shao et al. 2024 used a frozen fMRI encoder to
produce pseudo-voxel targets for every training image. ``FeatureRidgePredictor`` is our stand-in for those
fitted predictors: fixed random convolutional features of the images (a random ReLU filter bank, rectified
in both signs and average-pooled, plus coarse pixels), then ridge regression to the responses with the
penalty chosen by leave-one-out error (scikit-learn ``RidgeCV``). It is frozen after fitting and
deterministic under its seed. Its cross-validated predictivity is reported per output (K folds by
``alignment.predictivity``'s fold rule, the same folds as the CNN encoder's for the same seed: out-of-fold
predictions scored with Pearson r over all stimuli), so that a reader can judge how much of the targets is
signal, and so that neuroids can be weighted by prediction accuracy (``targets: denoised``).

Difference from the papers: their predictors are trained CNNs (Li, Safarani) or pretrained encoders (Shao);
``encoder.fit_encoder`` trains one (``predictor: cnn``, the default). This ridge (``predictor: ridge``) is the
fast option: no training loop, weaker for deep areas (IT).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import RidgeCV

from brainalign.alignment.predictivity import fold_labels, pearson_columns
from brainalign.errors import DataError

ALPHAS = tuple(10.0 ** np.arange(-2, 6))


def blas_threads():
    """Limit numpy's BLAS to torch's thread count while scikit-learn fits: on a shared machine its default
    threads oversubscribe the cores (a 512-feature RidgeCV took 4.6-11 s with them, 1.0 s with one)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(torch.get_num_threads())


def mean_heldout_r(r: np.ndarray) -> float:
    """Mean held-out r over a predictor's outputs; NaN (constant outputs) left out; 0 when none is finite."""
    return float(np.nanmean(r)) if np.isfinite(r).any() else 0.0


@dataclass
class FeatureRidgePredictor:
    """Random-feature ridge encoder: images (N, C, H, W) in [0, 1] -> responses (N, F)."""

    filters: torch.Tensor  # (K, C, k, k)
    pool: int
    pixel_side: int
    feature_mean: np.ndarray
    feature_std: np.ndarray
    coef: np.ndarray  # (P, F)
    intercept: np.ndarray  # (F,)
    alpha: float
    heldout_r_per_output: np.ndarray  # (F,) cross-validated Pearson r per output (NaN for constant outputs)

    @property
    def heldout_r(self) -> float:
        """Mean cross-validated r over outputs (constant outputs left out)."""
        return mean_heldout_r(self.heldout_r_per_output)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch: int = 1024) -> np.ndarray:
        """Fixed features (N, P), float64."""
        out = []
        for start in range(0, len(images), batch):
            x = images[start:start + batch].float()
            x = x - 0.5
            z = F.conv2d(x, self.filters, padding=self.filters.shape[-1] // 2)
            energy = torch.cat([torch.relu(z), torch.relu(-z)], 1)
            parts = [F.adaptive_avg_pool2d(energy, self.pool).flatten(1),
                     F.adaptive_avg_pool2d(x.mean(1, keepdim=True), self.pixel_side).flatten(1)]
            out.append(torch.cat(parts, 1).double().numpy())
        return np.concatenate(out, 0)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted responses (N, F), float32."""
        f = (self.features(images) - self.feature_mean) / self.feature_std
        return torch.from_numpy((f @ self.coef + self.intercept).astype(np.float32))

    def describe(self) -> dict:
        r = self.heldout_r_per_output
        return {"kind": "random-feature ridge", "n_features": int(self.coef.shape[0]), "alpha": float(self.alpha),
                "heldout_r": self.heldout_r,
                "heldout_r_median": float(np.nanmedian(r)) if np.isfinite(r).any() else 0.0}


def fit_predictor(images: torch.Tensor, responses: torch.Tensor, *, seed: int = 0, n_filters: int = 64,
                  pool: int = 4, folds: int = 5) -> FeatureRidgePredictor:
    """Fit the random-feature ridge encoder to (N, F) responses of (N, C, H, W) images.

    Args:
        seed: seed of the random filter bank and of the cross-validation folds.
        n_filters: random filters (each gives two rectified maps).
        pool: side of the pooled feature maps.
        folds: K of the cross-validation that scores the predictor (each fold's penalty is chosen by
            leave-one-out on its training stimuli) before it is refitted on all stimuli.
    """
    n = images.shape[0]
    if n < 10:
        raise DataError(f"fitting a neural predictor needs at least 10 stimuli, got {n}")
    y = responses.reshape(n, -1).double().numpy()
    if not np.isfinite(y).all():
        raise DataError("neural predictor: responses contain NaN or infinite values")
    gen = torch.Generator().manual_seed(seed)
    side = images.shape[-1]
    k = 5 if side >= 5 else 3 if side >= 3 else 1  # odd, no larger than the image
    filters = torch.randn(n_filters, images.shape[1], k, k, generator=gen)
    filters = filters - filters.mean(dim=(1, 2, 3), keepdim=True)
    filters = filters / filters.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
    pred = FeatureRidgePredictor(filters, min(pool, images.shape[-1]), min(8, images.shape[-1]),
                                 np.zeros(1), np.ones(1), np.zeros((1, 1)), np.zeros(1), 0.0, np.zeros(0))
    feats = pred.features(images)
    pred.feature_mean = feats.mean(0)
    pred.feature_std = feats.std(0) + 1e-8
    feats = (feats - pred.feature_mean) / pred.feature_std

    labels = fold_labels(n, folds, None, seed)
    oof = np.zeros_like(y)
    with blas_threads():
        for k in range(folds):
            train, test = labels != k, labels == k
            fold = RidgeCV(alphas=ALPHAS).fit(feats[train], y[train])
            oof[test] = fold.predict(feats[test]).reshape(-1, y.shape[1])
        model = RidgeCV(alphas=ALPHAS).fit(feats, y)
    pred.heldout_r_per_output = pearson_columns(torch.from_numpy(oof), torch.from_numpy(y)).numpy()

    pred.coef = np.asarray(model.coef_, dtype=np.float64).reshape(y.shape[1], -1).T
    pred.intercept = np.asarray(model.intercept_, dtype=np.float64).reshape(-1)
    pred.alpha = float(model.alpha_)
    return pred
