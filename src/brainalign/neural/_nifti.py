"""A minimal NIfTI-1 reader (``.nii`` / ``.nii.gz``) for NSD ROI and ncsnr volumes, so nibabel is not needed.

Reads the 348-byte header (dim, datatype, vox_offset, scl_slope/scl_inter) and returns the voxel array
in NIfTI's (X, Y, Z[, T]) axis order (the file stores it Fortran-ordered). Scaling is applied when
scl_slope is set and not 1.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from brainalign.errors import DataError

_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8"}


def read_nifti(path: str | Path) -> np.ndarray:
    """Voxel data of a NIfTI-1 file as an array in (X, Y, Z[, ...]) order."""
    path = Path(path)
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable (corrupt gzip?) ({exc})") from None
    if len(raw) < 348:
        raise DataError(f"{path}: truncated NIfTI header ({len(raw)} bytes)")
    for endian in ("<", ">"):
        if struct.unpack(endian + "i", raw[:4])[0] == 348:
            break
    else:
        raise DataError(f"{path}: not a NIfTI-1 file (sizeof_hdr is not 348)")
    if raw[344:347] not in (b"n+1", b"ni1"):
        raise DataError(f"{path}: not a NIfTI-1 file (magic {raw[344:348]!r})")
    dim = struct.unpack(endian + "8h", raw[40:56])
    datatype = struct.unpack(endian + "h", raw[70:72])[0]
    vox_offset = int(struct.unpack(endian + "f", raw[108:112])[0])
    slope, inter = struct.unpack(endian + "2f", raw[112:120])
    if not 1 <= dim[0] <= 7 or any(d < 1 for d in dim[1:dim[0] + 1]):
        raise DataError(f"{path}: invalid NIfTI dimensions {dim}")
    if datatype not in _DTYPES:
        raise DataError(f"{path}: unsupported NIfTI datatype code {datatype}")
    shape = tuple(int(d) for d in dim[1:dim[0] + 1])
    dtype = np.dtype(endian + _DTYPES[datatype])
    count = int(np.prod(shape))
    offset = max(vox_offset, 348)
    if len(raw) < offset + count * dtype.itemsize:
        raise DataError(f"{path}: truncated NIfTI data ({len(raw) - offset} of {count * dtype.itemsize} bytes)")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape, order="F")
    if slope not in (0.0, 1.0) and np.isfinite(slope):
        data = data * slope + inter
    return np.asarray(data)

