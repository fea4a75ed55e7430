"""Decorrelation control: the similarity regularizer with the identity target.

    T_ij = 0 for i != j (T = I)
    L = mean_{pairs i != j} (arctanh S_ij^CNN)^2

Pushes every pair of distinct stimuli toward orthogonal (centred) representations. A thresholded similarity
target whose entries are mostly 0 (e.g. pixel similarity at a high threshold) is nearly this control; the
target diagnostics (``regularizers.diagnostics``) flag such targets, and any gain a "neural" target shares
with this control is not evidence of neural structure.
"""

from __future__ import annotations

import torch

from brainalign.registry import REGULARIZERS
from brainalign.regularizers._similarity import PairSimilarityRegularizer
from brainalign.regularizers.base import RegularizerInfo


@REGULARIZERS.register(
    "decorrelation",
    description="control: every off-diagonal pair of stimuli toward zero similarity (identity target)",
    info=RegularizerInfo(target="images", reference="control (identity similarity target)", is_control=True,
                         default_layers="stages", kind="similarity"))
class Decorrelation(PairSimilarityRegularizer):
    """Target T_ij = 0 for every sampled pair (i != j)."""

    needs_rows = False

    def target_pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return torch.zeros(i.shape[0])
