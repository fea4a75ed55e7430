"""Brain-Score / BrainIO assemblies: a netCDF-4 file plus a stimulus set (CSV + ZIP). No brainscore import.

BrainIO (``brainio/packaging.py``) writes an assembly with ``assembly.reset_index(...)`` because netCDF
cannot store pandas MultiIndexes: each index level becomes a plain coordinate along its dimension.
The file has one data variable with dims ``presentation`` x ``neuroid`` [x ``time_bin``] and global
attributes ``identifier`` and ``stimulus_set_identifier``::

    assy_<identifier>.nc          presentation coords: stimulus_id (legacy: image_id), repetition, ...
                                  neuroid coords: neuroid_id, region, animal, ...
                                  time_bin coords: time_bin_start, time_bin_end (ms)
    stimulus_<set id>.csv         columns stimulus_id (or image_id), filename, metadata ...
    stimulus_<set id>.zip         the image files named in ``filename``

(dots in identifiers become underscores in file names). The loader rebuilds the index tables from the
flattened coordinates, groups presentations by stimulus id into (stimulus, repetition) (ordered by the
``repetition`` coordinate when present, else by presentation order) and checks that every stimulus id
has exactly one row in the stimulus set and a file in the zip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.errors import DataError
from brainalign.neural.images import ZipImages
from brainalign.neural.loading import LoaderInfo
from brainalign.neural.recording import NEUROID_KINDS, NeuralRecording, mask_nan_neuroids
from brainalign.registry import NEURAL_LOADERS

DIMS = ("presentation", "neuroid", "time_bin")
LABEL_COLUMNS = ("label", "category_name", "category", "object_name", "concept")
_BLOCK = 8192


def _file_stem(identifier: str) -> str:
    return identifier.replace(".", "_")


def _coords_table(ds, dim: str) -> pd.DataFrame:
    """Every 1-d coordinate along ``dim`` (the flattened MultiIndex levels) as a DataFrame."""
    cols = {}
    for name, var in ds.coords.items():
        if var.dims == (dim,) and name not in (dim, f"{dim}_"):
            values = var.values
            if values.dtype.kind == "S":
                values = values.astype(str)
            cols[str(name)] = values
    return pd.DataFrame(cols, index=range(ds.sizes[dim]))


def _find_assembly(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path}: not found")
    found = sorted(path.glob("*.nc"))
    if len(found) != 1:
        raise DataError(f"{path}: expected one netCDF assembly (*.nc), found {len(found)}")
    return found[0]


def _stimulus_set(nc: Path, set_id: str, csv: Path | None) -> tuple[pd.DataFrame, Path, Path | None]:
    if csv is None:
        candidates = [nc.parent / f"stimulus_{_file_stem(set_id)}.csv"] if set_id else []
        candidates += sorted(nc.parent.glob("stimulus_*.csv")) + sorted(nc.parent.glob("*.csv"))
        csv = next((c for c in candidates if c.is_file()), None)
        if csv is None:
            raise DataError(f"{nc}: stimulus set CSV for {set_id or 'this assembly'!r} not found beside it; "
                            "pass stimulus_set=")
    csv = Path(csv)
    try:
        table = pd.read_csv(csv, dtype={"stimulus_id": str, "image_id": str})
    except FileNotFoundError:
        raise DataError(f"{csv}: stimulus set CSV not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv}: not a readable CSV ({exc})") from None
    zip_path = csv.with_suffix(".zip")
    return table, csv, zip_path if zip_path.is_file() else None


@NEURAL_LOADERS.register(
    "brainio", description="Brain-Score / BrainIO netCDF assembly with its CSV + zip stimulus set",
    info=LoaderInfo(modality="ephys", simulated=False, formats=("netCDF-4 assembly", "CSV + zip stimulus set"),
                    licence="per assembly (see its Brain-Score data plugin)", url="https://github.com/brain-score/vision",
                    detect=("*.nc",)))
def load_brainio(path: Path, stimulus_set: str | Path | None = None, stimuli_zip: str | Path | None = None,
                 label_column: str | None = None, kind: str = "unit") -> NeuralRecording:
    """Read a BrainIO NeuroidAssembly (e.g. ``assy_dicarlo_MajajHong2015_public.nc``).

    Args:
        path: the ``.nc`` file, or a folder holding exactly one.
        stimulus_set: the stimulus set CSV; default ``stimulus_<stimulus_set_identifier>.csv`` beside the
            assembly. Its zip (same name, ``.zip``) provides images when present.
        stimuli_zip: the zip, if not beside the CSV.
        label_column: stimulus-set column to use as ``label``; default the first of label,
            category_name, category, object_name, concept.
        kind: neuroid kind for the assembly ("unit" for electrophysiology, "voxel" for fMRI, ...).
    """
    import xarray as xr

    if kind not in NEUROID_KINDS:
        raise DataError(f"kind must be one of {', '.join(NEUROID_KINDS)}, got {kind!r}")
    nc = _find_assembly(Path(path))
    try:
        ds = xr.open_dataset(nc, engine="h5netcdf")
    except FileNotFoundError:
        raise DataError(f"{nc}: not found") from None
    except Exception as exc:  # h5netcdf/h5py raise OSError, ValueError or their own types on corrupt files
        raise DataError(f"{nc}: not a readable netCDF-4 file ({type(exc).__name__}: {exc})") from None
    with ds:
        data_vars = [v for v in ds.data_vars if "presentation" in ds[v].dims]
        if len(data_vars) != 1:
            raise DataError(f"{nc}: expected one data variable over 'presentation', found {list(ds.data_vars)}")
        var = ds[data_vars[0]]
        extra = set(var.dims) - set(DIMS)
        if "neuroid" not in var.dims or extra:
            raise DataError(f"{nc}: data dims are {var.dims}; expected presentation, neuroid[, time_bin]")
        var = var.transpose(*[d for d in DIMS if d in var.dims])
        pres = _coords_table(ds, "presentation")
        neur = _coords_table(ds, "neuroid")
        id_col = "stimulus_id" if "stimulus_id" in pres else ("image_id" if "image_id" in pres else None)
        if id_col is None:
            raise DataError(f"{nc}: presentation has no stimulus_id (or image_id) coordinate; "
                            f"has {', '.join(pres.columns)}")
        if "time_bin" in var.dims:
            tb = _coords_table(ds, "time_bin")
            if "time_bin_start" not in tb:
                raise DataError(f"{nc}: time_bin has no time_bin_start coordinate")
            t_start = tb["time_bin_start"].to_numpy(dtype=float)
            t_end = tb["time_bin_end"].to_numpy(dtype=float) if "time_bin_end" in tb else None
        else:
            start = ds.coords.get("time_bin_start")
            end = ds.coords.get("time_bin_end")
            t_start = np.atleast_1d(np.asarray(start.values, dtype=float)) if start is not None else np.zeros(1)
            t_end = np.atleast_1d(np.asarray(end.values, dtype=float)) if end is not None else None
        # The spec asks for global attributes; brainio's write_netcdf leaves them on the data variable.
        file_attrs = {**var.attrs, **ds.attrs}
        set_id = str(file_attrs.get("stimulus_set_identifier", ""))
        identifier = str(file_attrs.get("identifier", nc.stem))
        simulated = bool(file_attrs.get("simulated", 0))
        units = str(file_attrs.get("units", "as in the assembly"))

        stim = pres[id_col].astype(str).to_numpy()
        table, csv, zip_path = _stimulus_set(nc, set_id, Path(stimulus_set) if stimulus_set else None)
        csv_id = "stimulus_id" if "stimulus_id" in table else ("image_id" if "image_id" in table else None)
        if csv_id is None:
            raise DataError(f"{csv}: no stimulus_id (or image_id) column; has {', '.join(table.columns)}")
        table[csv_id] = table[csv_id].astype(str)
        dup = table[csv_id][table[csv_id].duplicated()]
        if len(dup):
            raise DataError(f"{csv}: duplicate stimulus id {dup.iloc[0]!r}")
        known = set(table[csv_id])
        unknown = sorted(set(stim) - known)
        if unknown:
            raise DataError(f"{nc}: {len(unknown)} stimulus id(s) not in {csv.name}, e.g. {', '.join(unknown[:3])}")
        used = table[table[csv_id].isin(set(stim))].reset_index(drop=True)  # stimulus-set order
        order = {s: i for i, s in enumerate(used[csv_id])}
        stim_idx = np.array([order[s] for s in stim], dtype=np.int64)
        if "repetition" in pres:
            rep_key = pres["repetition"].to_numpy()
            keyed = pd.DataFrame({"s": stim_idx, "r": rep_key})
            if keyed.duplicated().any():
                row = keyed[keyed.duplicated()].iloc[0]
                raise DataError(f"{nc}: stimulus {used[csv_id][row['s']]!r} has repetition {row['r']!r} twice")
            rep_idx = keyed.groupby("s")["r"].rank(method="first").to_numpy(dtype=np.int64) - 1
        else:
            rep_idx = pd.Series(stim_idx).groupby(stim_idx).cumcount().to_numpy()
        n_reps = int(rep_idx.max()) + 1 if len(rep_idx) else 0
        n_time = var.sizes.get("time_bin", 1)
        responses = np.full((len(used), n_reps, var.sizes["neuroid"], n_time), np.nan, dtype=np.float32)
        for start in range(0, var.sizes["presentation"], _BLOCK):
            block = np.asarray(var[start:start + _BLOCK].values, dtype=np.float32)
            if block.ndim == 2:
                block = block[:, :, None]
            responses[stim_idx[start:start + _BLOCK], rep_idx[start:start + _BLOCK]] = block

    label_col = label_column or next((c for c in LABEL_COLUMNS if c in used), None)
    if label_column is not None and label_column not in used:
        raise DataError(f"{csv}: no column {label_column!r}; has {', '.join(used.columns)}")
    meta = used.rename(columns={csv_id: "stimulus_id"})
    meta["label"] = used[label_col].astype(str) if label_col else ""
    if "split" not in meta:
        meta["split"] = "all"
    images = None
    zip_path = Path(stimuli_zip) if stimuli_zip is not None else zip_path
    if zip_path is not None and "filename" in used:
        images = ZipImages(zip_path, dict(zip(meta["stimulus_id"], used["filename"].astype(str), strict=True)))

    if "neuroid_id" not in neur:
        raise DataError(f"{nc}: neuroid has no neuroid_id coordinate; has {', '.join(neur.columns)}")
    nmeta = neur.rename(columns={"neuroid_id": "id"})
    nmeta["id"] = nmeta["id"].astype(str)
    nmeta["name"] = nmeta["id"]
    nmeta["kind"] = kind
    if "subject" not in nmeta:
        nmeta["subject"] = nmeta["animal"].astype(str) if "animal" in nmeta else ""
    if "region" not in nmeta:
        nmeta["region"] = ""
    attrs = {"units": units,
             "preprocessing": [] if not simulated else ["simulated"],
             "licence": "see the Brain-Score data plugin" if not simulated else "CC0 (simulated)",
             "simulated": simulated, "source": f"brainio:{nc}", "identifier": identifier,
             "stimulus_set_identifier": set_id}
    if t_end is not None:
        attrs["time_bin_end_ms"] = t_end
    rec = NeuralRecording(responses=responses, stimulus_ids=meta["stimulus_id"].to_numpy(), stimulus_meta=meta,
                          neuroid_meta=nmeta, time_ms=t_start, images=images, attrs=attrs)
    return mask_nan_neuroids(rec)
