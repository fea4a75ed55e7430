"""Sinz-lab data: static file-tree data sets (Sensorium 2022, Lurz et al. 2021) and the Cadena 2019 pickle.

Static file tree (``neuralpredictors.data.datasets.FileTreeDataset``), one folder per scan::

    data/images/<i>.npy         (1, H, W) image of trial i (Sensorium: 1 x 144 x 256)
    data/responses/<i>.npy      (n_neurons,) response of trial i
    data/behavior/<i>.npy, data/pupil_center/<i>.npy     (optional, not read)
    meta/neurons/unit_ids.npy, animal_ids.npy, area.npy, layer.npy, cell_motor_coordinates.npy (n, 3)
    meta/trials/tiers.npy       'train' / 'validation' / 'test' / 'final_test' per trial
    meta/trials/frame_image_id.npy   image id per trial (repeats share an id)

Trials with the same ``frame_image_id`` are repetitions of one stimulus (test images are shown about
10 times). Trials are numbered 0..N-1 by file name and matched by number, never by listing order.

Cadena et al. 2019 (PLoS Comput Biol 15:e1006897; ``cadena_ploscb_data.pkl``): a pickled dict with
images (7250, 140, 140), responses (4, 7250, 166) = (repetition, image, neuron), NaN where a session
had 2 repetitions, image_ids, image_types, and per-neuron subject_id, session_id, unit_id, repetitions.
The authors use the last 20 % of images as the test set. Responses are spike counts 40-100 ms after
image onset (per the paper). Read with the restricted unpickler.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.errors import DataError
from brainalign.neural.images import ArrayImages, FolderImages
from brainalign.neural.loading import LoaderInfo
from brainalign.neural.recording import NeuralRecording, mask_nan_neuroids
from brainalign.neural.safe_pickle import as_float32, load_npy, load_pickle
from brainalign.registry import NEURAL_LOADERS

SINZ_LICENCE = "CC BY-NC-ND 4.0 (ask the authors before publishing new analyses)"
_TIER_SPLIT = {"train": "train", "validation": "validation", "test": "test", "final_test": "test"}


def _numbered(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: not found (static data sets keep one .npy per trial here)")
    out = {}
    for p in folder.iterdir():
        m = re.fullmatch(r"(\d+)\.npy", p.name)
        if m:
            out[int(m.group(1))] = p
    return out


def _meta_array(folder: Path, name: str, n: int, required: bool = True):
    file = folder / f"{name}.npy"
    if not file.is_file():
        if required:
            raise DataError(f"{file}: missing")
        return None
    arr = np.asarray(load_npy(file))
    if arr.shape[:1] != (n,):
        raise DataError(f"{file}: has {arr.shape[0] if arr.ndim else 0} entries, expected {n}")
    return arr


@NEURAL_LOADERS.register(
    "sinz_static", description="Sinz-lab static file-tree data set (Sensorium 2022, Lurz 2021): mouse V1 calcium",
    info=LoaderInfo(modality="calcium", simulated=False, formats=("npy file tree",), licence=SINZ_LICENCE,
                    url="https://gin.g-node.org/cajal/Sensorium2022", detect=("frame_image_id.npy",)))
def load_sinz_static(path: Path, tiers: list[str] | None = None, image_scale: float | None = None) -> NeuralRecording:
    """Read a static scan folder (``static<animal>-<session>-<scan>-...``).

    Args:
        path: the scan folder (with ``data/`` and ``meta/``).
        tiers: keep trials of these tiers (e.g. ["train", "validation"]); default all.
        image_scale: factor for float images (default: uint8 / 255; float images above 1 are / 255).
    """
    root = Path(path)
    resp_files = _numbered(root / "data" / "responses")
    img_files = _numbered(root / "data" / "images")
    n = len(resp_files)
    if n == 0:
        raise DataError(f"{root / 'data' / 'responses'}: no trials")
    if set(resp_files) != set(range(n)):
        raise DataError(f"{root / 'data' / 'responses'}: trial files are not numbered 0..{n - 1}")
    if set(img_files) != set(resp_files):
        raise DataError(f"{root / 'data' / 'images'}: {len(img_files)} image files for {n} response files")
    trials = root / "meta" / "trials"
    tier = np.asarray(_meta_array(trials, "tiers", n)).astype(str)
    image_id = _meta_array(trials, "frame_image_id", n, required=False)
    if image_id is None:
        image_id = _meta_array(trials, "image_id", n, required=False)
    if image_id is None:
        raise DataError(f"{trials}: neither frame_image_id.npy nor image_id.npy")
    image_id = np.asarray(image_id).reshape(n)
    if image_id.dtype.kind not in "iuU":
        image_id = image_id.astype(str)
    keep = np.ones(n, dtype=bool) if tiers is None else np.isin(tier, list(tiers))
    if not keep.any():
        raise DataError(f"{trials}: no trials in tiers {tiers}; have {sorted(set(tier))}")
    trial_idx = np.flatnonzero(keep)
    first = np.asarray(load_npy(resp_files[0])).reshape(-1)
    n_neurons = first.size
    stim_keys, stim_idx = np.unique(image_id[trial_idx], return_inverse=True)
    rep_idx = pd.Series(stim_idx).groupby(stim_idx).cumcount().to_numpy()
    responses = np.full((stim_keys.size, int(rep_idx.max()) + 1, n_neurons, 1), np.nan, dtype=np.float32)
    for t, s, r in zip(trial_idx, stim_idx, rep_idx, strict=True):
        vec = np.asarray(load_npy(resp_files[int(t)])).reshape(-1)
        if vec.size != n_neurons:
            raise DataError(f"{resp_files[int(t)]}: {vec.size} neurons, trial 0 has {n_neurons}")
        responses[s, r, :, 0] = vec
    first_trial = {}
    for t, s in zip(trial_idx, stim_idx, strict=True):
        first_trial.setdefault(int(s), int(t))
    ids = np.array([f"img-{k}" for k in stim_keys], dtype=object)
    splits = []
    for s in range(stim_keys.size):
        stim_tiers = set(tier[trial_idx[stim_idx == s]])
        if len(stim_tiers) > 1:
            raise DataError(f"{trials}: image {stim_keys[s]} appears in tiers {sorted(stim_tiers)}")
        splits.append(_TIER_SPLIT.get(stim_tiers.pop(), "all"))
    stim_meta = pd.DataFrame({"stimulus_id": ids, "frame_image_id": stim_keys, "label": "", "split": splits,
                              "tier": [tier[first_trial[s]] for s in range(stim_keys.size)]})
    images = FolderImages(root / "data" / "images",
                          {sid: img_files[first_trial[s]].name for s, sid in enumerate(ids)},
                          npy_layout="CHW", npy_scale=image_scale)

    neurons = root / "meta" / "neurons"
    unit = _meta_array(neurons, "unit_ids", n_neurons)
    animal = _meta_array(neurons, "animal_ids", n_neurons, required=False)
    area = _meta_array(neurons, "area", n_neurons, required=False)
    layer = _meta_array(neurons, "layer", n_neurons, required=False)
    xyz = _meta_array(neurons, "cell_motor_coordinates", n_neurons, required=False)
    subject = animal.astype(str) if animal is not None else np.full(n_neurons, "")
    nmeta = pd.DataFrame({
        "id": [f"{a}/{u}" if a else str(u) for a, u in zip(subject, np.asarray(unit).astype(str), strict=True)],
        "subject": subject, "kind": "unit", "name": np.asarray(unit).astype(str),
        "region": area.astype(str) if area is not None else "",
        "x": xyz[:, 0] if xyz is not None else np.nan, "y": xyz[:, 1] if xyz is not None else np.nan,
        "z": xyz[:, 2] if xyz is not None else np.nan, "reliability": np.nan,
        "layer": layer.astype(str) if layer is not None else ""})
    rec = NeuralRecording(
        responses=responses, stimulus_ids=ids, stimulus_meta=stim_meta, neuroid_meta=nmeta,
        time_ms=np.zeros(1), images=images,
        attrs={"units": "deconvolved calcium activity (a.u.)", "licence": SINZ_LICENCE,
               "preprocessing": ["deconvolved", "accumulated after image onset (see the data set's paper)"],
               "simulated": False, "source": f"sinz_static:{root}"})
    return mask_nan_neuroids(rec)


_CADENA_KEYS = ("images", "responses", "image_ids")


@NEURAL_LOADERS.register(
    "cadena2019", description="Cadena et al. 2019 macaque V1 (166 units, 7250 images), pickled dict",
    info=LoaderInfo(modality="ephys", simulated=False, formats=("pickle dict",), licence=SINZ_LICENCE,
                    url="https://web.gin.g-node.org/doi/Cadena_PlosCB19_data", detect=("cadena_ploscb_data.pkl",)))
def load_cadena2019(path: Path, test_fraction: float = 0.2) -> NeuralRecording:
    """Read ``cadena_ploscb_data.pkl`` (or the folder that holds it).

    Args:
        path: the pickle or a folder containing ``cadena_ploscb_data.pkl`` (searched up to two levels down).
        test_fraction: the last fraction of images forming the test split (the authors use 0.2).
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("cadena_ploscb_data.pkl")) + sorted(path.glob("*/cadena_ploscb_data.pkl")) \
            + sorted(path.glob("*/*/cadena_ploscb_data.pkl"))
        if not found:
            raise DataError(f"{path}: no cadena_ploscb_data.pkl")
        path = found[0]
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    missing = [k for k in _CADENA_KEYS if k not in data]
    if missing:
        raise DataError(f"{path}: missing key {missing[0]!r} (has {', '.join(map(str, data))})")
    resp = as_float32(data["responses"], path=path, what="responses")
    if resp.ndim != 3:
        raise DataError(f"{path}: responses have shape {resp.shape}; expected (repetition, image, neuron)")
    n_reps, n_img, n_neur = resp.shape
    imgs = data["images"]
    img_shape = tuple(getattr(imgs, "shape", ()))
    if len(img_shape) not in (3, 4) or img_shape[0] != n_img:
        raise DataError(f"{path}: images have shape {img_shape}; expected ({n_img}, H, W) to match responses")
    image_ids = np.asarray(data["image_ids"]).reshape(-1)
    if image_ids.size != n_img:
        raise DataError(f"{path}: {image_ids.size} image_ids for {n_img} images")
    types = np.asarray(data.get("image_types", np.full(n_img, ""))).reshape(-1).astype(str)
    if types.size != n_img:
        raise DataError(f"{path}: {types.size} image_types for {n_img} images")
    ids = np.array([str(i) for i in image_ids.tolist()], dtype=object)
    if len(set(ids.tolist())) != n_img:  # the same source image in several types
        ids = np.array([f"{i}-{t}" for i, t in zip(ids, types, strict=True)], dtype=object)
    n_test = int(round(n_img * test_fraction))
    stim_meta = pd.DataFrame({"stimulus_id": ids, "image_id": image_ids, "image_type": types, "label": types,
                              "split": ["train"] * (n_img - n_test) + ["test"] * n_test})

    def per_neuron(key):
        value = data.get(key)
        if value is None:
            return np.full(n_neur, "")
        arr = np.asarray(value).reshape(-1)
        if arr.size != n_neur:
            raise DataError(f"{path}: {key} has {arr.size} entries for {n_neur} neurons")
        return arr.astype(str)

    subject, session, unit = per_neuron("subject_id"), per_neuron("session_id"), per_neuron("unit_id")
    nmeta = pd.DataFrame({"id": [f"{a}/{s}/{u}" if u else f"n{i:03d}" for i, (a, s, u)
                                 in enumerate(zip(subject, session, unit, strict=True))],
                          "subject": subject, "kind": "unit", "region": "V1", "session": session})
    nmeta["name"] = nmeta["id"]
    if "repetitions" in data:
        nmeta["repetitions"] = per_neuron("repetitions")
    scale = None
    if isinstance(imgs, np.ndarray) and imgs.dtype.kind == "f":
        scale = 1.0 / 255.0 if float(np.nanmax(imgs[: min(64, n_img)])) > 1.5 else None
    elif not isinstance(imgs, np.ndarray) and getattr(imgs, "dtype", np.dtype("u1")).kind == "f":
        sample = np.asarray(imgs.memmap()[: min(64, n_img)])
        scale = 1.0 / 255.0 if float(np.nanmax(sample)) > 1.5 else None
    images = ArrayImages(imgs, ids.tolist(), layout="NHW" if len(img_shape) == 3 else "NCHW", scale=scale,
                         name=str(path))
    simulated = bool(data.get("simulated", False))
    rec = NeuralRecording(
        responses=np.ascontiguousarray(resp.transpose(1, 0, 2))[:, :, :, None], stimulus_ids=ids,
        stimulus_meta=stim_meta, neuroid_meta=nmeta, time_ms=np.array([40.0]), images=images,
        attrs={"units": "spike count", "licence": SINZ_LICENCE if not simulated else "CC0 (simulated)",
               "preprocessing": ["spike counts 40-100 ms after onset"], "time_bin_end_ms": np.array([100.0]),
               "simulated": simulated, "source": f"cadena2019:{path}"})
    return mask_nan_neuroids(rec)
