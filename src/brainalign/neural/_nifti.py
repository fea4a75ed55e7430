"""NIfTI volumes (``.nii`` / ``.nii.gz``, NIfTI-1 or NIfTI-2) read through nibabel, for NSD ROI and ncsnr files.

One function, :func:`read_nifti`: nibabel parses the header and data (endianness, datatype, vox_offset,
scl_slope/scl_inter), and every way a file can fail (missing, not NIfTI, truncated, corrupt gzip) becomes one
``DataError`` line that names the file and what was expected.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from brainalign.errors import DataError

EXPECTED = "a NIfTI-1 or NIfTI-2 volume (.nii or .nii.gz)"


def read_nifti(path: str | Path) -> np.ndarray:
    """Voxel data of a NIfTI file as an array in NIfTI's (X, Y, Z[, T, ...]) axis order.

    The stored dtype is kept unless the header sets a scaling (scl_slope not 0 or 1, or scl_inter not 0),
    which nibabel applies (the result is then floating point).

    Raises:
        DataError: the file is missing, is not NIfTI, or is truncated or corrupt.
    """
    import nibabel
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found (expected {EXPECTED})")
    try:
        image = nibabel.load(path, mmap=False)
        if not isinstance(image, nibabel.Nifti1Image | nibabel.Nifti2Image):
            raise DataError(f"{path}: a {type(image).__name__}, not {EXPECTED}")
        return np.asarray(image.dataobj)
    except DataError:
        raise
    except (ImageFileError, HeaderDataError) as exc:
        raise DataError(f"{path}: not {EXPECTED} ({_line(exc)})") from None
    except (OSError, EOFError, ValueError, zlib.error) as exc:  # truncated data, corrupt gzip, bad header values
        raise DataError(f"{path}: unreadable as {EXPECTED}: truncated or corrupt ({_line(exc)})") from None


def _line(exc: BaseException) -> str:
    """nibabel's message on one line (some span several), without the path the DataError already names."""
    return " ".join(str(exc).split()) or type(exc).__name__
