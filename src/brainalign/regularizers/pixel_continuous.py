"""Pixel-continuous control: the similarity regularizer with the *unthresholded* pixel similarity as target.

    T_ij = cos(p_i - pbar, p_j - pbar)          (channel-averaged, mean-image-subtracted pixels)
    L = mean_{pairs} (arctanh S_ij^CNN - arctanh T_ij)^2

The pixel-level baseline for any neural target: a neural similarity regularizer earns a structure-specific
gain only where it beats this control (Attias et al. 2024 found pixel similarity correlates r = 0.83 with
model-predicted neural similarity). Same machinery and defaults as ``pixel_similarity`` otherwise.
"""

from __future__ import annotations

from brainalign.registry import REGULARIZERS
from brainalign.regularizers._similarity import PairSimilarityRegularizer
from brainalign.regularizers.base import RegularizerInfo


@REGULARIZERS.register(
    "pixel_continuous",
    description="control: feature similarity matched to the unthresholded pixel similarity",
    info=RegularizerInfo(target="pixels", reference="control (after Attias et al. 2024)", is_control=True,
                         default_layers="stages", kind="similarity"))
class PixelContinuous(PairSimilarityRegularizer):
    """Target T_ij = cosine similarity of mean-subtracted pixels, not thresholded."""
