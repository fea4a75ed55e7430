"""THINGS-EEG2 preprocessed EEG (Gifford, Dwivedi, Roig, Cichy 2022, NeuroImage 264:119754).

Layout (OSF 3jk45 for EEG, OSF y63gw for images)::

    preprocessed_data/sub-XX/preprocessed_eeg_training.npy   dict: preprocessed_eeg_data (16540, 4, 17, 100)
    preprocessed_data/sub-XX/preprocessed_eeg_test.npy       dict: preprocessed_eeg_data (200, 80, 17, 100)
                                                             ch_names (17), times (100, seconds, -0.2..0.79)
    image_set/image_metadata.npy      dict: train_img_files, train_img_concepts, train_img_concepts_THINGS,
                                            test_img_files, test_img_concepts, test_img_concepts_THINGS
    image_set/training_images/<NNNNN_concept>/<concept_XXs>.jpg   1654 concepts x 10
    image_set/test_images/<NNNNN_concept>/<concept_XXs>.jpg       200 concepts x 1

The data are float64 (condition, repetition, channel, time), already epoched, baseline-corrected,
downsampled to 100 Hz and MVNN-whitened; repetitions are shuffled across sessions. Condition i is the
i-th image in sorted (concept folder, file) order, which is the order of ``image_metadata.npy``; the
loader checks that order before pairing responses with images.

The ``.npy`` files are pickles: they are read with ``brainalign.neural.safe_pickle`` (no code runs),
and the 0.9 GB training array is converted to float32 in chunks straight from disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.errors import ConfigError, DataError
from brainalign.neural.images import FolderImages
from brainalign.neural.loading import LoaderInfo
from brainalign.neural.recording import NeuralRecording, mask_nan_neuroids
from brainalign.neural.safe_pickle import as_float32, load_npy
from brainalign.registry import NEURAL_LOADERS

CHANNELS = ("P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8",
            "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2")

# Approximate 10-10 positions on a unit sphere (x right, y front, z up), for plots and simulations only.
_XY = {"P7": (-0.72, -0.58), "P5": (-0.54, -0.52), "P3": (-0.36, -0.46), "P1": (-0.18, -0.42), "Pz": (0.0, -0.40),
       "P2": (0.18, -0.42), "P4": (0.36, -0.46), "P6": (0.54, -0.52), "P8": (0.72, -0.58),
       "PO7": (-0.55, -0.76), "PO3": (-0.28, -0.64), "POz": (0.0, -0.60), "PO4": (0.28, -0.64),
       "PO8": (0.55, -0.76), "O1": (-0.28, -0.86), "Oz": (0.0, -0.80), "O2": (0.28, -0.86)}
CHANNEL_POSITIONS = {ch: (x, y, float(np.sqrt(max(0.0, 1.0 - x * x - y * y)))) for ch, (x, y) in _XY.items()}

SPLITS = {"training": ("train", "train_img"), "test": ("test", "test_img")}
_KEYS = ("preprocessed_eeg_data", "ch_names", "times")


def channel_region(name: str) -> str:
    """Scalp region from a 10-10 name: parietal, parieto-occipital or occipital."""
    if name.upper().startswith("PO"):
        return "parieto-occipital"
    if name.upper().startswith("P"):
        return "parietal"
    if name.upper().startswith("O"):
        return "occipital"
    return "other"


def channel_meta(names, subject: str) -> pd.DataFrame:
    pos = [CHANNEL_POSITIONS.get(n, (np.nan, np.nan, np.nan)) for n in names]
    return pd.DataFrame({
        "id": [f"{subject}/{n}" if subject else n for n in names], "subject": subject, "kind": "channel",
        "name": list(names), "region": [channel_region(n) for n in names],
        "x": [p[0] for p in pos], "y": [p[1] for p in pos], "z": [p[2] for p in pos], "reliability": np.nan,
    })


def _find_metadata(path: Path, image_dir: Path | None) -> Path | None:
    if image_dir is not None:
        meta = Path(image_dir) / "image_metadata.npy"
        if not meta.is_file():
            raise DataError(f"{image_dir}: no image_metadata.npy (expected the THINGS-EEG2 image_set folder)")
        return meta
    for base in [path, *list(path.parents)[:3]]:
        for folder in (base, base / "image_set"):
            if (folder / "image_metadata.npy").is_file():
                return folder / "image_metadata.npy"
    return None


def _image_table(meta_path: Path, split: str, n_conditions: int) -> pd.DataFrame:
    meta = load_npy(meta_path)
    prefix = SPLITS[split][1]
    if not isinstance(meta, dict):
        raise DataError(f"{meta_path}: expected a pickled dict, got {type(meta).__name__}")
    keys = [f"{prefix}_files", f"{prefix}_concepts"]
    missing = [k for k in keys if k not in meta]
    if missing:
        raise DataError(f"{meta_path}: missing key {missing[0]!r} (has {', '.join(map(str, meta))})")
    files = [str(f) for f in np.asarray(meta[keys[0]]).tolist()]
    concepts = [str(c) for c in np.asarray(meta[keys[1]]).tolist()]
    things = meta.get(f"{prefix}_concepts_THINGS")
    things = [str(c) for c in np.asarray(things).tolist()] if things is not None else concepts
    if not len(files) == len(concepts) == len(things):
        raise DataError(f"{meta_path}: {prefix}_files, _concepts and _concepts_THINGS differ in length")
    if len(files) != n_conditions:
        raise DataError(f"{meta_path}: {len(files)} {split} images but the EEG file has {n_conditions} conditions")
    pairs = list(zip(concepts, files, strict=True))
    if pairs != sorted(pairs):
        raise DataError(f"{meta_path}: {prefix} images are not in sorted folder order, so EEG conditions cannot "
                        "be matched to images")
    stems = [Path(f).stem for f in files]
    return pd.DataFrame({
        "stimulus_id": stems,
        "label": [c.split("_", 1)[1] if "_" in c and c.split("_", 1)[0].isdigit() else c for c in concepts],
        "concept": concepts, "concept_things": things,
        "filename": [f"{split}_images/{c}/{f}" for c, f in pairs],
    })


def _data_file(path: Path, split: str) -> Path:
    """The .npy file itself, ``path/preprocessed_eeg_<split>.npy``, or the only one up to 3 levels below."""
    name = f"preprocessed_eeg_{split}.npy"
    if path.suffix == ".npy":
        if not path.is_file():
            raise DataError(f"{path}: not found")
        return path
    if (path / name).is_file():
        return path / name
    found = [f for d in range(1, 4) for f in sorted(path.glob("/".join(["*"] * d + [name])))] if path.is_dir() else []
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"{path}: {len(found)} subjects ({', '.join(f.parent.name for f in found[:4])}, ...); "
                        "pass one sub-XX folder")
    raise DataError(f"{path}: not found (expected THINGS-EEG2 {name} here or in a sub-XX folder below)")


@NEURAL_LOADERS.register(
    "things_eeg2", description="THINGS-EEG2 preprocessed EEG (Gifford et al. 2022): 17 channels, -200..790 ms",
    info=LoaderInfo(modality="eeg", simulated=False, formats=("npy pickled dict", "jpg image folders"),
                    licence="CC-BY 4.0 (EEG); THINGS images for academic use", url="https://osf.io/3jk45/",
                    detect=("preprocessed_eeg_*.npy",)))
def load_things_eeg2(path: Path, split: str = "training", image_dir: str | Path | None = None,
                     subject: str | None = None) -> NeuralRecording:
    """Read one subject's preprocessed THINGS-EEG2 file.

    Args:
        path: the ``sub-XX`` folder or the ``preprocessed_eeg_{training,test}.npy`` file.
        split: "training" (16540 images x 4 repetitions) or "test" (200 x 80).
        image_dir: the ``image_set`` folder with ``image_metadata.npy``; by default searched in ``path``
            and up to three parents (and their ``image_set`` subfolders). Without it the recording has no
            images and stimulus ids are ``<split>-00001`` ... (condition numbers).
        subject: subject label; default from the folder name (``sub-01``).
    """
    if split not in SPLITS:
        raise ConfigError(f"things_eeg2 split must be one of {', '.join(SPLITS)}, got {split!r}")
    file = _data_file(Path(path), split)
    if subject is None:
        subject = file.parent.name if file.parent.name.startswith("sub-") else ""
    data = load_npy(file)
    if not isinstance(data, dict):
        raise DataError(f"{file}: expected a pickled dict with keys {', '.join(_KEYS)}, got {type(data).__name__}")
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise DataError(f"{file}: missing key {missing[0]!r} (has {', '.join(map(str, data))})")
    eeg = data["preprocessed_eeg_data"]
    shape = tuple(getattr(eeg, "shape", ()))
    ch_names = [str(c) for c in np.asarray(data["ch_names"]).tolist()]
    times = np.asarray(data["times"], dtype=np.float64).reshape(-1)
    if len(shape) != 4:
        raise DataError(f"{file}: preprocessed_eeg_data has shape {shape}; expected "
                        "(condition, repetition, channel, time)")
    if shape[2] != len(ch_names):
        raise DataError(f"{file}: {len(ch_names)} ch_names but preprocessed_eeg_data has {shape[2]} channels (axis 2)")
    if shape[3] != len(times):
        raise DataError(f"{file}: {len(times)} times but preprocessed_eeg_data has {shape[3]} time points (axis 3)")

    meta_path = _find_metadata(file.parent, Path(image_dir) if image_dir is not None else None)
    images = None
    if meta_path is not None:
        table = _image_table(meta_path, split, shape[0])
        images = FolderImages(meta_path.parent, dict(zip(table["stimulus_id"], table["filename"], strict=True)))
    else:
        table = pd.DataFrame({"stimulus_id": [f"{split}-{i + 1:05d}" for i in range(shape[0])], "label": ""})
    table["split"] = SPLITS[split][0]
    table["condition"] = np.arange(1, shape[0] + 1)

    responses = as_float32(eeg, path=file, what="preprocessed_eeg_data")
    simulated = bool(data.get("simulated", False))
    rec = NeuralRecording(
        responses=responses, stimulus_ids=table["stimulus_id"].to_numpy(), stimulus_meta=table,
        neuroid_meta=channel_meta(ch_names, subject), time_ms=np.round(times * 1000.0, 6), images=images,
        attrs={"units": "a.u. (MVNN-whitened EEG)" if not simulated else "a.u. (simulated EEG)",
               "preprocessing": ["epoched -200..800 ms", "baseline-corrected", "downsampled to 100 Hz",
                                 "MVNN whitening"] if not simulated else ["simulated"],
               "licence": "CC-BY 4.0 (EEG); THINGS images for academic use" if not simulated else "CC0 (simulated)",
               "simulated": simulated, "source": f"things_eeg2:{file}", "split": split,
               "subject": subject, "image_metadata": str(meta_path) if meta_path else None})
    return mask_nan_neuroids(rec)
