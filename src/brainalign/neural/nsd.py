"""Natural Scenes Dataset (Allen et al. 2022, Nature Neuroscience 25:116) and its Algonauts 2023 derivative.

NSD layout (``path`` is the folder holding ``nsddata/``, ``nsddata_betas/``, ``nsddata_stimuli/``)::

    nsddata/experiments/nsd/nsd_expdesign.mat     masterordering (30000 trials -> subject image 1..10000),
                                                  subjectim (8 x 10000 -> nsdId 1..73000), sharedix (1000); 1-based
    nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_sessionSS.hdf5
                                                  /betas int16 (750, Z, Y, X); value / 300 = % signal change
    nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR/ncsnr.nii.gz   (optional, X, Y, Z)
    nsddata/ppdata/subjNN/func1pt8mm/roi/<roi>.nii.gz     ROI labels (X, Y, Z); -1 outside brain, 0 no ROI
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5          imgBrick (73000, 425, 425, 3) uint8 (optional)

Trial t of session s (750 per session) is global trial (s - 1) * 750 + t; its image is
``subjectim[subject - 1, masterordering[trial] - 1]`` (an nsdId, 1-based). Stimulus ids are
``nsd-NNNNN`` with the 0-based nsdId, as in Algonauts file names. Betas are z-scored per voxel within
each session (NSD's standard), then grouped by image into up to 3 repetitions.

Algonauts 2023 layout (``path`` is the challenge root or one ``subjNN`` folder)::

    subjNN/training_split/training_fmri/{lh,rh}_training_fmri.npy   float32 (images, vertices)
    subjNN/training_split/training_images/train-0001_nsd-00013.png  1-based row, 0-based nsdId
    subjNN/roi_masks/{lh,rh}.<family>_challenge_space.npy            label per vertex
    subjNN/roi_masks/mapping_<family>.npy                            pickled dict label -> ROI name

The Algonauts responses are already averaged over repetitions (one repetition here).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.errors import ConfigError, DataError
from brainalign.neural._nifti import read_nifti
from brainalign.neural.images import FolderImages, HDF5Images
from brainalign.neural.loading import LoaderInfo
from brainalign.neural.recording import NeuralRecording, mask_nan_neuroids
from brainalign.neural.safe_pickle import load_npy
from brainalign.registry import NEURAL_LOADERS

TRIALS_PER_SESSION = 750
ROI_NAMES = {
    "prf-visualrois": ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"),
    "floc-faces": ("OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"),
    "floc-bodies": ("EBA", "FBA-1", "FBA-2", "mTL-bodies"),
    "floc-places": ("OPA", "PPA", "RSC"),
    "floc-words": ("OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"),
    "streams": ("early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"),
    "nsdgeneral": ("nsdgeneral",),
}
NSD_LICENCE = "NSD Terms and Conditions (access agreement); images under COCO terms"


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (expected NSD nsd_expdesign.mat)") from None
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable .mat file ({exc})") from None


def _roi_names(root: Path, subj: str, roi: str) -> dict[int, str]:
    ctab = root / "nsddata" / "freesurfer" / subj / "label" / f"{roi}.mgz.ctab"
    if ctab.is_file():
        names = {}
        for line in ctab.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].lstrip("-").isdigit() and int(parts[0]) > 0:
                names[int(parts[0])] = parts[1]
        if names:
            return names
    return {i + 1: n for i, n in enumerate(ROI_NAMES.get(roi, ()))}


@NEURAL_LOADERS.register(
    "nsd", description="Natural Scenes Dataset fMRI betas (Allen et al. 2022), one subject, voxels in an ROI",
    info=LoaderInfo(modality="fmri", simulated=False, formats=("MAT expdesign", "HDF5 betas", "NIfTI ROIs"),
                    licence=NSD_LICENCE, url="https://naturalscenesdataset.org/", detect=("nsd_expdesign.mat",)))
def load_nsd(path: Path, subject: int = 1, sessions: list[int] | None = None, roi: str = "nsdgeneral",
             roi_labels: list[str] | None = None, space: str = "func1pt8mm",
             betas: str = "betas_fithrf_GLMdenoise_RR", zscore: bool = True) -> NeuralRecording:
    """Read NSD single-trial betas of one subject for the voxels of an ROI.

    Args:
        path: the NSD root (with ``nsddata/`` and ``nsddata_betas/``).
        subject: 1..8.
        sessions: session numbers to read (1-based); default all ``betas_session*.hdf5`` present.
        roi: ROI volume name under ``roi/`` (``nsdgeneral``, ``prf-visualrois``, ``floc-faces``, ...).
        roi_labels: ROI names within it to keep (e.g. ["V1v", "V1d"]); default every labelled voxel (> 0).
        space: ``func1pt8mm`` or ``func1mm``.
        betas: the betas version folder.
        zscore: z-score each voxel within each session (NSD's standard preprocessing).
    """
    import h5py

    root = Path(path)
    if not 1 <= int(subject) <= 8:
        raise ConfigError(f"nsd subject must be 1..8, got {subject}")
    subj = f"subj{int(subject):02d}"
    design_path = root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat"
    design = _loadmat(design_path)
    for key in ("masterordering", "subjectim", "sharedix"):
        if key not in design:
            raise DataError(f"{design_path}: missing variable {key!r}")
    master = np.asarray(design["masterordering"]).reshape(-1).astype(np.int64)
    subjectim = np.asarray(design["subjectim"])
    shared = set(np.asarray(design["sharedix"]).reshape(-1).astype(np.int64).tolist())
    if subjectim.ndim != 2 or subjectim.shape[0] < int(subject):
        raise DataError(f"{design_path}: subjectim has shape {subjectim.shape}; expected (8, 10000)")

    roi_path = root / "nsddata" / "ppdata" / subj / space / "roi" / f"{roi}.nii.gz"
    labels = np.asarray(read_nifti(roi_path)).astype(np.int64)  # (X, Y, Z)
    if labels.ndim != 3:
        raise DataError(f"{roi_path}: ROI volume has shape {labels.shape}; expected (X, Y, Z)")
    names = _roi_names(root, subj, roi)
    if roi_labels is None:
        keep = labels > 0
    else:
        lookup = {v: k for k, v in names.items()}
        unknown = [r for r in roi_labels if r not in lookup]
        if unknown:
            raise ConfigError(f"unknown {roi} label(s) {', '.join(unknown)}; valid: {', '.join(lookup)}")
        keep = np.isin(labels, [lookup[r] for r in roi_labels])
    if not keep.any():
        raise DataError(f"{roi_path}: no voxels selected")
    keep_zyx = keep.transpose(2, 1, 0)  # betas are (trial, Z, Y, X)
    flat = np.flatnonzero(keep_zyx.reshape(-1))
    zz, yy, xx = np.unravel_index(flat, keep_zyx.shape)

    beta_dir = root / "nsddata_betas" / "ppdata" / subj / space / betas
    files = {int(m.group(1)): p for p in beta_dir.glob("betas_session*.hdf5")
             if (m := re.fullmatch(r"betas_session(\d+)\.hdf5", p.name))}
    if not files:
        raise DataError(f"{beta_dir}: no betas_sessionNN.hdf5 files")
    wanted = sorted(files) if sessions is None else [int(s) for s in sessions]
    absent = [s for s in wanted if s not in files]
    if absent:
        raise DataError(f"{beta_dir}: betas_session{absent[0]:02d}.hdf5 not found (have {sorted(files)})")

    trials = []
    simulated = False  # brainalign's simulated NSD-like set marks its betas files (neural.full_size)
    for s in wanted:
        first = (s - 1) * TRIALS_PER_SESSION
        if first + TRIALS_PER_SESSION > master.size:
            raise DataError(f"{design_path}: masterordering has {master.size} trials; session {s} needs "
                            f"{first + TRIALS_PER_SESSION}")
        trials.append(master[first:first + TRIALS_PER_SESSION])
    image_index = np.concatenate(trials) - 1  # 0-based into the subject's 10000 images
    if image_index.min() < 0 or image_index.max() >= subjectim.shape[1]:
        raise DataError(f"{design_path}: masterordering refers to images outside 1..{subjectim.shape[1]}")
    nsd1 = subjectim[int(subject) - 1, image_index].astype(np.int64)  # 1-based nsdId per trial
    uniq, stim_idx = np.unique(nsd1, return_inverse=True)
    rep_idx = pd.Series(stim_idx).groupby(stim_idx).cumcount().to_numpy()
    n_reps = int(rep_idx.max()) + 1
    responses = np.full((uniq.size, n_reps, flat.size, 1), np.nan, dtype=np.float32)
    sess = np.full((uniq.size, n_reps), -1, dtype=np.int64)

    for k, s in enumerate(wanted):
        file = files[s]
        try:
            with h5py.File(file, "r") as f:
                if "betas" not in f:
                    raise DataError(f"{file}: no dataset 'betas' (has {', '.join(f.keys())})")
                ds = f["betas"]
                simulated = simulated or bool(f.attrs.get("simulated", False))
                if ds.ndim != 4 or ds.shape[1:] != keep_zyx.shape:
                    raise DataError(f"{file}: betas have shape {ds.shape}; expected "
                                    f"(750, {', '.join(map(str, keep_zyx.shape))}) to match {roi_path.name}")
                if ds.shape[0] != TRIALS_PER_SESSION:
                    raise DataError(f"{file}: {ds.shape[0]} trials; NSD sessions have {TRIALS_PER_SESSION}")
                session = np.empty((ds.shape[0], flat.size), dtype=np.float32)
                for start in range(0, ds.shape[0], 50):
                    block = np.asarray(ds[start:start + 50]).reshape(min(50, ds.shape[0] - start), -1)
                    session[start:start + 50] = block[:, flat] / 300.0
        except OSError as exc:
            raise DataError(f"{file}: not a readable HDF5 file ({exc})") from None
        if zscore:
            sd = session.std(axis=0)
            session = (session - session.mean(axis=0)) / np.where(sd > 0, sd, np.nan)
        rows = slice(k * TRIALS_PER_SESSION, (k + 1) * TRIALS_PER_SESSION)
        responses[stim_idx[rows], rep_idx[rows], :, 0] = session
        sess[stim_idx[rows], rep_idx[rows]] = s

    ids = np.array([f"nsd-{n - 1:05d}" for n in uniq], dtype=object)
    stim_meta = pd.DataFrame({"stimulus_id": ids, "nsd_id": uniq - 1, "label": "",
                              "split": ["test" if n in shared else "train" for n in uniq],
                              "shared1000": [n in shared for n in uniq]})

    ncsnr_path = beta_dir / "ncsnr.nii.gz"
    reliability = np.full(flat.size, np.nan)
    if ncsnr_path.is_file():
        vol = read_nifti(ncsnr_path)
        if vol.shape[:3] != labels.shape:
            raise DataError(f"{ncsnr_path}: shape {vol.shape} does not match {roi_path.name} {labels.shape}")
        reliability = np.asarray(vol[xx, yy, zz], dtype=float)
    voxel_labels = labels[xx, yy, zz]
    neuroid_meta = pd.DataFrame({
        "id": [f"{subj}/v{x}_{y}_{z}" for x, y, z in zip(xx, yy, zz, strict=True)], "subject": subj, "kind": "voxel",
        "region": [names.get(int(v), str(int(v))) for v in voxel_labels], "x": xx, "y": yy, "z": zz,
        "reliability": reliability, "ncsnr": reliability})
    stim_path = root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
    images = HDF5Images(stim_path, "imgBrick", dict(zip(ids, uniq - 1, strict=True))) if stim_path.is_file() else None
    rec = NeuralRecording(
        responses=responses, stimulus_ids=ids, stimulus_meta=stim_meta, neuroid_meta=neuroid_meta,
        time_ms=np.zeros(1), images=images, sessions=sess,
        attrs={"units": "z-scored % signal change" if zscore else "% signal change",
               "preprocessing": ["GLMsingle betas (" + betas + ")", "int16 / 300"] + (
                   ["z-scored per voxel within session"] if zscore else []),
               "licence": NSD_LICENCE, "simulated": simulated, "source": f"nsd:{root}", "subject": subj,
               "sessions": wanted, "roi": roi, "space": space,
               "reliability": "NSD ncsnr from ncsnr.nii.gz" if ncsnr_path.is_file() else "not provided"})
    return mask_nan_neuroids(rec)


_ALGONAUTS_FAMILIES = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")
_TRAIN_IMAGE = re.compile(r"train-(\d{4,})_nsd-(\d{5})\.png")


def _subject_dir(root: Path, subject: int) -> Path:
    if re.fullmatch(r"subj\d\d", root.name):
        return root
    cand = root / f"subj{int(subject):02d}"
    if not cand.is_dir():
        raise DataError(f"{root}: no subj{int(subject):02d} folder (Algonauts 2023 layout)")
    return cand


@NEURAL_LOADERS.register(
    "algonauts2023", description="Algonauts 2023 challenge fMRI (NSD-derived, surface vertices, averaged repeats)",
    info=LoaderInfo(modality="fmri", simulated=False, formats=("npy arrays", "png images", "npy ROI masks"),
                    licence=NSD_LICENCE, url="http://algonauts.csail.mit.edu/challenge.html",
                    detect=("lh_training_fmri.npy",)))
def load_algonauts2023(path: Path, subject: int = 1, hemispheres: tuple[str, ...] = ("lh", "rh"),
                       rois: list[str] | None = None) -> NeuralRecording:
    """Read one subject's Algonauts 2023 training split.

    Args:
        path: the challenge root (with ``subjNN``) or a ``subjNN`` folder.
        subject: 1..8 (ignored when ``path`` is a subject folder).
        hemispheres: "lh", "rh" or both.
        rois: ROI names to keep (e.g. ["V1v", "FFA-1"]); default all vertices.
    """
    sdir = _subject_dir(Path(path), subject)
    subj = sdir.name
    bad = set(hemispheres) - {"lh", "rh"}
    if bad or not hemispheres:
        raise ConfigError(f"hemispheres must be 'lh' and/or 'rh', got {hemispheres}")
    img_dir = sdir / "training_split" / "training_images"
    if not img_dir.is_dir():
        raise DataError(f"{img_dir}: not found")
    rows: dict[int, tuple[str, int]] = {}
    for p in img_dir.iterdir():
        m = _TRAIN_IMAGE.fullmatch(p.name)
        if m is None:
            continue
        row = int(m.group(1)) - 1
        if row in rows:
            raise DataError(f"{img_dir}: two images claim row {row + 1}: {rows[row][0]} and {p.name}")
        rows[row] = (p.name, int(m.group(2)))

    parts, metas = [], []
    n_rows = None
    for h in hemispheres:
        file = sdir / "training_split" / "training_fmri" / f"{h}_training_fmri.npy"
        fmri = load_npy(file, mmap=True)
        if not isinstance(fmri, np.ndarray) or fmri.ndim != 2:
            raise DataError(f"{file}: expected a 2-d (images, vertices) array, got "
                            f"{getattr(fmri, 'shape', type(fmri).__name__)}")
        if n_rows is not None and fmri.shape[0] != n_rows:
            raise DataError(f"{file}: {fmri.shape[0]} images but the other hemisphere has {n_rows}")
        n_rows = fmri.shape[0]
        meta = pd.DataFrame({"hemisphere": h, "vertex": np.arange(fmri.shape[1])})
        region = np.full(fmri.shape[1], "", dtype=object)
        for fam in _ALGONAUTS_FAMILIES:
            mask_file = sdir / "roi_masks" / f"{h}.{fam}_challenge_space.npy"
            if not mask_file.is_file():
                continue
            mask = np.asarray(load_npy(mask_file)).reshape(-1)
            if mask.size != fmri.shape[1]:
                raise DataError(f"{mask_file}: {mask.size} vertices but {file.name} has {fmri.shape[1]}")
            mapping_file = sdir / "roi_masks" / f"mapping_{fam}.npy"
            mapping = load_npy(mapping_file) if mapping_file.is_file() else {}
            if not isinstance(mapping, dict):
                raise DataError(f"{mapping_file}: expected a pickled dict label -> name")
            names = {int(k): str(v) for k, v in mapping.items()}
            col = np.array([names.get(int(v), str(int(v))) if v > 0 else "" for v in mask], dtype=object)
            meta[fam] = col
            region = np.where((region == "") & (col != ""), col, region)
        meta["region"] = region
        parts.append(fmri)
        metas.append(meta)
    expected = set(range(n_rows))
    if set(rows) != expected:
        missing = sorted(expected - set(rows))[:3]
        extra = sorted(set(rows) - expected)[:3]
        raise DataError(f"{img_dir}: images do not match the {n_rows} fMRI rows (missing rows {missing}, "
                        f"extra rows {extra})")
    neuroid_meta = pd.concat(metas, ignore_index=True)
    keep = np.ones(len(neuroid_meta), dtype=bool)
    if rois is not None:
        fams = [c for c in _ALGONAUTS_FAMILIES if c in neuroid_meta]
        have = set().union(*(set(neuroid_meta[c]) for c in fams)) - {""} if fams else set()
        unknown = [r for r in rois if r not in have]
        if unknown:
            raise ConfigError(f"unknown ROI(s) {', '.join(unknown)}; valid: {', '.join(sorted(have))}")
        keep = np.zeros(len(neuroid_meta), dtype=bool)
        for c in fams:
            keep |= neuroid_meta[c].isin(rois).to_numpy()
    responses = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts], axis=1)[:, keep]
    neuroid_meta = neuroid_meta[keep].reset_index(drop=True)
    neuroid_meta["id"] = [f"{subj}/{h}/{v}" for h, v in
                          zip(neuroid_meta["hemisphere"], neuroid_meta["vertex"], strict=True)]
    neuroid_meta["subject"] = subj
    neuroid_meta["kind"] = "vertex"
    order = sorted(rows)
    ids = np.array([f"nsd-{rows[r][1]:05d}" for r in order], dtype=object)
    stim_meta = pd.DataFrame({"stimulus_id": ids, "nsd_id": [rows[r][1] for r in order], "label": "",
                              "split": "train", "filename": [rows[r][0] for r in order]})
    images = FolderImages(img_dir, dict(zip(ids, stim_meta["filename"], strict=True)))
    rec = NeuralRecording(
        responses=responses[:, None, :, None], stimulus_ids=ids, stimulus_meta=stim_meta,
        neuroid_meta=neuroid_meta, time_ms=np.zeros(1), images=images,
        attrs={"units": "z-scored betas (averaged over repetitions)", "licence": NSD_LICENCE,
               "preprocessing": ["NSD betas z-scored per session", "averaged over repetitions",
                                 "projected to fsaverage, challenge vertices"],
               "simulated": False, "source": f"algonauts2023:{sdir}", "subject": subj})
    return mask_nan_neuroids(rec)
