"""Regularization sets from a run's config: which stimuli each regularizer sees and what its targets are.

Target options live in a regularizer's ``params`` beside its own parameters and are consumed here:

- ``targets``: ``average`` (trial-averaged responses), ``reliability`` (averaged, each neuroid scaled by its
  reliability, neuroids with reliability <= 0 dropped), ``predicted`` (a frozen predictor's responses) or
  ``denoised`` (Li et al.'s target: the predictor's responses, each neuroid scaled by reliability x held-out
  prediction r, neuroids with a weight <= 0 dropped). The default is the regularizer's
  ``RegularizerInfo.target_defaults`` (``denoised`` for neural_similarity, ``average`` for the others).
- ``predictor``: ``cnn`` (default; a trained, cross-validated, cached CNN encoder, see ``encoder``) or
  ``ridge`` (the fast random-feature ridge, see ``predictor``); for ``predicted`` and ``denoised``.
- ``predictor_seed``: seed of the predictor (default 0). The targets are a function of the recording, not of
  the run's seed, so runs of every seed share one cached encoder.
- ``stimuli``: ``recording`` (default) or ``train``: the predictor's pseudo-targets for the run's training
  images (Shao et al.'s guidance; needs ``targets: predicted`` or ``denoised``), or ``classification``: the
  single-stream dual task (Guo et al.): the recording's responses to the classification training images
  themselves, row i for training image i (matched by stimulus id), and the term reads the classification
  batch's features.
- ``split``: ``auto`` (default: the recording's ``train`` split when it has one besides others, so that its
  held-out stimuli stay unseen), a split name, or ``all``.
- ``region``: keep the neuroids of one region or a list (per-ROI guidance).
- ``time_window``: [start_ms, end_ms) of the time bins kept; ``time_average``: average them (Dapello et al.'s
  70-170 ms mean).
- ``standardize``: z-score each target column across stimuli (puts MSE on a common scale).
- ``max_stimuli``: keep the first N stimuli of the set (Attias et al. regularized with 5,000 images). The only
  option that also applies to pixel and image sets.

Simulated loaders get the run's training images (ids ``train-00000``, ...) unless their options name images,
so the simulated brain sees exactly the images the model trains on. Real recordings provide their own images
(``load_images`` at the data's size and channels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from brainalign.errors import ConfigError, DataError
from brainalign.regularizers.base import RegularizationSet, check_choice
from brainalign.regularizers.diagnostics import pixel_rows
from brainalign.regularizers.encoder import EncoderSettings, fit_encoder
from brainalign.regularizers.predictor import fit_predictor

TARGET_OPTIONS = ("targets", "predictor", "predictor_seed", "stimuli", "split", "region", "time_window",
                  "time_average", "standardize", "max_stimuli")
PREDICTED = ("predicted", "denoised")
PIXEL_OPTIONS = ("max_stimuli",)


@dataclass
class TargetOptions:
    targets: str = "average"
    predictor: str = "cnn"
    predictor_seed: int = 0
    stimuli: str = "recording"
    split: str = "auto"
    region: str | list[str] | None = None
    time_window: list[float] | None = None
    time_average: bool = False
    standardize: bool = False
    max_stimuli: int | None = None

    def __post_init__(self):
        check_choice("targets", self.targets, ("average", "reliability", "predicted", "denoised"))
        check_choice("predictor", self.predictor, ("cnn", "ridge"))
        check_choice("stimuli", self.stimuli, ("recording", "train", "classification"))
        if self.stimuli == "classification" and (self.targets in PREDICTED or self.max_stimuli is not None):
            raise ConfigError("stimuli: classification takes the recorded responses to every training image; it "
                              "cannot be combined with targets: predicted, denoised or max_stimuli")
        if not isinstance(self.predictor_seed, int) or self.predictor_seed < 0:
            raise ConfigError(f"predictor_seed must be an integer >= 0, got {self.predictor_seed!r}")
        if self.stimuli == "train" and self.targets not in PREDICTED:
            raise ConfigError("stimuli: train needs targets: predicted or denoised (responses to the training "
                              "images come from a predictor fitted to the recording)")
        if self.max_stimuli is not None and (not isinstance(self.max_stimuli, int) or self.max_stimuli < 2):
            raise ConfigError(f"max_stimuli must be an integer >= 2, got {self.max_stimuli!r}")
        if self.time_window is not None and (not isinstance(self.time_window, (list, tuple))
                                             or len(self.time_window) != 2):
            raise ConfigError(f"time_window must be [start_ms, end_ms], got {self.time_window!r}")


@dataclass
class BuiltSet:
    """A regularization set and the facts about its targets (for ``target_info``)."""

    reg_set: RegularizationSet
    info: dict = field(default_factory=dict)


def split_params(params: dict) -> tuple[dict, dict]:
    """(target options, the regularizer's own parameters)."""
    opts = {k: v for k, v in params.items() if k in TARGET_OPTIONS}
    rest = {k: v for k, v in params.items() if k not in TARGET_OPTIONS}
    return opts, rest


def train_ids(n: int) -> list[str]:
    return [f"train-{i:05d}" for i in range(n)]


class RecordingCache:
    """Recordings loaded once per build, shared by the regularizers that name the same one."""

    def __init__(self):
        self._cache: dict[str, tuple] = {}

    def load(self, rec_cfg, data, images: bool = True) -> tuple[object, torch.Tensor | None, list[str], bool]:
        """(recording, images (N, C, H, W) at the data's size, stimulus ids, simulated).

        ``images=False``: a real recording's images are not read (None), e.g. 16,540 THINGS-EEG2 JPEGs that a
        single-stream set replaces with the classification images anyway.
        """
        key = json.dumps([rec_cfg.name, rec_cfg.path, rec_cfg.options, images], sort_keys=True, default=str)
        if key not in self._cache:
            self._cache[key] = _load(rec_cfg, data, images)
        return self._cache[key]


def _load(rec_cfg, data, with_images: bool = True):
    try:
        from brainalign.neural import load_recording
    except ImportError as exc:  # pragma: no cover - the neural package is part of brainalign
        raise ConfigError(f"recording {rec_cfg.name!r}: brainalign.neural is not available ({exc})") from None
    from brainalign.registry import NEURAL_LOADERS

    entry = NEURAL_LOADERS.entry(rec_cfg.name)
    simulated = bool(getattr(entry.info, "simulated", False))
    options = dict(rec_cfg.options)
    give_train_images = simulated and "images" not in options
    if give_train_images:
        ids = train_ids(len(data.train))
        options.update(images=data.train.images.numpy(), labels=data.train.labels.numpy(), stimulus_ids=ids)
    rec = load_recording(rec_cfg.name, rec_cfg.path, **options)
    simulated = simulated or bool(rec.attrs.get("simulated", False))
    rec_ids = [str(s) for s in rec.stimulus_ids]
    if give_train_images:
        if rec_ids != ids:
            if len(rec_ids) != len(ids):
                why = f"{len(rec_ids)} stimuli for {len(ids)} images"
            else:
                k = next(k for k, (a, b) in enumerate(zip(rec_ids, ids, strict=True)) if a != b)
                why = f"stimulus {k} is {rec_ids[k]!r}, expected {ids[k]!r}"
            raise DataError(f"recording {rec_cfg.name!r}: its stimulus ids do not match the training images it was "
                            f"given ({why})")
        images = data.train.images
    elif not with_images:
        images = None
    else:
        images = torch.as_tensor(np.asarray(rec.load_images(size=data.image_size, channels=data.in_channels),
                                            dtype=np.float32))
        if images.shape[0] != len(rec_ids):
            raise DataError(f"recording {rec_cfg.name!r}: {images.shape[0]} images for {len(rec_ids)} stimulus ids")
        if tuple(images.shape[1:]) != tuple(data.train.images.shape[1:]):
            raise DataError(f"recording {rec_cfg.name!r}: images of shape {tuple(images.shape[1:])} do not match the "
                            f"classification images {tuple(data.train.images.shape[1:])}")
    return rec, images, rec_ids, simulated


def _select_split(rec, split: str):
    meta = getattr(rec, "stimulus_meta", None)
    splits = set(meta["split"]) if meta is not None and "split" in meta else set()
    if split == "all":
        return rec, "all"
    if split == "auto":
        if "train" in splits and len(splits) > 1:
            return rec.split("train"), "train"
        return rec, "all"
    return rec.split(split), split


def _reliability(rec) -> np.ndarray:
    meta = rec.neuroid_meta
    rel = meta["reliability"].to_numpy(dtype=np.float64) if meta is not None and "reliability" in meta else None
    if rel is None or not np.isfinite(rel).any():
        if rec.n_reps < 2:
            raise DataError("targets: reliability needs reliabilities in neuroid_meta or repeated presentations")
        rel = np.nanmean(rec.noise_ceiling("spearman_brown"), axis=1)
    return np.nan_to_num(rel, nan=0.0).clip(min=0.0)


def fit_recording_predictor(images: torch.Tensor, responses: torch.Tensor, kind: str = "cnn", seed: int = 0):
    """The frozen predictor of (N, F) responses: the trained CNN encoder (``cnn``) or the random-feature ridge.

    Both have ``predict(images)``, ``heldout_r_per_output`` (cross-validated, same folds for the same seed)
    and ``describe()``.
    """
    if kind == "cnn":
        return fit_encoder(images, responses, EncoderSettings(seed=seed))
    return fit_predictor(images, responses, seed=seed)


def denoising_weights(reliability: np.ndarray, heldout_r: np.ndarray) -> np.ndarray:
    """Li et al.'s neuroid weights (neuroid,): reliability x held-out prediction r, both clipped at 0.

    ``heldout_r``: (neuroid, time) held-out r of the predictor's outputs, averaged over time bins (NaN, from
    constant outputs, counts as 0).
    """
    accuracy = np.nan_to_num(np.asarray(heldout_r, dtype=np.float64), nan=0.0).mean(axis=1)
    return np.clip(reliability, 0, None) * np.clip(accuracy, 0, None)


def recording_set(rec_cfg, data, opts: TargetOptions, cache: RecordingCache) -> BuiltSet:
    """Stimuli and neural targets (N, neuroid * time) of a recording, per the target options.

    The targets are a function of the recording and the options only (the predictor's seed is
    ``opts.predictor_seed``), never of the run's seed, so every seed of a condition shares them.
    """
    single_stream = opts.stimuli == "classification"
    rec, images, ids, simulated = cache.load(rec_cfg, data, images=not single_stream)
    n_all = len(ids)
    # single stream: every training image needs its response, so ``auto`` keeps every stimulus
    rec, split = _select_split(rec, "all" if single_stream and opts.split == "auto" else opts.split)
    if split != "all":
        keep = [ids.index(str(s)) for s in rec.stimulus_ids]
        images, ids = (images[keep] if images is not None else None), [ids[k] for k in keep]
    if opts.region is not None:
        rec = rec.select_neuroids(region=opts.region)
    if opts.time_window is not None:
        rec = rec.select_time(float(opts.time_window[0]), float(opts.time_window[1]))
    avg = rec.average()  # (N, neuroid, time)
    if opts.time_average:
        avg = avg.mean(2, keepdims=True)
    bad = ~np.isfinite(avg)
    if bad.any():
        raise DataError(f"recording {rec_cfg.name!r}: {int(bad.sum())} averaged responses are NaN or infinite "
                        f"(stimuli without a valid repetition?); drop those stimuli or neuroids first")
    info: dict = {"source": f"recording:{rec_cfg.name}", "split": split, "n_recording_stimuli": n_all,
                  "targets": opts.targets, "stimuli": opts.stimuli}
    w = None
    if opts.targets in ("reliability", "denoised"):
        w = _reliability(rec)
    if opts.targets == "reliability":
        if not (w > 0).any():
            raise DataError(f"recording {rec_cfg.name!r}: no neuroid has a positive reliability")
        avg = avg[:, w > 0] * w[w > 0][None, :, None].astype(np.float32)
        info["neuroids_kept"] = int((w > 0).sum())
    targets = torch.from_numpy(np.ascontiguousarray(avg.reshape(avg.shape[0], -1), dtype=np.float32))
    shape = tuple(int(s) for s in avg.shape[1:])
    if opts.targets in PREDICTED:
        predictor = fit_recording_predictor(images, targets, opts.predictor, opts.predictor_seed)
        info["predictor"] = predictor.describe()
        per_neuroid = np.asarray(predictor.heldout_r_per_output, dtype=np.float64).reshape(shape)
        # Cross-validated r per neuroid (averaged over time bins; None for constant responses).
        info["predictor"]["heldout_r_per_neuroid"] = [round(float(np.nanmean(row)), 4) if np.isfinite(row).any()
                                                      else None for row in per_neuroid]
        if opts.stimuli == "train":
            images, ids = data.train.images, train_ids(len(data.train))
        targets = predictor.predict(images)
        if opts.targets == "denoised":
            w = denoising_weights(w, np.asarray(predictor.heldout_r_per_output).reshape(shape))
            if not (w > 0).any():
                raise DataError(f"recording {rec_cfg.name!r}: no neuroid has both a positive reliability and a "
                                f"positive held-out prediction r; nothing to denoise (use targets: average)")
            kept = torch.from_numpy(np.flatnonzero(w > 0))
            scale = torch.from_numpy(w[w > 0].astype(np.float32))
            targets = (targets.reshape(len(targets), *shape)[:, kept] * scale[None, :, None]).reshape(len(targets), -1)
            shape = (int(len(kept)),) + shape[1:]
            info["neuroids_kept"] = int(len(kept))
            info["neuroid_weights"] = "reliability x held-out prediction r"
    if opts.max_stimuli is not None:
        images, ids, targets = images[: opts.max_stimuli], ids[: opts.max_stimuli], targets[: opts.max_stimuli]
    if single_stream:
        order = classification_order(ids, data, rec_cfg.name)
        images, ids, targets = data.train.images, [ids[k] for k in order], targets[order]
    if opts.standardize:
        targets = (targets - targets.mean(0)) / targets.std(0).clamp_min(1e-8)
    _check_varies(targets, rec_cfg.name)
    desc = f"{rec_cfg.name} {opts.targets} responses" + (" (simulated)" if simulated else "")
    if opts.targets in PREDICTED:
        desc += f", {opts.predictor} predictor"
    reg_set = RegularizationSet(images.contiguous(), ids, targets, target_shape=shape, description=desc,
                                simulated=simulated)
    info.update({"recording": rec_cfg.name, "n_stimuli": len(ids), "target_shape": list(shape)})
    return BuiltSet(reg_set, info)


def classification_order(ids: list[str], data, name: str) -> list[int]:
    """Row of ``ids`` for each classification training image, in training order (single-stream sets).

    A simulated recording given the training images has ids ``train-00000``, ... in training order; a real
    one is matched by the data set's stimulus ids (THINGS-EEG2 file stems).
    """
    n = len(data.train)
    given_train = set(ids) <= set(train_ids(n))  # a simulated recording of the training images
    wanted = train_ids(n) if given_train else data.train.ids
    if wanted is None:
        raise ConfigError(f"stimuli: classification needs a data set that names its images (things_eeg2) so that "
                          f"each training image finds its response in {name!r}, or a simulated recording")
    pos = {s: k for k, s in enumerate(ids)}
    missing = [w for w in wanted if w not in pos]
    if missing:
        raise DataError(f"recording {name!r}: {len(missing)} of {n} training images have no response "
                        f"(e.g. {missing[0]!r}); use the recording of the same image set")
    return [pos[w] for w in wanted]


def _check_varies(targets: torch.Tensor, name: str) -> None:
    if targets.shape[0] >= 2 and float(targets.double().std(0).max()) == 0.0:
        raise DataError(f"{name}: the targets are the same for every stimulus; there is nothing to align to")


def pixel_set(data, rec_cfg, cache: RecordingCache, with_targets: bool = True,
              max_stimuli: int | None = None) -> BuiltSet:
    """The run's training images (or a recording's images) with mean-subtracted, channel-averaged pixels."""
    if rec_cfg is not None:
        _, images, ids, _ = cache.load(rec_cfg, data)
        source = f"images of recording:{rec_cfg.name}"
    else:
        images, ids = data.train.images, train_ids(len(data.train))
        source = "training images"
    if max_stimuli is not None:
        images, ids = images[:max_stimuli], ids[:max_stimuli]
    targets = shape = None
    if with_targets:
        rows = pixel_rows(images)
        targets = rows - rows.mean(0, keepdim=True)  # (N, H*W), mean image subtracted
        shape = tuple(images.shape[-2:])
        _check_varies(targets, source)
    desc = f"pixels of the {source}" if with_targets else source
    reg_set = RegularizationSet(images.contiguous(), ids, targets, target_shape=shape or (), description=desc,
                                simulated=False)  # pixels are never simulated neural data
    info = {"source": "pixels" if with_targets else "images", "images": source, "n_stimuli": len(ids)}
    if shape:
        info["target_shape"] = list(shape)
    return BuiltSet(reg_set, info)
