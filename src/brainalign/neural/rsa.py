"""Stimulus-by-stimulus similarity, and how much of a recording's similarity structure pixels already explain.

Pixel similarity follows Attias et al. (arXiv 2410.03952): cosine similarity of flattened grey images
after subtracting the data set's mean image. Neural similarity is the same cosine similarity on
repetition-averaged responses (neuroid x time flattened) after subtracting the mean over stimuli.
"""

from __future__ import annotations

import numpy as np

from brainalign.errors import DataError
from brainalign.neural.recording import NeuralRecording


def similarity_matrix(features: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows after subtracting the mean row: (S, D) -> (S, S)."""
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norm > 0, norm, 1.0)
    return x @ x.T


def pixel_similarity(images: np.ndarray) -> np.ndarray:
    """Attias et al. pixel similarity of (N, C, H, W) images (channels averaged first)."""
    imgs = np.asarray(images, dtype=np.float64)
    return similarity_matrix(imgs.mean(axis=1).reshape(len(imgs), -1))


def neural_similarity(rec: NeuralRecording) -> np.ndarray:
    """Similarity of repetition-averaged responses; neuroid-time features with NaN are left out."""
    avg = rec.average().reshape(rec.n_stimuli, -1)
    keep = np.isfinite(avg).all(axis=0)
    if not keep.any():
        raise DataError("no neuroid has a response to every stimulus")
    return similarity_matrix(avg[:, keep])


def pixel_redundancy(rec: NeuralRecording, images: np.ndarray | None = None) -> float:
    """Pearson correlation between the neural and the pixel similarity (upper triangles, no diagonal).

    Near 1: the recording's representational geometry is what the pixels already give (V1-like);
    near 0: it is not pixel-driven (e.g. invariant, category-driven higher areas).

    Args:
        rec: the recording (needs images unless ``images`` is given).
        images: (N, C, H, W) in stimulus order, instead of ``rec.load_images()``.
    """
    imgs = rec.load_images() if images is None else np.asarray(images)
    if len(imgs) != rec.n_stimuli:
        raise DataError(f"{len(imgs)} images for {rec.n_stimuli} stimuli")
    iu = np.triu_indices(rec.n_stimuli, k=1)
    return float(np.corrcoef(neural_similarity(rec)[iu], pixel_similarity(imgs)[iu])[0, 1])
