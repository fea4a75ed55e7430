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


TREES = {"things_eeg2": write_things_eeg2_tree}


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
