"""NIfTI reading (brainalign.neural._nifti, through nibabel): the hand-written published byte format and
nibabel's own writer read the same; missing, truncated and non-NIfTI files give one DataError line."""

from __future__ import annotations

import gzip

import nibabel
import numpy as np
import pytest

from brainalign.errors import DataError
from brainalign.neural._nifti import read_nifti


def _volumes():
    rng = np.random.default_rng(0)
    return {
        "int16 labels": rng.integers(-1, 7, (4, 3, 2)).astype(np.int16),
        "float32 ncsnr": rng.random((5, 4, 3)).astype(np.float32),
        "int32 4-D": rng.integers(0, 10_000, (3, 2, 2, 4)).astype(np.int32),
    }


@pytest.mark.parametrize("kind", list(_volumes()))
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_hand_written_bytes_and_nibabels_writer_read_the_same(tmp_path, formats, kind, suffix):
    data = _volumes()[kind]
    hand = tmp_path / "hand.nii.gz"
    formats.write_nifti_gz(hand, data)  # from the header spec, byte by byte (tests/neural/conftest.py)
    if suffix == ".nii":
        plain = tmp_path / "hand.nii"
        plain.write_bytes(gzip.decompress(hand.read_bytes()))
        hand = plain
    written = tmp_path / f"nibabel{suffix}"
    nibabel.save(nibabel.Nifti1Image(data, affine=np.eye(4)), written)
    ours, theirs = read_nifti(hand), read_nifti(written)
    assert ours.shape == theirs.shape == data.shape  # (X, Y, Z[, T]): Fortran order on disk, not reversed
    assert ours.dtype == theirs.dtype == data.dtype
    np.testing.assert_array_equal(ours, data)
    np.testing.assert_array_equal(theirs, data)


def test_scaling_big_endian_and_nifti2(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
    scaled = nibabel.Nifti1Image(data, np.eye(4))
    scaled.header.set_slope_inter(0.5, 3.0)
    nibabel.save(scaled, tmp_path / "scaled.nii")
    out = read_nifti(tmp_path / "scaled.nii")
    assert out.dtype.kind == "f"
    np.testing.assert_allclose(out, data * 0.5 + 3.0)

    big = nibabel.Nifti1Image(data, np.eye(4), header=nibabel.Nifti1Header(endianness=">"))
    nibabel.save(big, tmp_path / "big.nii")
    assert (tmp_path / "big.nii").read_bytes()[:4] == (348).to_bytes(4, "big")  # really big-endian on disk
    np.testing.assert_array_equal(read_nifti(tmp_path / "big.nii"), data)

    nibabel.save(nibabel.Nifti2Image(data, np.eye(4)), tmp_path / "two.nii.gz")
    np.testing.assert_array_equal(read_nifti(tmp_path / "two.nii.gz"), data)


def _one_line(exc: pytest.ExceptionInfo, path) -> str:
    message = str(exc.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_file(tmp_path, suffix):
    full = tmp_path / f"full{suffix}"
    nibabel.save(nibabel.Nifti1Image(np.random.default_rng(0).random((10, 10, 10), np.float32), np.eye(4)), full)
    raw = gzip.decompress(full.read_bytes()) if suffix == ".nii.gz" else full.read_bytes()
    for name, cut in (("data", raw[:2000]), ("header", raw[:200])):
        path = tmp_path / f"cut_{name}{suffix}"
        path.write_bytes(gzip.compress(cut) if suffix == ".nii.gz" else cut)
        with pytest.raises(DataError) as exc:
            read_nifti(path)
        message = _one_line(exc, path)
        assert "NIfTI" in message and ("truncated" in message or "not a NIfTI" in message)
    torn = tmp_path / "torn.nii.gz"  # a gzip stream cut in the middle
    torn.write_bytes(gzip.compress(raw)[:-100])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_nifti(torn)


def test_missing_and_non_nifti_files(tmp_path):
    with pytest.raises(DataError) as exc:
        read_nifti(tmp_path / "absent.nii.gz")
    assert "not found (expected a NIfTI-1 or NIfTI-2 volume" in _one_line(exc, tmp_path / "absent.nii.gz")
    cases = {"text.nii.gz": b"not a volume at all\n", "text.nii": b"x" * 400,
             "zipped_text.nii.gz": gzip.compress(b"y" * 400), "volume.txt": b"z" * 400}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError) as exc:
            read_nifti(path)
        assert "NIfTI-1 or NIfTI-2 volume" in _one_line(exc, path), name
    analyze = tmp_path / "analyze.img"  # nibabel reads it, but it is not NIfTI
    nibabel.save(nibabel.AnalyzeImage(np.ones((2, 2, 2), np.int16), np.eye(4)), analyze)
    with pytest.raises(DataError, match="AnalyzeImage, not a NIfTI-1 or NIfTI-2 volume"):
        read_nifti(analyze)
