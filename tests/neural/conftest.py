"""Tiny fixtures written in each data set's published on-disk format (names, keys, dtypes, axis orders).

They are written here with numpy / h5py / xarray / scipy / PIL directly, not with brainalign's writers,
so a loader bug cannot hide behind a matching writer bug. Every fixture encodes the stimulus identity
both in the responses and in the image, so tests can check that each response meets its own image.
"""

from __future__ import annotations

import gzip
import io
import pickle
import random
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

THINGS_CHANNELS = ["P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8",
                   "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2"]


def grey_png(level: int, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), level, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def level_of(image_chw: np.ndarray) -> int:
    """The grey level (0..255) of a uniform image loaded in [0, 1]."""
    return int(round(float(image_chw.mean()) * 255))


# ---- THINGS-EEG2 -------------------------------------------------------------------------------
def write_things(root: Path, n_concepts: int = 3, per_concept: int = 2, reps: int = 4, n_times: int = 100,
                 split: str = "training", seed: int = 0, shuffle_creation: bool = True) -> Path:
    """THINGS-EEG2 layout; condition i has EEG value i*1000 + r*100 + c + t/1000 and a JPEG of grey level
    20 + 10*i. Returns the sub-01 folder."""
    rng = random.Random(seed)
    prefix = "train_img" if split == "training" else "test_img"
    concepts = [f"{k + 1:05d}_{name}" for k, name in enumerate(["aardvark", "bee", "cat", "dog", "eel"][:n_concepts])]
    entries = [(c, f"{c.split('_', 1)[1]}_{j + 1:02d}s.jpg") for c in concepts for j in range(per_concept)]
    entries.sort()
    order = list(range(len(entries)))
    if shuffle_creation:
        rng.shuffle(order)  # creation order differs from condition order
    for i in order:
        c, f = entries[i]
        folder = root / "image_set" / f"{split}_images" / c
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), 20 + 10 * i, dtype=np.uint8)).save(folder / f, quality=95)
    meta = {f"{prefix}_files": [f for _, f in entries], f"{prefix}_concepts": [c for c, _ in entries],
            f"{prefix}_concepts_THINGS": [c.split("_", 1)[1] for c, _ in entries]}
    np.save(root / "image_set" / "image_metadata.npy", meta)
    n = len(entries)
    i, r, c, t = np.meshgrid(np.arange(n), np.arange(reps), np.arange(17), np.arange(n_times), indexing="ij")
    data = (i * 1000 + r * 100 + c + t / 1000).astype(np.float64)
    sub = root / "eeg_dataset" / "preprocessed_data" / "sub-01"
    sub.mkdir(parents=True, exist_ok=True)
    np.save(sub / f"preprocessed_eeg_{split}.npy",
            {"preprocessed_eeg_data": data, "ch_names": list(THINGS_CHANNELS),
             "times": np.round(np.arange(-20, -20 + n_times) / 100, 2)})
    return sub


# ---- BrainIO -----------------------------------------------------------------------------------
def write_brainio(root: Path, n_stim: int = 6, reps: int = 3, n_neuroids: int = 4, seed: int = 0,
                  id_column: str = "stimulus_id") -> Path:
    """A NeuroidAssembly written the way brainio.packaging.write_netcdf does (MultiIndex -> reset_index),
    with presentations and CSV rows in shuffled order. Response = 10 * stimulus number + neuroid;
    image grey level = 30 + 20 * stimulus number."""
    import pandas as pd
    import xarray as xr

    rng = np.random.default_rng(seed)
    stim = [f"img{k:03d}" for k in range(n_stim)]
    rows = [(s, r) for s in range(n_stim) for r in range(reps)]
    rng.shuffle(rows)
    data = np.array([[[10.0 * s + n + 0.01 * r, 10.0 * s + n + 0.01 * r + 0.5] for n in range(n_neuroids)]
                     for s, r in rows], dtype=np.float32)  # (presentation, neuroid, time_bin)
    presentation = pd.MultiIndex.from_arrays([[stim[s] for s, _ in rows], [r for _, r in rows]],
                                             names=[id_column, "repetition"])
    neuroid = pd.MultiIndex.from_arrays([[f"n{k}" for k in range(n_neuroids)], ["V4", "V4", "IT", "IT"][:n_neuroids],
                                         ["monkeyA"] * n_neuroids], names=["neuroid_id", "region", "animal"])
    time_bin = pd.MultiIndex.from_arrays([[70, 170], [170, 270]], names=["time_bin_start", "time_bin_end"])
    coords = xr.Coordinates.from_pandas_multiindex(presentation, "presentation")
    coords = coords.merge(xr.Coordinates.from_pandas_multiindex(neuroid, "neuroid"))
    coords = coords.merge(xr.Coordinates.from_pandas_multiindex(time_bin, "time_bin")).coords
    da = xr.DataArray(data, dims=("presentation", "neuroid", "time_bin"), coords=coords)
    da = da.reset_index(list(da.indexes))
    da.attrs = {"identifier": "dicarlo.Test2024", "stimulus_set_identifier": "dicarlo.Test2024"}
    ds = da.to_dataset(name="data")
    root.mkdir(parents=True, exist_ok=True)
    nc = root / "assy_dicarlo_Test2024.nc"
    ds.to_netcdf(nc, engine="h5netcdf", encoding={"data": {"zlib": True, "complevel": 1}})
    order = rng.permutation(n_stim)
    table = pd.DataFrame({id_column: [stim[k] for k in order], "filename": [f"{stim[k]}.png" for k in order],
                          "category_name": [["car", "face"][k % 2] for k in order]})
    table.to_csv(root / "stimulus_dicarlo_Test2024.csv", index=False)
    with zipfile.ZipFile(root / "stimulus_dicarlo_Test2024.zip", "w") as zf:
        for k in order:
            zf.writestr(f"{stim[k]}.png", grey_png(30 + 20 * k))
    return nc


# ---- NIfTI / NSD -------------------------------------------------------------------------------
def write_nifti_gz(path: Path, data: np.ndarray) -> None:
    """NIfTI-1 (.nii.gz) written from the header spec: sizeof_hdr, dim, datatype, bitpix, vox_offset, magic."""
    codes = {np.dtype("int16"): 4, np.dtype("int32"): 8, np.dtype("float32"): 16}
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, data.ndim, *data.shape, *([1] * (7 - data.ndim)))
    struct.pack_into("<hh", header, 70, codes[data.dtype], data.dtype.itemsize * 8)
    struct.pack_into("<f", header, 108, 352.0)
    struct.pack_into("<f", header, 112, 1.0)
    header[344:348] = b"n+1\0"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(bytes(header) + data.astype(data.dtype.newbyteorder("<")).tobytes(order="F"))


NSD_SHAPE = (4, 3, 2)  # (X, Y, Z)


def write_nsd(root: Path, sessions=(1, 2), seed: int = 0) -> Path:
    """NSD layout, subject 1: 500 images shown 3 times over sessions 1-2. A trial's int16 beta in voxel v
    (numbered in (X, Y, Z) order) is 25 * nsdId0 + v, so betas * 300 recover image and voxel; imgBrick
    row k has red = k % 256, green = k // 256. sharedix holds the first 50 shown images."""
    import h5py
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    subjectim = np.stack([rng.permutation(73000)[:10000] + 1 for _ in range(8)])
    used = rng.permutation(10000)[:500] + 1  # subject-image numbers (1-based) shown in sessions 1-2
    subjectim[0, used - 1] = rng.permutation(1200)[:500] + 1  # their nsdIds fit a small imgBrick
    master = rng.integers(1, 10001, 30000)
    master[:1500] = rng.permutation(np.repeat(used, 3))
    shared = np.concatenate([subjectim[0, used[:50] - 1], 5000 + np.arange(950)])
    design = root / "nsddata" / "experiments" / "nsd"
    design.mkdir(parents=True, exist_ok=True)
    savemat(design / "nsd_expdesign.mat", {"masterordering": master[None, :].astype(np.float64),
                                           "subjectim": subjectim.astype(np.float64),
                                           "sharedix": shared[None, :].astype(np.float64)})
    labels = np.zeros(NSD_SHAPE, dtype=np.int16)
    labels[0, :, :] = 1   # V1v
    labels[1, :, 0] = 3   # V2v
    labels[3, 2, 1] = -1  # outside brain
    write_nifti_gz(root / "nsddata" / "ppdata" / "subj01" / "func1pt8mm" / "roi" / "prf-visualrois.nii.gz", labels)
    beta_dir = root / "nsddata_betas" / "ppdata" / "subj01" / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
    beta_dir.mkdir(parents=True, exist_ok=True)
    vox = np.arange(np.prod(NSD_SHAPE)).reshape(NSD_SHAPE, order="F")  # voxel number in (X, Y, Z)
    for s in sessions:
        trials = master[(s - 1) * 750: s * 750]
        nsd0 = subjectim[0, trials - 1] - 1
        vol = nsd0[:, None, None, None] * 25 + vox.transpose(2, 1, 0)[None]  # h5py order (750, Z, Y, X)
        with h5py.File(beta_dir / f"betas_session{s:02d}.hdf5", "w") as f:
            f.create_dataset("betas", data=vol.astype(np.int16))
    write_nifti_gz(beta_dir / "ncsnr.nii.gz", (vox / 100.0).astype(np.float32))
    stim = root / "nsddata_stimuli" / "stimuli" / "nsd"
    stim.mkdir(parents=True, exist_ok=True)
    k = np.arange(1200)
    brick = np.zeros((1200, 6, 6, 3), dtype=np.uint8)
    brick[..., 0] = (k % 256)[:, None, None]
    brick[..., 1] = (k // 256)[:, None, None]
    with h5py.File(stim / "nsd_stimuli.hdf5", "w") as f:
        f.create_dataset("imgBrick", data=brick)
    return root


# ---- Algonauts 2023 ------------------------------------------------------------------------------
def write_algonauts(root: Path, n_images: int = 12, n_lh: int = 5, n_rh: int = 4, seed: int = 0) -> Path:
    """subj01 of the Algonauts 2023 layout; fMRI row = nsdId, image grey level = nsdId % 251."""
    rng = np.random.default_rng(seed)
    sdir = root / "subj01"
    img_dir = sdir / "training_split" / "training_images"
    img_dir.mkdir(parents=True)
    nsd = rng.permutation(5000)[:n_images]
    for row in rng.permutation(n_images):  # created in shuffled order
        (img_dir / f"train-{row + 1:04d}_nsd-{nsd[row]:05d}.png").write_bytes(grey_png(int(nsd[row] % 251)))
    fmri_dir = sdir / "training_split" / "training_fmri"
    fmri_dir.mkdir(parents=True)
    for h, n in (("lh", n_lh), ("rh", n_rh)):
        data = nsd[:, None].astype(np.float32) + np.arange(n, dtype=np.float32)[None] / 100
        np.save(fmri_dir / f"{h}_training_fmri.npy", data)
    roi = sdir / "roi_masks"
    roi.mkdir()
    np.save(roi / "lh.prf-visualrois_challenge_space.npy", np.array([1, 1, 3, 0, 0][:n_lh], dtype=np.int64))
    np.save(roi / "rh.prf-visualrois_challenge_space.npy", np.array([2, 0, 0, 0][:n_rh], dtype=np.int64))
    np.save(roi / "mapping_prf-visualrois.npy", {0: "Unknown", 1: "V1v", 2: "V1d", 3: "V2v"})
    return root


# ---- Sinz static ---------------------------------------------------------------------------------
def write_sinz_static(root: Path, seed: int = 0) -> Path:
    """A static scan folder: 15 trials (file names 0..14, so text order differs from number order);
    test images 7 and 9 are shown 3 times each. Response = image id + neuron/10; pixels = 3 * image id."""
    rng = np.random.default_rng(seed)
    image_ids = np.array([1, 2, 3, 4, 5, 6, 8, 10, 11, 7, 9, 7, 9, 7, 9])
    tiers = np.array(["train"] * 6 + ["validation"] * 3 + ["test"] * 6)
    n_neurons = 5
    for key in ("images", "responses", "behavior", "pupil_center"):
        (root / "data" / key).mkdir(parents=True)
    for t in rng.permutation(len(image_ids)):  # created in shuffled order
        np.save(root / "data" / "images" / f"{t}.npy", np.full((1, 6, 8), 3 * image_ids[t], dtype=np.uint8))
        np.save(root / "data" / "responses" / f"{t}.npy",
                (image_ids[t] + np.arange(n_neurons) / 10).astype(np.float32))
        np.save(root / "data" / "behavior" / f"{t}.npy", np.zeros(3, dtype=np.float32))
        np.save(root / "data" / "pupil_center" / f"{t}.npy", np.zeros(2, dtype=np.float32))
    trials = root / "meta" / "trials"
    trials.mkdir(parents=True)
    np.save(trials / "tiers.npy", tiers)
    np.save(trials / "frame_image_id.npy", image_ids)
    neurons = root / "meta" / "neurons"
    neurons.mkdir(parents=True)
    np.save(neurons / "unit_ids.npy", np.arange(1, n_neurons + 1))
    np.save(neurons / "animal_ids.npy", np.full(n_neurons, 21067))
    np.save(neurons / "area.npy", np.array(["V1"] * 3 + ["LM"] * 2))
    np.save(neurons / "layer.npy", np.array(["L2/3"] * n_neurons))
    np.save(neurons / "cell_motor_coordinates.npy", rng.normal(size=(n_neurons, 3)))
    return root


# ---- Cadena 2019 ---------------------------------------------------------------------------------
def write_cadena(path: Path, n_images: int = 10, n_neurons: int = 4, protocol: int = 4) -> Path:
    """The Cadena 2019 dict: responses (4, images, neurons) = image id + neuron/10, NaN in repetitions 3-4
    of neurons from 2-repetition sessions; images (N, 8, 8) float in 0..255 with value 10 * image number."""
    ids = np.arange(100, 100 + n_images)
    responses = np.broadcast_to(ids[None, :, None] + np.arange(n_neurons)[None, None] / 10,
                                (4, n_images, n_neurons)).astype(np.float64).copy()
    responses[2:, :, 0] = np.nan
    data = {"images": (10.0 * np.arange(n_images))[:, None, None] * np.ones((1, 8, 8)),
            "responses": responses, "image_ids": ids[:, None],
            "image_types": np.array(["original", "conv1"] * (n_images // 2)),
            "subject_id": np.array([1, 1, 2, 2][:n_neurons]), "session_id": np.array([3, 3, 4, 4][:n_neurons]),
            "unit_id": np.arange(n_neurons), "repetitions": np.array([2, 4, 4, 4][:n_neurons])}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    return path


@pytest.fixture
def formats():
    """The fixture writers above, for tests (with --import-mode=importlib a test cannot import conftest)."""
    import types

    return types.SimpleNamespace(
        write_things=write_things, write_brainio=write_brainio, write_nsd=write_nsd, write_nifti_gz=write_nifti_gz,
        write_algonauts=write_algonauts, write_sinz_static=write_sinz_static, write_cadena=write_cadena,
        grey_png=grey_png, level_of=level_of, THINGS_CHANNELS=THINGS_CHANNELS, NSD_SHAPE=NSD_SHAPE)
