"""Neural-similarity regularizer. Li, Brendel, Walker, Cobos, Muhammad, Reimer, Bethge, Sinz, Pitkow &
Tolias (2019), "Learning from brains how to regularize machines", NeurIPS (arXiv 1911.05072).

    L = CE + a * mean_{pairs i != j} (arctanh S_ij^CNN - arctanh S_ij^neural)^2
    S^CNN = sum_l softmax(gamma)_l cos(f_l(x_i) - mu_l, f_l(x_j) - mu_l)

S^neural is the cosine similarity of the stimuli's neural response vectors, centred across stimuli and
unit-normalised. The paper's targets are *denoised*: responses predicted by a CNN fitted to mouse V1, with
neurons weighted by reliability and prediction accuracy (raw neural similarity did not help robustness).
That is the default here (``targets: denoised``, see ``regularizers.targets``): the responses predicted by a
trained, cross-validated CNN encoder (``regularizers.encoder``), each neuroid scaled by
reliability x held-out prediction r (our reading of "weighted by reliability and prediction accuracy"; the
paper gives no formula), then centred and unit-normalised by the cosine. Options: ``average`` (raw
trial-averaged responses), ``reliability``, ``predicted`` (unweighted), and ``predictor: ridge`` (the fast
random-feature ridge instead of the CNN); the ``shuffled`` control applies to any of them.

Paper vs code: the paper writes sum_{i != j}; the code (elieattias1/pixel-reg, built on Li et al.) averages
over k = 16 sampled pairs per step, which we follow (so ``a`` is on the code's scale); the arctanh term is the
paper's by default (``variant="code"`` gives the code's 4x term). Centring uses the code's running
per-channel mean (beta = 0.9) updated with both images of each pair before use.
Defaults (Li et al.): a = 20 (set as the run's weight), all conv stages (ResNet: stem + 4 stages, K = 5).
"""

from __future__ import annotations

from brainalign.registry import REGULARIZERS
from brainalign.regularizers._similarity import PairSimilarityRegularizer
from brainalign.regularizers.base import RegularizerInfo


@REGULARIZERS.register(
    "neural_similarity",
    description="Li et al. 2019: layer-mixed feature similarity matched to neural similarity (arctanh^2)",
    info=RegularizerInfo(target="recording", reference="Li et al. 2019, arXiv 1911.05072",
                         default_layers="stages", kind="similarity", target_defaults=(("targets", "denoised"),)))
class NeuralSimilarity(PairSimilarityRegularizer):
    """Pairs of regularization stimuli; target = cosine similarity of their (centred) neural responses."""
