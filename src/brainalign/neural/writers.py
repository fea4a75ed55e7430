"""Write recordings in published on-disk formats, and ``simulate_to_disk`` for offline data sets.

- ``write_things_eeg2``: the THINGS-EEG2 layout (``eeg_dataset/preprocessed_data/sub-01/
  preprocessed_eeg_{training,test}.npy`` dicts with float64 data, ch_names, times in seconds, plus
  ``image_set/image_metadata.npy`` and ``image_set/{training,test}_images/<NNNNN_concept>/<id>.png``).
  Images are PNG (lossless) instead of the original JPEG; ``image_metadata.npy`` names them.
- ``write_brainio``: a BrainIO assembly ``assy_<id>.nc`` (netCDF-4 via h5netcdf, flattened
  presentation / neuroid / time_bin coordinates as ``brainio.packaging.write_netcdf`` leaves them) and
  its stimulus set ``stimulus_<set id>.csv`` + ``.zip``.

Simulated sets carry ``simulated`` in the file (an extra dict key / a netCDF attribute) and a
``SIMULATED_DATA.txt`` note, so the matching loader reads them back as ``simulated: True``.
Every file is written atomically.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from brainalign.errors import ConfigError
from brainalign.neural.loading import simulate
from brainalign.neural.recording import NeuralRecording

FORMATS = ("things_eeg2", "brainio")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-") or "x"


def _png(image: np.ndarray) -> bytes:
    """(C, H, W) float in [0, 1] -> PNG bytes (grey or RGB)."""
    arr = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    pil = Image.fromarray(arr[0]) if arr.shape[0] == 1 else Image.fromarray(arr[:3].transpose(1, 2, 0))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def _atomic(path: Path):
    from brainalign.io import atomic_path  # imports torch (safetensors); only needed when writing

    return atomic_path(path)


def _save_npy(path: Path, obj) -> None:
    with _atomic(path) as tmp, open(tmp, "wb") as f:
        np.save(f, obj, allow_pickle=True)  # writing a pickle is safe; reading goes through safe_pickle


def _file_ids(rec: NeuralRecording) -> list[str]:
    names = [_safe(i) for i in rec.stimulus_ids]
    if len(set(names)) != len(names):
        raise ConfigError("stimulus ids are not unique once made file-name safe")
    return names


def write_things_eeg2(rec: NeuralRecording, out_dir: str | os.PathLike, subject: str = "sub-01") -> Path:
    """Write ``rec`` in the THINGS-EEG2 layout; returns the ``sub-XX`` folder to pass to ``things_eeg2``.

    Stimuli with split "test" go to the test partition, all others to training. Conditions are
    ordered as THINGS-EEG2 orders them: by concept folder (``NNNNN_<label>``), then file name.
    """
    out = Path(out_dir)
    names = _file_ids(rec)
    labels = rec.stimulus_meta["label"].replace("", "stimulus").astype(str).to_numpy()
    concepts = {lab: f"{k + 1:05d}_{_safe(lab)}" for k, lab in enumerate(sorted(set(labels)))}
    images = rec.load_images() if rec.images is not None else None
    sub_dir = out / "eeg_dataset" / "preprocessed_data" / subject
    meta: dict[str, list[str]] = {}
    splits = rec.stimulus_meta["split"].to_numpy()
    for part, key, is_part in (("training", "train_img", splits != "test"), ("test", "test_img", splits == "test")):
        idx = np.flatnonzero(is_part)
        if idx.size == 0:
            continue
        idx = np.array(sorted(idx, key=lambda i: (concepts[labels[i]], f"{names[i]}.png")), dtype=np.int64)
        files = [f"{names[i]}.png" for i in idx]
        meta[f"{key}_files"] = files
        meta[f"{key}_concepts"] = [concepts[labels[i]] for i in idx]
        meta[f"{key}_concepts_THINGS"] = [_safe(labels[i]) for i in idx]
        if images is not None:
            for i, f in zip(idx, files, strict=True):
                target = out / "image_set" / f"{part}_images" / concepts[labels[i]] / f
                with _atomic(target) as tmp:
                    tmp.write_bytes(_png(images[i]))
        data = {"preprocessed_eeg_data": rec.responses[idx].astype(np.float64),
                "ch_names": rec.neuroid_meta["name"].tolist(), "times": rec.time_ms / 1000.0}
        if rec.attrs["simulated"]:
            data["simulated"] = True
        _save_npy(sub_dir / f"preprocessed_eeg_{part}.npy", data)
    if images is not None:
        _save_npy(out / "image_set" / "image_metadata.npy", meta)
    return sub_dir


def write_brainio(rec: NeuralRecording, out_dir: str | os.PathLike, identifier: str = "brainalign.Simulated",
                  stimulus_set_identifier: str | None = None) -> Path:
    """Write ``rec`` as a BrainIO assembly with its stimulus set; returns the ``.nc`` path."""
    import xarray as xr

    out = Path(out_dir)
    set_id = stimulus_set_identifier or identifier
    names = _file_ids(rec)
    s_idx, r_idx = np.nonzero(np.isfinite(rec.responses).any(axis=(2, 3)))  # real trials only
    t = rec.time_ms
    end = rec.attrs.get("time_bin_end_ms")
    if end is None:
        step = float(np.median(np.diff(t))) if t.size > 1 else 1.0
        end = t + step
    nm = rec.neuroid_meta
    ds = xr.Dataset(
        {"data": (("presentation", "neuroid", "time_bin"), rec.responses[s_idx, r_idx])},
        coords={"stimulus_id": ("presentation", rec.stimulus_ids[s_idx].astype(str)),
                "repetition": ("presentation", r_idx.astype(np.int64)),
                "neuroid_id": ("neuroid", nm["id"].to_numpy(dtype=str)),
                "region": ("neuroid", nm["region"].to_numpy(dtype=str)),
                "animal": ("neuroid", nm["subject"].to_numpy(dtype=str)),
                "time_bin_start": ("time_bin", t.astype(np.float64)),
                "time_bin_end": ("time_bin", np.asarray(end, dtype=np.float64))},
        attrs={"identifier": identifier, "stimulus_set_identifier": set_id,
               "simulated": int(rec.attrs["simulated"]), "units": str(rec.attrs.get("units", ""))})
    nc = out / f"assy_{identifier.replace('.', '_')}.nc"
    with _atomic(nc) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    stem = out / f"stimulus_{set_id.replace('.', '_')}"
    table = pd.DataFrame({"stimulus_id": rec.stimulus_ids.astype(str), "filename": [f"{n}.png" for n in names],
                          "label": rec.stimulus_meta["label"].to_numpy(),
                          "split": rec.stimulus_meta["split"].to_numpy()})
    with _atomic(stem.with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False)
    if rec.images is not None:
        images = rec.load_images()
        with _atomic(stem.with_suffix(".zip")) as tmp, zipfile.ZipFile(tmp, "w") as zf:
            for name, img in zip(table["filename"], images, strict=True):
                zf.writestr(name, _png(img))
    return nc


def _merge(src: Path, dst: Path) -> None:
    """Move the files below ``src`` into ``dst`` (same relative paths), replacing files, keeping others."""
    for child in sorted(src.iterdir()):
        target = dst / child.name
        if child.is_dir() and target.is_dir():
            _merge(child, target)
        else:
            child.replace(target)


def simulate_to_disk(kind: str, out_dir: str | os.PathLike, fmt: str = "things_eeg2", seed: int = 0,
                     **options) -> Path:
    """Simulate a recording (``kind`` "eeg", "v1", "it" or "fmri") and write it in format ``fmt``.

    Args:
        kind: the simulation (see ``brainalign.neural.simulations``).
        out_dir: folder to write into (created).
        fmt: "things_eeg2" (EEG only) or "brainio".
        seed: simulation seed.
        **options: passed to the simulation (images, n_stimuli, n_reps, ...).

    Returns:
        The path to give the matching loader (``things_eeg2``: the ``sub-01`` folder; ``brainio``: the ``.nc``).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    name = kind.removeprefix("sim_")
    rec = simulate(name, seed=seed, **options)  # an unknown kind is refused here, naming the kinds
    if fmt == "things_eeg2" and name != "eeg":
        raise ConfigError("the things_eeg2 format holds EEG; use kind='eeg' or fmt='brainio'")
    import shutil
    import tempfile

    from brainalign.io import write_text

    out = Path(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".staging"))
    except OSError as exc:
        raise ConfigError(f"cannot write to {out.parent}: {exc.strerror or exc}") from None
    # Staged: the images, the recording and the notice go to a hidden folder beside ``out`` first, and move
    # into ``out`` only when all are written, so that a failure part-way leaves nothing.
    try:
        staged = write_things_eeg2(rec, staging) if fmt == "things_eeg2" else write_brainio(
            rec, staging, identifier=f"brainalign.Sim{name.upper()}{seed}")
        path = out / staged.relative_to(staging)
        write_text(staging / "SIMULATED_DATA.txt",
                   f"SIMULATED data written by brainalign (sim_{name}, seed={seed}, format {fmt}).\n"
                   f"Not recorded from any brain. Load with: brainalign data inspect {path} --loader {fmt}\n")
        if not out.exists():
            staging.rename(out)
        else:
            _merge(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
