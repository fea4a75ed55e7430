"""How brain-like a representation is: neural predictivity, RSA, CKA, and the features they are measured on.

    predictivity(features, targets)    cross-validated ridge -> Pearson r per neuroid x time bin (/ ceiling)
    fold_labels, pearson_columns       its split and its score, shared with the regularizers' neural predictors
    rdm(responses), compare_rdms(a, b) representational dissimilarity matrices via rsatoolbox
    linear_cka(x, y)                   linear centred kernel alignment, differentiable (torch)
    extract_features(model, images)    layer outputs as (stimulus, feature) arrays

See docs/alignment.md for the formulas, defaults and normalisation conventions.
"""

from brainalign.alignment.cka import linear_cka
from brainalign.alignment.extract import extract_features
from brainalign.alignment.predictivity import (
    DEFAULT_ALPHAS,
    PredictivityResult,
    RidgeFit,
    fold_labels,
    pearson_columns,
    predictivity,
    ridge_loo_fit_predict,
)
from brainalign.alignment.rsa import calc_rdm, compare_rdms, rdm

__all__ = [
    "DEFAULT_ALPHAS",
    "PredictivityResult",
    "RidgeFit",
    "calc_rdm",
    "compare_rdms",
    "extract_features",
    "fold_labels",
    "linear_cka",
    "pearson_columns",
    "predictivity",
    "rdm",
    "ridge_loo_fit_predict",
]
