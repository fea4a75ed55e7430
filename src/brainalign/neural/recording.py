"""``NeuralRecording``: neural responses to images with labelled axes (after brain-score's NeuroidAssembly).

Axes of ``responses`` (float32): (stimulus, repetition, neuroid, time).

- stimulus: ``stimulus_ids`` (unique strings) and ``stimulus_meta`` (one row per stimulus; columns
  ``stimulus_id``, ``label`` (class or concept, "" if unknown), ``split`` ("train", "test", "all", ...)).
- repetition: repeated presentations of the same stimulus, in recording order where known. Stimuli
  with fewer repetitions than the most repeated one are NaN-padded; ``rep_counts`` says how many are real.
  ``sessions`` (optional, int (stimulus, repetition), -1 for padding) says in which session each was recorded.
- neuroid: ``neuroid_meta`` with columns id, subject, kind (channel / voxel / vertex / unit / component),
  name, region, x, y, z, reliability; loaders may add more (hemisphere, layer, ...).
- time: ``time_ms``, the sample time or the start of each time bin in ms from stimulus onset (bin ends,
  when the data are binned, are in ``attrs["time_bin_end_ms"]``). Static data have one bin.

``attrs`` holds units, preprocessing already applied (a list of steps), licence, ``simulated`` (bool),
source, and loader-specific facts. ``images`` maps stimulus ids to images (``brainalign.neural.images``).

Missing values: a neuroid that is NaN everywhere is dropped by ``mask_nan_neuroids`` (loaders call it;
the dropped ids are listed in ``attrs["masked_neuroids"]``); other NaNs (padding, missing trials) are
kept and every method here ignores them (nan-aware means and correlations).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from brainalign.errors import ConfigError, DataError
from brainalign.neural import ceilings
from brainalign.neural.images import ImageSource

NEUROID_COLUMNS = ("id", "subject", "kind", "name", "region", "x", "y", "z", "reliability")
NEUROID_KINDS = ("channel", "voxel", "vertex", "unit", "component")
CEILING_METHODS = ("splithalf", "spearman_brown", "ncsnr", "fev", "oracle")
_DEFAULT_ATTRS = {"units": "a.u.", "preprocessing": [], "licence": "unknown", "simulated": False, "source": ""}
_CHUNK = 1024  # stimuli per block in whole-array passes, to bound temporary memory


def _blocks(n: int, size: int = _CHUNK) -> Iterable[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _nanmean_axis1(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=1)


@dataclass(eq=False)
class NeuralRecording:
    """Neural responses (stimulus, repetition, neuroid, time) with their metadata; see the module docstring."""

    responses: np.ndarray
    stimulus_ids: np.ndarray
    stimulus_meta: pd.DataFrame | None = None
    neuroid_meta: pd.DataFrame | None = None
    time_ms: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    images: ImageSource | None = None
    sessions: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.attrs = {**_DEFAULT_ATTRS, **dict(self.attrs)}
        self.attrs["preprocessing"] = list(self.attrs["preprocessing"])
        self.attrs["simulated"] = bool(self.attrs["simulated"])
        where = self.attrs["source"] or "recording"
        r = self.responses
        if not isinstance(r, np.ndarray) or r.ndim != 4:
            shape = getattr(r, "shape", None)
            raise DataError(f"{where}: responses must be a 4-d array (stimulus, repetition, neuroid, time), "
                            f"got shape {shape}")
        if r.dtype != np.float32:
            r = r.astype(np.float32)
        self.responses = r
        n_stim, _, n_neur, n_time = r.shape
        for block in _blocks(n_stim):
            if np.isinf(r[block]).any():
                raise DataError(f"{where}: responses contain infinite values")

        ids = np.asarray([str(i) for i in np.asarray(self.stimulus_ids).tolist()], dtype=object)
        if ids.shape != (n_stim,):
            raise DataError(f"{where}: {ids.size} stimulus ids for {n_stim} stimuli")
        uniq, counts = np.unique(ids.astype(str), return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1]
            raise DataError(f"{where}: duplicate stimulus ids, e.g. {', '.join(dup[:5])}")
        self.stimulus_ids = ids

        meta = pd.DataFrame(index=range(n_stim)) if self.stimulus_meta is None else self.stimulus_meta.copy()
        if len(meta) != n_stim:
            raise DataError(f"{where}: stimulus_meta has {len(meta)} rows for {n_stim} stimuli")
        meta = meta.reset_index(drop=True)
        if "stimulus_id" in meta and not (meta["stimulus_id"].astype(str).to_numpy() == ids.astype(str)).all():
            raise DataError(f"{where}: stimulus_meta rows are not in the order of stimulus_ids")
        meta["stimulus_id"] = ids
        meta["label"] = meta["label"].fillna("").astype(str) if "label" in meta else ""
        meta["split"] = meta["split"].fillna("all").astype(str) if "split" in meta else "all"
        self.stimulus_meta = meta[["stimulus_id", "label", "split"]
                                  + [c for c in meta.columns if c not in ("stimulus_id", "label", "split")]]

        nm = pd.DataFrame(index=range(n_neur)) if self.neuroid_meta is None else self.neuroid_meta.copy()
        if len(nm) != n_neur:
            raise DataError(f"{where}: neuroid_meta has {len(nm)} rows for {n_neur} neuroids")
        nm = nm.reset_index(drop=True)
        defaults = {"id": [f"n{i:05d}" for i in range(n_neur)], "subject": "", "kind": "unit", "name": None,
                    "region": "", "x": np.nan, "y": np.nan, "z": np.nan, "reliability": np.nan}
        for col, value in defaults.items():
            if col not in nm:
                nm[col] = value
        nm["id"] = nm["id"].astype(str)
        nm["name"] = nm["name"].where(nm["name"].notna(), nm["id"]).astype(str)
        for col in ("subject", "kind", "region"):
            nm[col] = nm[col].fillna("").astype(str)
        for col in ("x", "y", "z", "reliability"):
            nm[col] = pd.to_numeric(nm[col], errors="coerce").astype(float)
        if nm["id"].duplicated().any():
            raise DataError(f"{where}: duplicate neuroid ids, e.g. {nm['id'][nm['id'].duplicated()].iloc[0]}")
        bad_kind = set(nm["kind"]) - set(NEUROID_KINDS)
        if bad_kind:
            raise DataError(f"{where}: neuroid kind {sorted(bad_kind)[0]!r}; valid: {', '.join(NEUROID_KINDS)}")
        self.neuroid_meta = nm[list(NEUROID_COLUMNS) + [c for c in nm.columns if c not in NEUROID_COLUMNS]]

        t = np.zeros(1) if self.time_ms is None and n_time == 1 else self.time_ms
        if t is None:
            raise DataError(f"{where}: time_ms is required for {n_time} time bins")
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        if t.shape != (n_time,):
            raise DataError(f"{where}: {t.size} time points for {n_time} time bins")
        if not np.isfinite(t).all() or (np.diff(t) <= 0).any():
            raise DataError(f"{where}: time_ms must be finite and strictly increasing")
        self.time_ms = t

        if self.sessions is not None:
            s = np.asarray(self.sessions)
            if s.shape != r.shape[:2]:
                raise DataError(f"{where}: sessions has shape {s.shape}, expected {r.shape[:2]}")
            self.sessions = s.astype(np.int64)
        if self.images is not None:
            self.images.check(ids.tolist(), where=f"{where}: images")

    # ---- shape -------------------------------------------------------------------------------
    @property
    def n_stimuli(self) -> int:
        return self.responses.shape[0]

    @property
    def n_reps(self) -> int:
        return self.responses.shape[1]

    @property
    def n_neuroids(self) -> int:
        return self.responses.shape[2]

    @property
    def n_times(self) -> int:
        return self.responses.shape[3]

    @property
    def labels(self) -> np.ndarray:
        return self.stimulus_meta["label"].to_numpy()

    @cached_property
    def rep_counts(self) -> np.ndarray:
        """Real (non-padded) repetitions per stimulus: a trial counts if any value in it is finite."""
        out = np.empty(self.n_stimuli, dtype=np.int64)
        for block in _blocks(self.n_stimuli):
            out[block] = np.isfinite(self.responses[block]).any(axis=(2, 3)).sum(axis=1)
        return out

    def __repr__(self) -> str:
        sim = ", simulated" if self.attrs["simulated"] else ""
        return (f"NeuralRecording({self.attrs['source'] or 'unnamed'}: {self.n_stimuli} stimuli x {self.n_reps} "
                f"reps x {self.n_neuroids} neuroids x {self.n_times} times{sim})")

    # ---- derived recordings --------------------------------------------------------------------
    def derive(self, step: str | None, **changes) -> NeuralRecording:
        """A new recording with ``changes`` applied and ``step`` appended to ``attrs['preprocessing']``."""
        attrs = dict(changes.pop("attrs", self.attrs))
        if step:
            attrs["preprocessing"] = [*attrs.get("preprocessing", []), step]
        return dataclasses.replace(self, attrs=attrs, **changes)

    def average(self) -> np.ndarray:
        """Mean over repetitions, ignoring NaN: float32 (stimulus, neuroid, time)."""
        out = np.empty((self.n_stimuli, self.n_neuroids, self.n_times), dtype=np.float32)
        for block in _blocks(self.n_stimuli):
            out[block] = _nanmean_axis1(self.responses[block])
        return out

    def _stimulus_index(self, stimulus_ids: Sequence[str]) -> np.ndarray:
        pos = {k: i for i, k in enumerate(self.stimulus_ids.tolist())}
        missing = [str(s) for s in stimulus_ids if str(s) not in pos]
        if missing:
            raise DataError(f"{self.attrs['source'] or 'recording'}: unknown stimulus id(s) "
                            f"{', '.join(missing[:5])}")
        return np.array([pos[str(s)] for s in stimulus_ids], dtype=np.int64)

    def subset(self, stimulus_ids: Sequence[str]) -> NeuralRecording:
        """The given stimuli, in the given order. Ground truth of simulations (per stimulus set) is dropped."""
        idx = self._stimulus_index(list(stimulus_ids))
        if len(set(idx.tolist())) != len(idx):
            raise DataError("subset: stimulus ids repeat")
        attrs = {k: v for k, v in self.attrs.items() if k != "ground_truth"}
        return self.derive(f"subset({len(idx)} stimuli)", attrs=attrs, responses=self.responses[idx],
                           stimulus_ids=self.stimulus_ids[idx],
                           stimulus_meta=self.stimulus_meta.iloc[idx].reset_index(drop=True),
                           sessions=None if self.sessions is None else self.sessions[idx])

    def split(self, name: str) -> NeuralRecording:
        """The stimuli whose ``split`` is ``name``."""
        mask = self.stimulus_meta["split"].to_numpy() == name
        if not mask.any():
            have = ", ".join(sorted(set(self.stimulus_meta["split"])))
            raise DataError(f"{self.attrs['source'] or 'recording'}: no stimuli in split {name!r}; splits: {have}")
        return self.subset(self.stimulus_ids[mask].tolist())

    def select_neuroids(self, selector=None, *, names: Sequence[str] | None = None,
                        region: str | Sequence[str] | None = None, ids: Sequence[str] | None = None,
                        kind: str | None = None) -> NeuralRecording:
        """Keep neuroids by boolean mask (``selector``), channel/voxel ``names``, ``region`` (one or several,
        exact match), ``ids`` or ``kind``. Criteria combine with AND; names and ids keep the order given."""
        nm = self.neuroid_meta
        mask = np.ones(self.n_neuroids, dtype=bool)
        order = None
        if selector is not None:
            sel = np.asarray(selector)
            if sel.dtype == bool:
                if sel.shape != (self.n_neuroids,):
                    raise ConfigError(f"neuroid mask has {sel.size} entries for {self.n_neuroids} neuroids")
                mask &= sel
            else:
                names = [str(s) for s in sel.tolist()]
        for column, wanted in (("name", names), ("id", ids)):
            if wanted is not None:
                wanted = [str(w) for w in wanted]
                have = nm[column].tolist()
                missing = [w for w in wanted if w not in have]
                if missing:
                    raise ConfigError(f"unknown neuroid {column}(s) {', '.join(missing[:5])}; "
                                      f"have e.g. {', '.join(have[:5])}")
                mask &= nm[column].isin(wanted).to_numpy()
                order = [have.index(w) for w in wanted]
        if region is not None:
            regions = [region] if isinstance(region, str) else list(region)
            unknown = set(regions) - set(nm["region"])
            if unknown:
                raise ConfigError(f"unknown region(s) {', '.join(sorted(unknown))}; "
                                  f"valid: {', '.join(sorted(set(nm['region'])))}")
            mask &= nm["region"].isin(regions).to_numpy()
        if kind is not None:
            mask &= (nm["kind"] == kind).to_numpy()
        idx = np.flatnonzero(mask) if order is None else np.array([i for i in order if mask[i]], dtype=np.int64)
        if idx.size == 0:
            raise ConfigError("neuroid selection is empty")
        return self._neuroid_subset(idx, f"select_neuroids({idx.size} of {self.n_neuroids})")

    def _neuroid_subset(self, idx: np.ndarray, step: str | None) -> NeuralRecording:
        attrs = dict(self.attrs)
        if "ground_truth" in attrs:
            attrs["ground_truth"] = {k: np.asarray(v)[idx] for k, v in attrs["ground_truth"].items()}
        return self.derive(step, attrs=attrs, responses=self.responses[:, :, idx],
                           neuroid_meta=self.neuroid_meta.iloc[idx].reset_index(drop=True))

    def select_time(self, start_ms: float | None = None, end_ms: float | None = None) -> NeuralRecording:
        """Keep time points with start_ms <= t < end_ms (half-open; None = unbounded)."""
        t = self.time_ms
        mask = np.ones(t.shape, dtype=bool)
        if start_ms is not None:
            mask &= t >= start_ms
        if end_ms is not None:
            mask &= t < end_ms
        if not mask.any():
            raise ConfigError(f"no time points in [{start_ms}, {end_ms}) ms; recording spans "
                              f"{t[0]:g}..{t[-1]:g} ms")
        attrs = dict(self.attrs)
        if "ground_truth" in attrs:
            attrs["ground_truth"] = {k: np.asarray(v)[:, mask] for k, v in attrs["ground_truth"].items()}
        if "time_bin_end_ms" in attrs:
            attrs["time_bin_end_ms"] = np.asarray(attrs["time_bin_end_ms"])[mask]
        return self.derive(f"select_time({start_ms}, {end_ms})", attrs=attrs,
                           responses=self.responses[:, :, :, mask], time_ms=t[mask])

    # ---- noise ceilings ------------------------------------------------------------------------
    def noise_ceiling(self, method: str = "splithalf", *, bound: str = "upper", n: int | None = None,
                      n_iter: int = 100, seed: int = 0, max_stimuli: int | None = None) -> np.ndarray:
        """Noise ceiling per neuroid and time bin, float64 (neuroid, time).

        Args:
            method: "splithalf" (THINGS-EEG2; ``bound`` "upper" or "lower"), "spearman_brown"
                (Brain-Score internal consistency), "ncsnr" (NSD noise ceiling as a fraction, for
                responses averaged over ``n`` repetitions, default all), "fev" (Sinz lab fraction of
                explainable variance) or "oracle" (Sinz lab jackknife oracle correlation).
            n_iter, seed: number of random splits and their seed (splithalf, spearman_brown).
            max_stimuli: use at most this many stimuli (evenly spaced), to bound time on large sets.

        See ``brainalign.neural.ceilings`` for the formulas.
        """
        if method not in CEILING_METHODS:
            raise ConfigError(f"unknown noise ceiling {method!r}; valid: {', '.join(CEILING_METHODS)}")
        x = self.responses
        if max_stimuli is not None and self.n_stimuli > max_stimuli:
            x = x[np.linspace(0, self.n_stimuli - 1, max_stimuli).round().astype(np.int64)]
        if self.n_reps < 2:
            raise DataError(f"{self.attrs['source'] or 'recording'}: noise ceilings need repeated presentations; "
                            "this recording has one repetition per stimulus (already averaged?)")
        if method == "splithalf":
            if bound not in ("upper", "lower"):
                raise ConfigError(f"bound must be 'upper' or 'lower', got {bound!r}")
            return getattr(ceilings.splithalf(x, n_iter=n_iter, seed=seed), bound)
        if method == "spearman_brown":
            return ceilings.internal_consistency(x, n_splits=min(n_iter, 10), seed=seed)
        if method == "ncsnr":
            return ceilings.ncsnr_to_ceiling(ceilings.ncsnr(x), n or self.n_reps)
        if method == "fev":
            return ceilings.fev(x)
        return ceilings.oracle_correlation(x)

    # ---- images --------------------------------------------------------------------------------
    def load_images(self, size: int | tuple[int, int] | None = None, channels: int | None = None) -> np.ndarray:
        """Images of all stimuli, in stimulus order: float32 (N, C, H, W) in [0, 1]."""
        if self.images is None:
            raise DataError(f"{self.attrs['source'] or 'recording'}: no images attached; pass the image "
                            "folder to the loader")
        return self.images.load(self.stimulus_ids.tolist(), size=size, channels=channels)


def mask_nan_neuroids(rec: NeuralRecording) -> NeuralRecording:
    """Drop neuroids that are NaN in every trial and time bin; add them to ``attrs['masked_neuroids']``
    (so calling it again, e.g. after a loader did, keeps the earlier list).

    Also records ``attrs['nan_fraction']``: the fraction of NaN values in real (non-padded) trials of
    the kept neuroids, which nan-aware methods ignore. One pass over the responses.
    """
    finite_any = np.zeros(rec.n_neuroids, dtype=bool)
    nan_count = np.zeros(rec.n_neuroids, dtype=np.int64)
    real_trial = np.zeros(rec.responses.shape[:2], dtype=bool)
    for block in _blocks(rec.n_stimuli):
        finite = np.isfinite(rec.responses[block])
        finite_any |= finite.any(axis=(0, 1, 3))
        nan_count += finite.size // rec.n_neuroids - finite.sum(axis=(0, 1, 3))
        real_trial[block] = finite.any(axis=(2, 3))
    if not finite_any.any():
        raise DataError(f"{rec.attrs['source'] or 'recording'}: every neuroid is NaN")
    masked = list(rec.attrs.get("masked_neuroids", [])) + rec.neuroid_meta["id"][~finite_any].tolist()
    out = rec if finite_any.all() else rec._neuroid_subset(np.flatnonzero(finite_any), None)
    counts = real_trial.sum(axis=1)
    out.__dict__["rep_counts"] = counts  # the cached property, computed in this pass
    n_real = int(counts.sum())
    padded = (out.n_stimuli * out.n_reps - n_real) * out.n_times  # NaN values per kept neuroid from padding
    real_values = n_real * out.n_neuroids * out.n_times
    out.attrs["masked_neuroids"] = masked
    out.attrs["nan_fraction"] = (float((nan_count[finite_any] - padded).sum() / real_values) if real_values
                                 else 0.0)
    return out
