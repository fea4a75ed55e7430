"""SIMULATED data sets at the published shapes, written streaming with bounded memory (scale rehearsals).

``write_things_eeg2_tree(out, scale=1.0)`` writes the THINGS-EEG2 layout (Gifford et al. 2022) at its
published shape::

    out/image_set/training_images/<NNNNN_simKKKK>/<simKKKK_JJs>.jpg   1,654 concepts x 10, 500 x 500 JPEG
    out/image_set/test_images/<NNNNN_testKKKK>/<testKKKK_01s>.jpg     200 concepts x 1
    out/image_set/image_metadata.npy                                  the published dict of file/concept lists
    out/eeg_dataset/preprocessed_data/sub-01/preprocessed_eeg_training.npy   (16540, 4, 17, 100) float64 dict
    out/eeg_dataset/preprocessed_data/sub-01/preprocessed_eeg_test.npy       (200, 80, 17, 100) float64 dict

``scale`` (e.g. 0.01) keeps the layout, the 10 images per concept, the repetitions, channels and time points,
and scales the numbers of concepts. Images are drawn per concept (a colour, a grating orientation and
frequency, shared by the concept's images) plus image-specific blobs, so the 1,654-way task is learnable; the
EEG is ``sim_eeg`` of each image (the one EEG simulation of brainalign, run chunk by chunk at 32 px with its
noise-free response) plus white trial noise. Memory: one chunk of images plus the EEG arrays themselves
(the training array is 0.9 GB in float64, as published; pickling it takes a second copy).

``write_nsd_tree(out, scale=1.0)`` writes the NSD layout (Allen et al. 2022) that ``brainalign.neural.nsd`` reads:
73,000 stimuli in ``nsd_stimuli.hdf5`` (imgBrick, one gzip chunk per image), ``nsd_expdesign.mat``, 40 sessions
of int16 betas for one subject over a (40, 42, 20) box around the ROIs (the published volume is (81, 104, 83)),
ROI and ncsnr NIfTI volumes (written with nibabel). See :func:`write_nsd_tree` for what differs from NSD.

Nothing here was recorded from a brain: the files say ``simulated`` and ``SIMULATED_DATA.txt`` says so.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from brainalign.errors import ConfigError
from brainalign.neural.simulations import EEG_TIMES_MS
from brainalign.neural.things_eeg2 import CHANNELS

N_CONCEPTS, PER_CONCEPT, N_TEST, IMAGE_SIZE = 1654, 10, 200, 500
TRAIN_REPS, TEST_REPS = 4, 80


def _scaled(n: int, scale: float) -> int:
    return max(2, int(round(n * scale)))


def concept_images(concept: int, n: int, size: int, seed: int, base: int = 48) -> np.ndarray:
    """``n`` uint8 (size, size, 3) images of one concept: its colour and grating, plus per-image blobs."""
    rng = np.random.default_rng([seed, concept])
    colour = rng.uniform(0.2, 0.8, 3)
    theta, freq = rng.uniform(0, np.pi), rng.uniform(2.0, 8.0)
    yy, xx = np.mgrid[0:base, 0:base] / base
    grating = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)))
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for j in range(n):
        img = colour[None, None, :] + 0.25 * grating[:, :, None] * rng.uniform(0.6, 1.0)
        for _ in range(3):
            cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            img = img + blob[:, :, None] * rng.uniform(-0.4, 0.4, 3)
        small = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
        out[j] = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))
    return out


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _eeg(images: np.ndarray, labels: list[str], reps: int, seed: int, chunk: int, noise_sd: float) -> np.ndarray:
    """sim_eeg's noise-free response (S, 17, 100) of uint8 (S, H, W, 3) images, plus white trial noise."""
    from brainalign.neural.simulations import sim_eeg

    small = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR)) for im in images])
    rec = sim_eeg(images=small.transpose(0, 3, 1, 2).astype(np.float32) / 255.0, labels=labels, n_reps=1,
                  seed=seed, noise_sd=0.0, test_fraction=0.0)
    clean = rec.responses[:, 0].astype(np.float64)  # (S, 17, 100)
    noise = np.random.default_rng([seed, 77, chunk]).standard_normal((len(images), reps, *clean.shape[1:]))
    return clean[:, None] + noise_sd * noise


def _save_npy(path: Path, obj) -> None:
    from brainalign.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, obj, allow_pickle=True)  # the published format is a pickled dict; reading uses safe_pickle


def _write_split(out: Path, part: str, prefix: str, n_concepts: int, per_concept: int, reps: int, size: int,
                 seed: int, chunk: int, noise_sd: float) -> tuple[dict, np.ndarray]:
    from brainalign.io import atomic_path

    eeg = np.empty((n_concepts * per_concept, reps, len(CHANNELS), len(EEG_TIMES_MS)), dtype=np.float64)
    files, concepts = [], []
    pending, pending_labels, start = [], [], 0
    for k in range(n_concepts):
        name = f"{prefix}{k + 1:04d}"
        concept = f"{k + 1:05d}_{name}"
        images = concept_images(k if part == "training" else 100_000 + k, per_concept, size, seed)
        for j, image in enumerate(images):
            file = f"{name}_{j + 1:02d}s.jpg"
            with atomic_path(out / "image_set" / f"{part}_images" / concept / file) as tmp:
                tmp.write_bytes(_jpeg(image))
            files.append(file)
            concepts.append(concept)
        pending.append(images)
        pending_labels += [name] * per_concept
        if sum(len(p) for p in pending) >= chunk or k == n_concepts - 1:
            batch = np.concatenate(pending)
            eeg[start : start + len(batch)] = _eeg(batch, pending_labels, reps, seed, start, noise_sd)
            start += len(batch)
            pending, pending_labels = [], []
    key = "train_img" if part == "training" else "test_img"
    meta = {f"{key}_files": files, f"{key}_concepts": concepts,
            f"{key}_concepts_THINGS": [c.split("_", 1)[1] for c in concepts]}
    return meta, eeg


def write_things_eeg2_tree(out_dir: str | os.PathLike, scale: float = 1.0, seed: int = 0,
                           image_size: int = IMAGE_SIZE, subject: str = "sub-01", chunk: int = 512,
                           noise_sd: float = 1.5) -> Path:
    """Write a SIMULATED THINGS-EEG2 tree at the published shape times ``scale``; returns the ``sub-XX`` folder.

    Args:
        out_dir: folder to write into (``image_set/`` and ``eeg_dataset/`` below it).
        scale: share of the published concept counts (1,654 training, 200 test), at least 2 each.
        seed: simulation seed.
        image_size: JPEG side (published: 500).
        subject: subject folder name.
        chunk: images simulated at a time (bounds the memory of images in flight).
        noise_sd: trial noise (sim_eeg's default).
    """
    if not 0 < scale <= 1:
        raise ConfigError(f"scale must be in (0, 1], got {scale}")
    if not 8 <= image_size <= 1024:
        raise ConfigError(f"image_size must be in 8..1024, got {image_size}")
    out = Path(out_dir)
    sub = out / "eeg_dataset" / "preprocessed_data" / subject
    meta: dict = {}
    times = EEG_TIMES_MS / 1000.0
    for part, prefix, n, per, reps in (("training", "sim", _scaled(N_CONCEPTS, scale), PER_CONCEPT, TRAIN_REPS),
                                       ("test", "test", _scaled(N_TEST, scale), 1, TEST_REPS)):
        part_meta, eeg = _write_split(out, part, prefix, n, per, reps, image_size, seed, chunk, noise_sd)
        meta.update(part_meta)
        _save_npy(sub / f"preprocessed_eeg_{part}.npy",
                  {"preprocessed_eeg_data": eeg, "ch_names": list(CHANNELS), "times": times, "simulated": True})
        del eeg
    _save_npy(out / "image_set" / "image_metadata.npy", meta)
    from brainalign.io import write_text

    write_text(out / "SIMULATED_DATA.txt",
               f"SIMULATED data written by brainalign (THINGS-EEG2 layout at scale {scale}, seed={seed}).\n"
               "Not recorded from any brain; the images are synthetic, not THINGS photographs.\n"
               f"EEG: brainalign data inspect {sub} --loader things_eeg2\n"
               f"Images: data: {{name: things_eeg2, root: {out / 'image_set'}}}\n")
    return sub


# ---- NSD-like (Allen et al. 2022) -----------------------------------------------------------------------------
NSD_IMAGES, NSD_SUBJECTS, NSD_PER_SUBJECT, NSD_SHARED = 73_000, 8, 10_000, 1_000
NSD_SESSIONS, NSD_REPS, NSD_IMAGE_SIZE = 40, 3, 425
NSD_VOLUME = (40, 42, 20)  # (X, Y, Z) of the simulated box around the ROIs; published func1pt8mm: (81, 104, 83)
_FEATURE_SIDE = 8  # a voxel sees the image through an 8 x 8 RGB low-pass (192 features)


def nsd_shape(scale: float = 1.0, image_size: int = NSD_IMAGE_SIZE) -> dict:
    """Sizes of the NSD-like set at ``scale``: stimuli, sessions, images per subject, volume, voxels, bytes."""
    sessions = max(1, int(round(NSD_SESSIONS * scale)))
    per_subject = sessions * 750 // NSD_REPS  # every subject image shown 3 times, as in NSD
    shared = min(per_subject, max(1, int(round(NSD_SHARED * scale))))
    n_images = max(per_subject, int(round(NSD_IMAGES * scale)))
    volume = tuple(max(3, int(round(d * scale ** (1 / 3)))) for d in NSD_VOLUME)
    brain, general, _ = _nsd_masks(volume)
    image_bytes = n_images * image_size * image_size * 3
    beta_bytes = sessions * 750 * int(np.prod(volume)) * 2
    return {"n_images": n_images, "sessions": sessions, "per_subject": per_subject, "shared": shared,
            "volume": volume, "brain_voxels": int(brain.sum()), "nsdgeneral_voxels": int(general.sum()),
            "image_bytes": image_bytes, "beta_bytes": beta_bytes,
            "feature_bytes": n_images * 3 * _FEATURE_SIDE**2 * 4}


def _nsd_masks(volume: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, Y, Z) brain mask (an ellipsoid filling the box), nsdgeneral (its posterior 70%) and prf-visualrois
    labels 1..7 (sectors of its posterior 30%, V1v .. hV4), 0 elsewhere."""
    grid = np.meshgrid(*[(np.arange(d) + 0.5) / d - 0.5 for d in volume], indexing="ij")
    x, y, z = grid
    brain = (x**2 + y**2 + z**2) * 4 <= 1.0  # radius 0.5 in box units
    general = brain & (y < 0.2)
    early = brain & (y < -0.2)
    sector = np.floor((np.arctan2(z, x) + np.pi) / (2 * np.pi) * 7).clip(0, 6).astype(np.int16) + 1
    visual = np.where(early, sector, 0).astype(np.int16)
    return brain, general, visual


def _nsd_design(shape: dict, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """masterordering (trials,), subjectim (8, per_subject), sharedix (shared,): 1-based, as published."""
    rng = np.random.default_rng([seed, 16])
    n, per, shared_n = shape["n_images"], shape["per_subject"], shape["shared"]
    ids = rng.permutation(n) + 1  # nsdIds, 1-based
    shared, pool = np.sort(ids[:shared_n]), ids[shared_n:]
    own = per - shared_n
    subjectim = np.empty((NSD_SUBJECTS, per), dtype=np.int64)
    for s in range(NSD_SUBJECTS):  # 9,000 images of each subject's own at scale 1 (8 x 9,000 + 1,000 = 73,000)
        mine = pool[s * own:(s + 1) * own] if NSD_SUBJECTS * own <= pool.size else rng.choice(pool, own, False)
        subjectim[s] = np.concatenate([shared, rng.permutation(mine)])
    master = rng.permutation(np.repeat(np.arange(1, per + 1), NSD_REPS))  # 3 showings of every subject image
    return master, subjectim, shared


def _nsd_voxels(general: np.ndarray, visual: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per brain voxel: weights (192, V) on the image's 8 x 8 RGB low-pass, ncsnr (V,) and amplitude (V,) in %.

    A voxel of nsdgeneral sees a Gaussian patch of the image (early visual voxels small patches, the rest larger)
    through a colour mixture; brain voxels outside nsdgeneral carry no signal (ncsnr 0)."""
    rng = np.random.default_rng([seed, 17])
    n = general.size
    side = _FEATURE_SIDE
    yy, xx = (np.mgrid[0:side, 0:side] + 0.5) / side
    cy, cx = rng.uniform(0.1, 0.9, n), rng.uniform(0.1, 0.9, n)
    sigma = np.where(visual > 0, rng.uniform(0.08, 0.15, n), rng.uniform(0.15, 0.4, n))
    spatial = np.exp(-((yy.reshape(-1, 1) - cy) ** 2 + (xx.reshape(-1, 1) - cx) ** 2) / (2 * sigma**2))  # (64, V)
    colour = rng.standard_normal((3, n))
    w = (spatial[:, None, :] * colour[None, :, :]).reshape(side * side * 3, n)  # (192, V), (pixel, channel) order
    w /= np.linalg.norm(w, axis=0, keepdims=True) / 4.0
    ncsnr = np.where(general, rng.uniform(0.15, 0.8, n), 0.0)
    w[:, ~general] = 0.0
    amplitude = rng.uniform(1.0, 3.0, n)  # % signal change per unit of response
    return w.astype(np.float32), ncsnr.astype(np.float32), amplitude.astype(np.float32)


def _check_disk(folder: Path, need: int) -> None:
    import shutil

    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise ConfigError(f"not enough free disk at {probe}: the NSD-like set needs up to {need / 1e9:.1f} GB "
                          f"(uncompressed), {free / 1e9:.1f} GB free; use a smaller --image-size or --scale")


def _write_nifti(path: Path, data: np.ndarray) -> None:
    """A NIfTI-1 volume (X, Y, Z) at NSD's 1.8 mm, written by nibabel."""
    import nibabel

    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.Nifti1Image(data, np.diag([1.8, 1.8, 1.8, 1.0])).to_filename(str(path))


def write_nsd_tree(out_dir: str | os.PathLike, scale: float = 1.0, seed: int = 0,
                   image_size: int = NSD_IMAGE_SIZE, subject: int = 1, chunk: int = 256,
                   compression: str = "gzip") -> Path:
    """Write a SIMULATED NSD-like tree in the published layout at ``scale``; returns the NSD root.

    Layout (what ``brainalign.neural.nsd.load_nsd`` reads)::

        nsddata/experiments/nsd/nsd_expdesign.mat       masterordering (1, 30000), subjectim (8, 10000),
                                                        sharedix (1, 1000); 1-based
        nsddata/ppdata/subj01/func1pt8mm/roi/{nsdgeneral,prf-visualrois}.nii.gz   labels (X, Y, Z), -1 outside
        nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_sessionSS.hdf5
                                                        /betas int16 (750, Z, Y, X), % signal change x 300
        nsddata_betas/.../betas_fithrf_GLMdenoise_RR/ncsnr.nii.gz   the simulation's true ncsnr (X, Y, Z)
        nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5    /imgBrick uint8 (73000, 425, 425, 3)
        SIMULATED_DATA.txt

    At scale 1: 73,000 stimuli (8 subjects x 9,000 own + 1,000 shared), 40 sessions of 750 trials for the
    subject (10,000 images x 3 showings), a (40, 42, 20) box with 17,616 brain voxels of which 13,612 are in
    nsdgeneral. ``scale`` scales the stimuli, the sessions (at least one) and the shared images linearly and
    the box's voxel count (each side by scale^(1/3)). Images are ``concept_images`` (a colour, a grating and
    blobs per image); a voxel's response is its weights times the image's 8 x 8 RGB low-pass, with trial noise
    at the voxel's ncsnr. Streaming: ``chunk`` images in memory at a time, the 8 x 8 low-pass of every image in a
    memory map in the staging folder (0.77 kB per stimulus, removed before publishing), betas 50 trials at a
    time. Everything is written to a staging folder beside ``out_dir`` and moved there only when complete.

    Args:
        out_dir: NSD root to create (must not exist, or be empty).
        scale: share of the published size, in (0, 1].
        seed: simulation seed.
        image_size: imgBrick side (published: 425; smaller differs from the publication).
        subject: 1..8, the subject whose ROIs and betas are written (all 8 are in the design).
        chunk: images generated and written at a time.
        compression: imgBrick chunks (one image each) "gzip" (level 1; about half the bytes on these images)
            or "none".
    """
    import shutil
    import tempfile

    import h5py
    from scipy.io import savemat

    if not 0 < scale <= 1:
        raise ConfigError(f"scale must be in (0, 1], got {scale}")
    if not 8 <= image_size <= 1024:
        raise ConfigError(f"image_size must be in 8..1024, got {image_size}")
    if not 1 <= subject <= NSD_SUBJECTS:
        raise ConfigError(f"subject must be 1..8, got {subject}")
    if compression not in ("gzip", "none"):
        raise ConfigError(f"compression must be 'gzip' or 'none', got {compression!r}")
    if chunk < 1:
        raise ConfigError(f"chunk must be a positive integer, got {chunk}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: exists and is not an empty folder; give a new folder for the NSD-like set")
    shape = nsd_shape(scale, image_size)
    _check_disk(out.parent, shape["image_bytes"] + shape["beta_bytes"] + 2 * shape["feature_bytes"] + 2**26)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".staging"))
    except OSError as exc:
        raise ConfigError(f"cannot write to {out.parent}: {exc.strerror or exc}") from None
    subj = f"subj{subject:02d}"
    try:
        master, subjectim, shared = _nsd_design(shape, seed)
        design = staging / "nsddata" / "experiments" / "nsd"
        design.mkdir(parents=True)
        savemat(design / "nsd_expdesign.mat", {"masterordering": master[None, :].astype(np.float64),
                                               "subjectim": subjectim.astype(np.float64),
                                               "sharedix": shared[None, :].astype(np.float64)})
        # Images, and their 8 x 8 low-pass for the responses, ``chunk`` at a time.
        n, side = shape["n_images"], _FEATURE_SIDE
        stim = staging / "nsddata_stimuli" / "stimuli" / "nsd"
        stim.mkdir(parents=True)
        features = np.lib.format.open_memmap(staging / "features.npy", mode="w+", dtype=np.float32,
                                             shape=(n, side * side * 3))
        with h5py.File(stim / "nsd_stimuli.hdf5", "w") as f:
            f.attrs["simulated"] = True
            f.attrs["description"] = "SIMULATED by brainalign: synthetic images, not the COCO photographs of NSD"
            kw = {"compression": "gzip", "compression_opts": 1} if compression == "gzip" else {}
            brick = f.create_dataset("imgBrick", shape=(n, image_size, image_size, 3), dtype=np.uint8,
                                     chunks=(1, image_size, image_size, 3), **kw)
            brick.attrs["simulated"] = True
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                images = np.concatenate([concept_images(200_000 + k, 1, image_size, seed)
                                         for k in range(start, stop)])  # (chunk, H, W, 3)
                brick[start:stop] = images
                low = np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.BOX)) for im in images])
                features[start:stop] = (low.reshape(len(images), -1).astype(np.float32) / 255.0 - 0.5) * 4.0
                del images
        features.flush()
        # ROIs and the voxels' tuning.
        brain, general, visual = _nsd_masks(shape["volume"])
        roi_dir = staging / "nsddata" / "ppdata" / subj / "func1pt8mm" / "roi"
        _write_nifti(roi_dir / "nsdgeneral.nii.gz", np.where(brain, general.astype(np.int16), -1).astype(np.int16))
        _write_nifti(roi_dir / "prf-visualrois.nii.gz", np.where(brain, visual, -1).astype(np.int16))
        w, ncsnr, amplitude = _nsd_voxels(general.reshape(-1), visual.reshape(-1), seed)
        # Each voxel's signal standardised over all stimuli (so its ncsnr is the simulated one): mean and
        # covariance of the low-pass features, accumulated ``chunk`` rows at a time.
        total, gram = np.zeros(features.shape[1]), np.zeros((features.shape[1],) * 2)
        for start in range(0, n, chunk):
            block = np.asarray(features[start:start + chunk], dtype=np.float64)
            total += block.sum(0)
            gram += block.T @ block
        mean = total / n
        cov = gram / n - np.outer(mean, mean)
        sd = np.sqrt(np.maximum(np.einsum("fv,fg,gv->v", w, cov, w), 0.0))
        w = (w / np.where(sd > 0, sd, 1.0)).astype(np.float32)
        offset = (mean @ w).astype(np.float32)  # (V,) subtracted: zero-mean signal
        beta_dir = staging / "nsddata_betas" / "ppdata" / subj / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
        _write_nifti(beta_dir / "ncsnr.nii.gz", ncsnr.reshape(shape["volume"]))
        zyx = shape["volume"][::-1]
        in_brain = brain.reshape(-1)
        noise_sd = np.where(ncsnr > 0, 1.0 / np.maximum(ncsnr, 1e-6), 1.0).astype(np.float32)
        nsd0 = subjectim[subject - 1, master - 1] - 1  # (trials,) 0-based nsdId per trial
        for s in range(shape["sessions"]):
            with h5py.File(beta_dir / f"betas_session{s + 1:02d}.hdf5", "w") as f:
                f.attrs["simulated"] = True
                betas = f.create_dataset("betas", shape=(750, *zyx), dtype=np.int16, chunks=(50, *zyx))
                betas.attrs["simulated"] = True
                for t0 in range(0, 750, 50):
                    rows = nsd0[s * 750 + t0: s * 750 + t0 + 50]
                    order = np.argsort(rows)
                    feats = np.empty((len(rows), features.shape[1]), dtype=np.float32)
                    feats[order] = features[rows[order]]  # (50, 192)
                    rng = np.random.default_rng([seed, 18, s, t0])
                    noise = rng.standard_normal((len(rows), w.shape[1]), dtype=np.float32)
                    resp = feats @ w - offset + noise_sd * noise  # (50, X*Y*Z), signal sd 1 in nsdgeneral
                    pct = np.where(in_brain, amplitude * resp, 0.0)  # (50, X*Y*Z), % signal change
                    vol = np.clip(np.round(pct * 300), -32768, 32767).astype(np.int16)
                    betas[t0:t0 + 50] = vol.reshape(len(rows), *shape["volume"]).transpose(0, 3, 2, 1)
        del features
        (staging / "features.npy").unlink()
        from brainalign.io import write_text

        write_text(staging / "SIMULATED_DATA.txt",
                   f"SIMULATED data written by brainalign (NSD layout at scale {scale}, seed={seed}, "
                   f"{image_size} px images).\nNot recorded from any brain; the images are synthetic, not NSD's "
                   f"COCO photographs{'' if image_size == NSD_IMAGE_SIZE else '; NSD images are 425 px'}.\n"
                   f"{n} stimuli, {shape['sessions']} sessions of {subj}, ROI box {shape['volume']} "
                   f"({shape['nsdgeneral_voxels']} nsdgeneral voxels).\n"
                   f"Load: brainalign data inspect {out} --loader nsd --option roi=nsdgeneral\n")
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the published tree is not
        if out.exists():
            out.rmdir()  # empty, checked above
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


TREES = {"things_eeg2": write_things_eeg2_tree, "nsd": write_nsd_tree}


def write_tree(kind: str, out_dir: str | os.PathLike, **options) -> Path:
    """``brainalign data simulate KIND``: a simulated data set tree at its published shape."""
    if kind not in TREES:
        raise ConfigError(f"unknown data set tree {kind!r}; valid: {', '.join(TREES)}")
    import inspect

    allowed = [p for p in inspect.signature(TREES[kind]).parameters if p != "out_dir"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"option {unknown[0]!r} is not an option of {kind}; valid: {', '.join(allowed)}")
    return TREES[kind](out_dir, **options)
