"""Simulated recordings with known structure: the offline default, always labelled ``simulated: True``.

- ``sim_v1``: a V1-like population of Gabor simple and complex cells (``_models.GaborBank``, VOneNet-like
  parameter distributions); expected spike counts lambda = baseline + gain x response, Poisson trial noise.
- ``sim_it``: an IT-like population: a deeper fixed nonlinear random-feature stage with pooling and
  position invariance (``_models.RandomDeepFeatures``) mixed with a category component (a fixed random
  pattern per stimulus label); softplus rates, Poisson noise. Its stimulus-by-stimulus similarity is
  far less pixel-driven than V1's (see ``brainalign.neural.rsa.pixel_redundancy``).
- ``sim_eeg``: 17 channels named and placed as in THINGS-EEG2; early sources driven by the V1 population
  with a response peaking at ``peak_latency_ms`` (default 100 ms), late sources driven by the IT-like
  stage peaking ``late_delay_ms`` later, projected through a smooth lead field, plus Gaussian sensor noise.
- ``sim_fmri``: voxels in ROIs V1 and V2 (spatial pools of Gabor units, small and larger), V4 (coarse
  mid-level random features) and IT (deep random features + category), with Gaussian noise per voxel.

Images default to scikit-learn's digits (1797 images, 8 x 8, values / 16, ids ``digits-0000``).
Everything is a function of the image, the seed and the parameters, so two calls with the same seed
(e.g. train and test images separately) simulate the same "brain"; trial noise differs per call.

Ground truth: ``attrs["ground_truth"]`` holds ``signal_var`` (variance over the stimulus set of the
noise-free response) and ``noise_var`` (trial noise variance, averaged over stimuli for Poisson noise),
each (neuroid, time). ``implied_noise_ceiling`` turns them into what each ceiling method should estimate.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
import pandas as pd

from brainalign.errors import ConfigError
from brainalign.neural import ceilings
from brainalign.neural._models import deep_features, gabor_bank, label_prototypes, to_gray
from brainalign.neural.images import ArrayImages
from brainalign.neural.loading import LoaderInfo
from brainalign.neural.recording import NeuralRecording
from brainalign.neural.things_eeg2 import CHANNELS, channel_meta
from brainalign.registry import NEURAL_LOADERS

SIM_LICENCE = "CC0 (simulated)"
EEG_TIMES_MS = np.arange(-200.0, 800.0, 10.0)  # THINGS-EEG2: -200..790 ms at 100 Hz


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images[:, None] / 16.0).astype(np.float32), d.target.astype(str)


def default_images(n: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn digits: images float32 (N, 1, 8, 8) in [0, 1], labels "0".."9", ids ``digits-0000``."""
    images, labels = _digits()
    n = len(images) if n is None else int(n)
    if not 1 <= n <= len(images):
        raise ConfigError(f"n_stimuli must be in 1..{len(images)} for the default digits, got {n}")
    return images[:n], labels[:n], np.array([f"digits-{i:04d}" for i in range(n)], dtype=object)


def stable_split(ids, test_fraction: float) -> np.ndarray:
    """'test' for a stable pseudo-random ``test_fraction`` of ids (by CRC32 of the id), else 'train'."""
    if not 0 <= test_fraction < 1:
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction}")
    cut = int(round(test_fraction * 10000))
    return np.array(["test" if zlib.crc32(str(i).encode()) % 10000 < cut else "train" for i in ids], dtype=object)


def _stimuli(images, labels, stimulus_ids, n_stimuli):
    if images is None:
        imgs, labs, ids = default_images(n_stimuli)
        labels = labs if labels is None else labels
        stimulus_ids = ids if stimulus_ids is None else stimulus_ids
    else:
        imgs = np.asarray(images, dtype=np.float32)
        if imgs.ndim != 4:
            raise ConfigError(f"images must be float (N, C, H, W) in [0, 1], got shape {imgs.shape}")
        if n_stimuli is not None:
            imgs = imgs[: int(n_stimuli)]
    n = len(imgs)
    if n < 2:
        raise ConfigError("a simulation needs at least 2 stimuli")
    # np.asarray(...).tolist() first: torch tensors and numpy integers become plain Python values.
    labels = (np.full(n, "", dtype=object) if labels is None
              else np.array([str(x) for x in np.asarray(labels).reshape(-1).tolist()], dtype=object))
    ids = (np.array([f"stim-{i:05d}" for i in range(n)], dtype=object) if stimulus_ids is None
           else np.array([str(x) for x in np.asarray(stimulus_ids).reshape(-1).tolist()], dtype=object))
    if labels.shape != (n,) or ids.shape != (n,):
        raise ConfigError(f"{n} images but {labels.size} labels and {ids.size} stimulus_ids")
    if len(set(ids.tolist())) != n:
        raise ConfigError("stimulus_ids must be unique")
    return imgs, labels, ids


def _check_common(n_reps: int, seed: int) -> None:
    if int(n_reps) < 1:
        raise ConfigError(f"n_reps must be >= 1, got {n_reps}")
    if int(seed) < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")


def _record(kind: str, trials: np.ndarray, clean: np.ndarray, noise_var: np.ndarray, imgs, labels, ids,
            neuroid_meta: pd.DataFrame, time_ms, units: str, test_fraction: float, params: dict,
            extra_attrs: dict | None = None) -> NeuralRecording:
    """Wrap simulated trials (S, R, N, T) and the noise-free response (S, N, T) into a recording."""
    signal_var = clean.astype(np.float64).var(axis=0, ddof=1)
    meta = pd.DataFrame({"stimulus_id": ids, "label": labels, "split": stable_split(ids, test_fraction)})
    attrs = {"units": units, "preprocessing": ["simulated"], "licence": SIM_LICENCE, "simulated": True,
             "source": f"{kind}(seed={params['seed']})", "parameters": params,
             "ground_truth": {"signal_var": signal_var,
                              "noise_var": np.broadcast_to(noise_var, signal_var.shape).copy()},
             **(extra_attrs or {})}
    return NeuralRecording(responses=trials.astype(np.float32, copy=False), stimulus_ids=ids, stimulus_meta=meta,
                           neuroid_meta=neuroid_meta, time_ms=np.asarray(time_ms, dtype=float),
                           images=ArrayImages(imgs, ids.tolist(), layout="NCHW", name=kind), attrs=attrs)


def implied_noise_ceiling(rec: NeuralRecording, method: str = "splithalf", bound: str = "upper") -> np.ndarray:
    """What ``rec.noise_ceiling(method, bound=bound)`` should estimate, from the simulation's ground truth.

    ncsnr is returned as the NSD ceiling fraction for all repetitions averaged, like ``noise_ceiling``.
    """
    truth = rec.attrs.get("ground_truth")
    if truth is None:
        raise ConfigError("implied_noise_ceiling needs a simulated recording with attrs['ground_truth'] "
                          "(subset() drops it, because it depends on the stimulus set)")
    key = {"splithalf": f"splithalf_{bound}", "spearman_brown": "spearman_brown", "ncsnr": "ncsnr",
           "fev": "fev", "oracle": "oracle"}.get(method)
    if key is None:
        raise ConfigError(f"unknown noise ceiling {method!r}")
    return ceilings.expected_ceiling(truth["signal_var"], truth["noise_var"], rec.n_reps, key)


def _poisson(lam: np.ndarray, n_reps: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson counts (S, R, N, 1) around expected counts lam (S, N)."""
    return rng.poisson(np.repeat(lam[:, None, :], n_reps, axis=1)).astype(np.float32)[..., None]


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


@NEURAL_LOADERS.register(
    "sim_v1", description="Simulated V1 population: Gabor simple/complex cells, Poisson noise (VOneNet-like)",
    info=LoaderInfo(modality="ephys", simulated=True, formats=("in memory",), licence=SIM_LICENCE,
                    url="https://github.com/dicarlolab/vonenet"))
def sim_v1(images=None, labels=None, stimulus_ids=None, n_stimuli: int | None = None, n_reps: int = 4,
           seed: int = 0, n_units: int = 128, resolution: int = 32, fov_deg: float = 4.0,
           complex_fraction: float = 0.5, baseline: float = 2.0, mean_gain: float = 1.5,
           test_fraction: float = 0.2) -> NeuralRecording:
    """Simulated V1 spike counts (50-150 ms window) to any images.

    Args:
        images: float (N, C, H, W) in [0, 1]; default scikit-learn digits.
        labels, stimulus_ids: per image (default digit classes / ``digits-0000``; "" / ``stim-00000``).
        n_stimuli: use the first n images.
        n_reps: repetitions per stimulus.
        seed: fixes the cells and the noise.
        n_units, resolution, fov_deg, complex_fraction: the Gabor population (images are resized to
            resolution x resolution pixels spanning fov_deg degrees).
        baseline, mean_gain: expected spontaneous count and count per unit of normalised drive.
        test_fraction: share of stimuli marked split="test" (stable per id).
    """
    _check_common(n_reps, seed)
    imgs, labels, ids = _stimuli(images, labels, stimulus_ids, n_stimuli)
    bank = gabor_bank(int(n_units), int(resolution), float(fov_deg), int(seed), float(complex_fraction))
    drive = bank(to_gray(imgs, resolution))  # (S, U)
    rng = np.random.default_rng([seed, 2])
    gain = mean_gain * rng.lognormal(0.0, 0.4, n_units)
    base = baseline * rng.lognormal(0.0, 0.3, n_units)
    lam = base + gain * drive  # expected count per trial, (S, U)
    trials = _poisson(lam, int(n_reps), np.random.default_rng([seed, 1000]))
    meta = pd.DataFrame({
        "id": [f"v1-{i:04d}" for i in range(n_units)], "subject": "sim", "kind": "unit", "region": "V1",
        "x": bank.cx, "y": bank.cy, "z": 0.0, "orientation_deg": np.degrees(bank.theta), "sf_cpd": bank.sf,
        "size_deg": np.sqrt(bank.sigma_x * bank.sigma_y), "cell_type": np.where(bank.is_complex, "complex", "simple")})
    params = dict(seed=seed, n_reps=n_reps, n_units=n_units, resolution=resolution, fov_deg=fov_deg,
                  complex_fraction=complex_fraction, baseline=baseline, mean_gain=mean_gain)
    return _record("sim_v1", trials, lam[..., None], lam.mean(axis=0)[:, None], imgs, labels, ids, meta, [50.0],
                   "spike count (simulated)", test_fraction, params,
                   {"time_bin_end_ms": np.array([150.0]), "model": "Gabor simple/complex cells, Poisson counts"})


def _it_drive(deep: np.ndarray, labels: np.ndarray, n_units: int, seed: int, category_weight: float) -> np.ndarray:
    """IT-like drive (S, U): random mixtures of deep features, plus a per-label pattern when labels are known."""
    rng = np.random.default_rng([seed, 3])
    w = rng.standard_normal((deep.shape[1], n_units)) / np.sqrt(deep.shape[1])
    feat = deep @ w  # deep features are z-scored on the reference images, so this spreads about 1
    if category_weight > 0 and (labels != "").any():
        proto = label_prototypes(labels, n_units, seed)
        proto[labels == ""] = 0.0
        return np.sqrt(1.0 - category_weight) * feat + np.sqrt(category_weight) * proto
    return feat


@NEURAL_LOADERS.register(
    "sim_it", description="Simulated IT-like population: deep random features with invariance + category, Poisson",
    info=LoaderInfo(modality="ephys", simulated=True, formats=("in memory",), licence=SIM_LICENCE,
                    url="https://doi.org/10.1523/JNEUROSCI.5181-14.2015"))
def sim_it(images=None, labels=None, stimulus_ids=None, n_stimuli: int | None = None, n_reps: int = 4,
           seed: int = 0, n_units: int = 128, resolution: int = 32, category_weight: float = 0.6,
           baseline: float = 2.0, mean_gain: float = 1.5, test_fraction: float = 0.2) -> NeuralRecording:
    """Simulated IT-like spike counts (70-170 ms window, as Majaj et al. 2015 average).

    Args:
        images, labels, stimulus_ids, n_stimuli, n_reps, seed, test_fraction: as ``sim_v1``.
        n_units, resolution: population size and internal image size.
        category_weight: share of drive variance from the label's fixed pattern (0 = features only;
            ignored when labels are unknown).
        baseline, mean_gain: expected spontaneous count and gain of the softplus rate.
    """
    _check_common(n_reps, seed)
    if not 0 <= category_weight <= 1:
        raise ConfigError(f"category_weight must be in [0, 1], got {category_weight}")
    imgs, labels, ids = _stimuli(images, labels, stimulus_ids, n_stimuli)
    deep = deep_features(int(resolution), int(seed))(to_gray(imgs, resolution))["deep"]
    drive = _it_drive(deep, labels, n_units, seed, category_weight)
    rng = np.random.default_rng([seed, 4])
    gain = mean_gain * rng.lognormal(0.0, 0.4, n_units)
    base = baseline * rng.lognormal(0.0, 0.3, n_units)
    lam = base + gain * _softplus(1.5 * drive - 1.0)
    trials = _poisson(lam, int(n_reps), np.random.default_rng([seed, 1001]))
    meta = pd.DataFrame({"id": [f"it-{i:04d}" for i in range(n_units)], "subject": "sim", "kind": "unit",
                         "region": "IT"})
    params = dict(seed=seed, n_reps=n_reps, n_units=n_units, resolution=resolution,
                  category_weight=category_weight, baseline=baseline, mean_gain=mean_gain)
    return _record("sim_it", trials, lam[..., None], lam.mean(axis=0)[:, None], imgs, labels, ids, meta, [70.0],
                   "spike count (simulated)", test_fraction, params,
                   {"time_bin_end_ms": np.array([170.0]),
                    "model": "fixed random conv features, global pooling, label patterns; Poisson counts"})


# Noise and idiosyncratic share of sim_eeg per preset. "things_eeg2" is calibrated (docs/neural-data.md,
# tests/neural/test_sim_eeg_calibration.py) so that, with THINGS-EEG2's 4 repetitions per training image,
# the split-half (Spearman-Brown) ceiling and a trained network's cross-validated r over time sit in the
# ranges stated there, and a network reaches well under the ceiling.
SIM_EEG_PRESETS: dict[str, dict[str, float]] = {
    "demo": {"noise_sd": 1.5, "idiosyncratic_share": 0.0},
    "things_eeg2": {"noise_sd": 3.0, "idiosyncratic_share": 0.5},
}


def _gamma_course(t: np.ndarray, peak: float, shape: float = 12.0) -> np.ndarray:
    """Evoked time course, 0 before onset, peak 1 at ``peak`` ms: (t/peak)^k exp(k (1 - t/peak))."""
    u = np.clip(t / peak, 0.0, None)
    with np.errstate(divide="ignore"):
        return np.where(u > 0, np.exp(shape * (np.log(np.maximum(u, 1e-12)) + 1.0 - u)), 0.0)


@NEURAL_LOADERS.register(
    "sim_eeg", description="Simulated 17-channel EEG (THINGS-EEG2 montage): V1- and IT-driven sources, sensor noise",
    info=LoaderInfo(modality="eeg", simulated=True, formats=("in memory",), licence=SIM_LICENCE,
                    url="https://doi.org/10.1016/j.neuroimage.2022.119754"))
def sim_eeg(images=None, labels=None, stimulus_ids=None, n_stimuli: int | None = None, n_reps: int = 4,
            seed: int = 0, peak_latency_ms: float = 100.0, late_delay_ms: float = 100.0,
            times_ms=None, n_sources: int = 4, signal_amplitude: float = 1.0, late_amplitude: float = 0.3,
            noise_sd: float | None = None, erp_amplitude: float = 1.0, resolution: int = 32,
            idiosyncratic_share: float | None = None, preset: str = "demo",
            test_fraction: float = 0.2) -> NeuralRecording:
    """Simulated EEG: (stimulus, repetition, 17 channels, time).

    Early sources over the occipital pole mix V1 Gabor units and peak at ``peak_latency_ms``; late
    lateral occipito-temporal sources mix IT-like units (with their label patterns) and peak
    ``late_delay_ms`` later. Each source adds an evoked response shared by all stimuli
    (``erp_amplitude``) and a stimulus-specific one; a Gaussian lead field (width 0.25 head radii)
    spreads sources over the channels; trial noise is white Gaussian with sd ``noise_sd`` per sample.

    Args:
        images, labels, stimulus_ids, n_stimuli, n_reps, seed, test_fraction: as ``sim_v1``.
        peak_latency_ms: peak of the early (stimulus-specific) response.
        late_delay_ms: how much later the late sources peak.
        times_ms: sample times; default -200..790 ms at 10 ms, as THINGS-EEG2.
        n_sources: sources per stage.
        signal_amplitude, late_amplitude, noise_sd, erp_amplitude: scale of the stimulus-specific
            signal, of the late sources relative to the early ones, of the noise and of the
            stimulus-independent evoked response.
        resolution: internal image size.
        idiosyncratic_share: share of each source's stimulus-specific variance that is a fixed random value
            per stimulus (reliable over repetitions, but no function of the image): what no image model can
            predict, as real EEG holds more than any network explains.
        preset: "demo" (noise_sd 1.5, idiosyncratic_share 0: easy, every network reaches the ceiling) or
            "things_eeg2" (``SIM_EEG_PRESETS``: noise and idiosyncratic share calibrated to THINGS-EEG2,
            see docs/neural-data.md). ``noise_sd`` and ``idiosyncratic_share`` given explicitly win.
    """
    _check_common(n_reps, seed)
    if preset not in SIM_EEG_PRESETS:
        raise ConfigError(f"sim_eeg preset must be one of {', '.join(SIM_EEG_PRESETS)}; got {preset!r}")
    chosen = SIM_EEG_PRESETS[preset]
    noise_sd = chosen["noise_sd"] if noise_sd is None else float(noise_sd)
    idiosyncratic_share = chosen["idiosyncratic_share"] if idiosyncratic_share is None else float(idiosyncratic_share)
    if peak_latency_ms <= 0 or noise_sd < 0 or n_sources < 1 or not 0 <= idiosyncratic_share < 1:
        raise ConfigError("sim_eeg needs peak_latency_ms > 0, noise_sd >= 0, n_sources >= 1 and "
                          "0 <= idiosyncratic_share < 1")
    imgs, labels, ids = _stimuli(images, labels, stimulus_ids, n_stimuli)
    t = EEG_TIMES_MS if times_ms is None else np.asarray(times_ms, dtype=float)
    gray = to_gray(imgs, resolution)
    bank = gabor_bank(256, int(resolution), 4.0, int(seed))
    z_v1 = (bank(gray) - bank.ref.mean(0)) / (bank.ref.std(0) + 1e-6)
    deep = deep_features(int(resolution), int(seed))(gray)["deep"]
    it = _it_drive(deep, labels, 64, seed, 0.5)
    rng = np.random.default_rng([seed, 5])
    a_early = z_v1 @ (rng.standard_normal((z_v1.shape[1], n_sources)) / np.sqrt(z_v1.shape[1]))  # (S, K)
    a_late = it @ (rng.standard_normal((it.shape[1], n_sources)) / np.sqrt(it.shape[1]))
    drives = {"early": a_early.copy(), "late": a_late.copy()}  # (S, K) each: the image-computable part
    if idiosyncratic_share > 0:
        # a fixed value per stimulus id (not per row), so the same image gets the same value in every call
        idio = np.stack([np.random.default_rng([seed, 6, zlib.crc32(str(i).encode())]).standard_normal(2 * n_sources)
                         for i in ids])  # (S, 2K)
        keep, add = np.sqrt(1.0 - idiosyncratic_share), np.sqrt(idiosyncratic_share)
        a_early = keep * a_early + add * a_early.std(0) * idio[:, :n_sources]
        a_late = keep * a_late + add * a_late.std(0) * idio[:, n_sources:]
    pos = channel_meta(CHANNELS, "")[["x", "y"]].to_numpy()
    src_early = np.column_stack([rng.normal(0.0, 0.15, n_sources), rng.normal(-0.75, 0.06, n_sources)])
    side = np.where(np.arange(n_sources) % 2 == 0, -1.0, 1.0)
    src_late = np.column_stack([side * rng.uniform(0.45, 0.7, n_sources), rng.normal(-0.7, 0.06, n_sources)])

    def lead(src):
        d2 = ((pos[:, None, :] - src[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * 0.25 ** 2)) * rng.choice([-1.0, 1.0], size=src.shape[0])  # (channels, K)

    l_early, l_late = lead(src_early), lead(src_late)
    h_early = _gamma_course(t, peak_latency_ms)
    h_late = _gamma_course(t, peak_latency_ms + late_delay_ms)
    ch_early = (erp_amplitude + signal_amplitude * a_early) @ l_early.T  # (S, channels)
    ch_late = late_amplitude * (erp_amplitude + signal_amplitude * a_late) @ l_late.T
    clean = ch_early[:, :, None] * h_early + ch_late[:, :, None] * h_late  # (S, channels, T)
    noise = np.random.default_rng([seed, 1002]).standard_normal(
        (clean.shape[0], int(n_reps), *clean.shape[1:]), dtype=np.float32)
    trials = clean[:, None].astype(np.float32) + np.float32(noise_sd) * noise
    meta = channel_meta(CHANNELS, "sim")
    params = dict(seed=seed, n_reps=n_reps, peak_latency_ms=peak_latency_ms, late_delay_ms=late_delay_ms,
                  n_sources=n_sources, signal_amplitude=signal_amplitude, late_amplitude=late_amplitude,
                  noise_sd=noise_sd, idiosyncratic_share=idiosyncratic_share, preset=preset,
                  erp_amplitude=erp_amplitude, resolution=resolution)
    rec = _record("sim_eeg", trials, clean, np.full((1, 1), noise_sd ** 2), imgs, labels, ids, meta, t,
                  "uV (simulated)", test_fraction, params,
                  {"model": "V1- and IT-driven sources, gamma time courses, Gaussian lead field, white noise"})
    # labelled by stimulus id, so that a subset of the recording still finds its rows
    rec.attrs["source_drives"] = {"stimulus_ids": ids.tolist(), **drives}
    return rec


@NEURAL_LOADERS.register(
    "sim_fmri", description="Simulated fMRI betas: ROIs V1, V2 (Gabor pools), V4 (mid features), IT (deep + category)",
    info=LoaderInfo(modality="fmri", simulated=True, formats=("in memory",), licence=SIM_LICENCE,
                    url="https://naturalscenesdataset.org/"))
def sim_fmri(images=None, labels=None, stimulus_ids=None, n_stimuli: int | None = None, n_reps: int = 3,
             seed: int = 0, voxels_per_roi: int = 40, resolution: int = 32, fov_deg: float = 4.0,
             ncsnr_range: tuple[float, float] = (0.1, 0.5), category_weight: float = 0.5,
             test_fraction: float = 0.2) -> NeuralRecording:
    """Simulated single-trial betas (% signal change), one time bin, NSD-like 3 repetitions.

    Each voxel's noise-free beta is offset + gain x drive, its drive z-scored on the reference images;
    trial noise is Gaussian with sd = gain / ncsnr_v, ncsnr_v uniform in ``ncsnr_range`` (the NSD
    noise-ceiling SNR on the reference images; on the actual stimuli it differs with their variance).

    Args:
        images, labels, stimulus_ids, n_stimuli, n_reps, seed, test_fraction: as ``sim_v1``.
        voxels_per_roi: voxels in each of V1, V2, V4, IT.
        resolution, fov_deg: internal image size and field of view.
        category_weight: label-pattern share of IT drive.
    """
    _check_common(n_reps, seed)
    lo, hi = ncsnr_range
    if not 0 < lo <= hi:
        raise ConfigError(f"ncsnr_range must satisfy 0 < low <= high, got {ncsnr_range}")
    imgs, labels, ids = _stimuli(images, labels, stimulus_ids, n_stimuli)
    gray = to_gray(imgs, resolution)
    bank = gabor_bank(512, int(resolution), float(fov_deg), int(seed), 0.5, 0.35)
    deep_net = deep_features(int(resolution), int(seed))
    rng = np.random.default_rng([seed, 6])
    v = voxels_per_roi
    half = fov_deg / 2

    def pools(width):
        centres = np.clip(rng.normal(0, 0.3 * half, (v, 2)), -0.6 * half, 0.6 * half)
        d2 = (centres[:, None, 0] - bank.cx[None]) ** 2 + (centres[:, None, 1] - bank.cy[None]) ** 2
        w = np.exp(-d2 / (2 * width ** 2))
        return centres, (w / w.sum(axis=1, keepdims=True)).T  # (units, voxels)

    c1, w1 = pools(0.1 * fov_deg)
    c2, w2 = pools(0.2 * fov_deg)
    w4 = rng.standard_normal((128, v)) / np.sqrt(128)

    def drives(units, feats, labs):
        it = _it_drive(feats["deep"], labs, v, seed, category_weight)
        return {"V1": units @ w1, "V2": np.sqrt(units) @ w2, "V4": feats["mid"] @ w4, "IT": it}

    d_img = drives(bank(gray), deep_net(gray), labels)
    d_ref = drives(bank.ref, deep_net.ref, np.full(len(bank.ref), "", dtype=object))
    clean, meta_parts = [], []
    for k, roi in enumerate(("V1", "V2", "V4", "IT")):
        z = (d_img[roi] - d_ref[roi].mean(0)) / (d_ref[roi].std(0) + 1e-6)
        gain = rng.lognormal(0.0, 0.3, v)
        clean.append(0.5 + gain * z)
        centres = {"V1": c1, "V2": c2}.get(roi, np.full((v, 2), np.nan))
        meta_parts.append(pd.DataFrame({"region": roi, "x": centres[:, 0], "y": centres[:, 1], "z": float(k),
                                        "gain": gain, "ncsnr_ref": rng.uniform(lo, hi, v)}))
    clean = np.concatenate(clean, axis=1)  # (S, voxels)
    meta = pd.concat(meta_parts, ignore_index=True)
    meta["id"] = [f"{r}-{i:03d}" for r, i in zip(meta["region"], np.arange(len(meta)) % v, strict=True)]
    meta["subject"] = "sim"
    meta["kind"] = "voxel"
    noise_sd = (meta["gain"] / meta["ncsnr_ref"]).to_numpy()
    noise = np.random.default_rng([seed, 1003]).standard_normal((clean.shape[0], int(n_reps), clean.shape[1]))
    trials = (clean[:, None, :] + noise * noise_sd)[..., None]
    params = dict(seed=seed, n_reps=n_reps, voxels_per_roi=voxels_per_roi, resolution=resolution,
                  fov_deg=fov_deg, ncsnr_range=tuple(ncsnr_range), category_weight=category_weight)
    return _record("sim_fmri", trials, clean[..., None], (noise_sd ** 2)[:, None], imgs, labels, ids, meta, [0.0],
                   "% signal change (simulated)", test_fraction, params,
                   {"model": "V1/V2 Gabor pools, V4 mid features, IT deep features + labels; Gaussian noise"})
