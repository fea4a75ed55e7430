"""Pixel-similarity regularizer. Attias, Pehlevan & Obeid (2024), "Pixel-Based Similarities as an
Alternative to Neural Data for Improving CNN Adversarial Robustness" (arXiv 2410.03952).

    S^pix_ij = cos(p_i - pbar, p_j - pbar)      (p: flattened, channel-averaged pixels; pbar: mean image)
    T_ij = +1 if S^pix_ij > Th, -1 if S^pix_ij < -Th, else 0   (diagonal 1)
    L = CE + a * mean_{k sampled pairs i < j} (arctanh S_ij^CNN - arctanh T_ij)^2

S^CNN is the same layer mixture as Li et al.'s (see ``neural_similarity``). Pairs are drawn uniformly from all
i < j pairs of the regularization images, k = 16 per step (``train.reg_batch_size`` = 32 images).

Paper vs code (elieattias1/pixel-reg): the code's "arctanh" is mean[(log(1+x+e) - log(1-x+e) - log(1+y+e) +
log(1-y+e))^2], e = 1e-5, without the 1/2 of arctanh, i.e. 4x the paper's term. We implement the paper's term
by default; ``variant="code"`` gives the code's (a = 10 in the code equals a = 40 here). ``loss="mse"`` is the
code's ``--arctanh False``.
Defaults: Th = 0.8 and a = 10 (CIFAR pairs, MNIST-FashionMNIST); (a, Th) = (4, 0.2) MNIST-MNIST,
(10, 0.4) FashionMNIST-MNIST. Their model selection rule is :func:`selection_rule`.
"""

from __future__ import annotations

import torch

from brainalign.errors import ConfigError
from brainalign.registry import REGULARIZERS
from brainalign.regularizers._similarity import PairSimilarityRegularizer, threshold_similarity
from brainalign.regularizers.base import RegularizerInfo


@REGULARIZERS.register(
    "pixel_similarity",
    description="Attias et al. 2024: layer-mixed feature similarity matched to thresholded pixel similarity",
    info=RegularizerInfo(target="pixels", reference="Attias, Pehlevan & Obeid 2024, arXiv 2410.03952",
                         default_layers="stages", kind="similarity"))
class PixelSimilarity(PairSimilarityRegularizer):
    """Target T_ij = threshold(cosine similarity of mean-subtracted pixels, Th) in {-1, 0, +1}.

    Args:
        threshold: Th in [0, 1) (default 0.8).
        **kwargs: see :class:`~brainalign.regularizers._similarity.PairSimilarityRegularizer`.
    """

    def __init__(self, threshold: float = 0.8, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= threshold < 1:
            raise ConfigError(f"pixel_similarity threshold must be in [0, 1), got {threshold}")
        self.threshold = float(threshold)

    def transform_target(self, t: torch.Tensor) -> torch.Tensor:
        return threshold_similarity(t, self.threshold)


def selection_rule(clean_reg: float, clean_unreg: float, robust_reg: float, robust_unreg: float, *,
                   min_clean_ratio: float = 0.9) -> bool:
    """Attias et al.'s rule for accepting a setting (a, Th); defined once in :func:`brainalign.tune.accepts`."""
    from brainalign.tune import accepts

    return accepts(clean_reg, clean_unreg, robust_reg, robust_unreg, min_clean_ratio=min_clean_ratio)
