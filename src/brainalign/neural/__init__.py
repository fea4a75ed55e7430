"""Neural recordings: loaders for published data sets, simulations, image sources and noise ceilings.

``load_recording(name, path=None, **options)`` returns a ``NeuralRecording`` with responses
(stimulus, repetition, neuroid, time) and labelled metadata. Loaders are registered in
``brainalign.registry.NEURAL_LOADERS`` when this package is imported.
"""

from brainalign.neural import brainio, nsd, simulations, sinz, things_eeg2  # noqa: F401  (registration)
from brainalign.neural.ceilings import (
    expected_ceiling,
    fev,
    internal_consistency,
    ncsnr,
    ncsnr_to_ceiling,
    oracle_correlation,
    spearman_brown,
    splithalf,
)
from brainalign.neural.images import ArrayImages, FolderImages, HDF5Images, ImageSource, ZipImages
from brainalign.neural.inspection import format_inspection, inspect_recording
from brainalign.neural.loading import LoaderInfo, detect_loader, load_recording
from brainalign.neural.loading import simulate as simulate
from brainalign.neural.preprocess import average_repetitions, make_splits, pca, zscore_sessions
from brainalign.neural.recording import NeuralRecording, mask_nan_neuroids
from brainalign.neural.rsa import pixel_redundancy, similarity_matrix
from brainalign.neural.simulations import default_images, implied_noise_ceiling
from brainalign.neural.writers import simulate_to_disk

__all__ = [
    "ArrayImages", "FolderImages", "HDF5Images", "ImageSource", "LoaderInfo", "NeuralRecording", "ZipImages",
    "average_repetitions", "default_images", "detect_loader", "expected_ceiling", "fev", "format_inspection",
    "implied_noise_ceiling", "inspect_recording", "internal_consistency", "load_recording", "make_splits",
    "mask_nan_neuroids", "ncsnr", "ncsnr_to_ceiling", "oracle_correlation", "pca", "pixel_redundancy",
    "similarity_matrix", "simulate", "simulate_to_disk", "spearman_brown", "splithalf", "zscore_sessions",
]
