"""The SIMULATED NSD-like set: published layout, read unchanged by the nsd loader, and the 1% pipeline to ridge."""

from __future__ import annotations

import os
import time

import h5py
import numpy as np
import pytest
from scipy.io import loadmat

from brainalign.alignment.predictivity import predictivity
from brainalign.cli import main
from brainalign.errors import ConfigError
from brainalign.neural import load_recording
from brainalign.neural.full_size import _nsd_design, concept_images, nsd_shape, write_nsd_tree

BETAS = "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR"


def test_published_counts_at_full_scale():
    shape = nsd_shape(1.0)
    assert (shape["n_images"], shape["sessions"], shape["per_subject"], shape["shared"]) == (73_000, 40, 10_000, 1000)
    assert 10_000 <= shape["nsdgeneral_voxels"] < 100_000  # NSD's nsdgeneral: 10^4 voxels per subject
    assert shape["image_bytes"] == 73_000 * 425 * 425 * 3
    master, subjectim, shared = _nsd_design(shape, seed=0)
    assert master.shape == (30_000,) and subjectim.shape == (8, 10_000) and shared.shape == (1000,)
    assert np.array_equal(np.bincount(master)[1:], np.full(10_000, 3))  # every subject image 3 times
    own = [set(row[1000:].tolist()) for row in subjectim]
    assert all(np.array_equal(row[:1000], shared) for row in subjectim)
    assert sum(len(o) for o in own) == 72_000 and len(set().union(*own) | set(shared.tolist())) == 73_000


def test_tree_has_the_published_layout(nsd_tree):
    design = loadmat(nsd_tree / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat")
    assert design["masterordering"].shape == (1, 750) and design["subjectim"].shape == (8, 250)
    assert design["sharedix"].shape == (1, 10) and design["subjectim"].min() >= 1
    with h5py.File(nsd_tree / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5") as f:
        brick = f["imgBrick"]
        assert brick.shape == (730, 16, 16, 3) and brick.dtype == np.uint8 and brick.chunks == (1, 16, 16, 3)
        assert brick.attrs["simulated"] and brick.compression == "gzip"
        row = brick[123]
    assert np.array_equal(row, concept_images(200_000 + 123, 1, 16, 0)[0])
    with h5py.File(nsd_tree / BETAS / "betas_session01.hdf5") as f:
        assert f["betas"].shape == (750, 4, 9, 9) and f["betas"].dtype == np.int16 and f.attrs["simulated"]
    assert (nsd_tree / "SIMULATED_DATA.txt").read_text().startswith("SIMULATED")
    assert not (nsd_tree / "features.npy").exists()
    assert [p.name for p in nsd_tree.parent.iterdir()] == ["nsd"]  # no staging folder left
    umask = os.umask(0)
    os.umask(umask)
    assert nsd_tree.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private mode


def test_nsd_loader_reads_it_unchanged(nsd_tree):
    rec = load_recording("nsd", nsd_tree, roi="nsdgeneral")
    design = loadmat(nsd_tree / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat")
    nsd0 = np.unique(design["subjectim"][0].astype(int)) - 1
    assert rec.responses.shape == (250, 3, 128, 1) and rec.attrs["simulated"] is True
    assert rec.stimulus_ids.tolist() == [f"nsd-{k:05d}" for k in nsd0]
    assert int((rec.stimulus_meta["split"] == "test").sum()) == 10  # the shared images
    assert np.isfinite(rec.neuroid_meta["ncsnr"]).all() and (rec.neuroid_meta["ncsnr"] > 0).all()
    k = 7
    image = rec.images.load([rec.stimulus_ids[k]])[0]  # (3, 16, 16) in [0, 1]
    expected = concept_images(200_000 + int(nsd0[k]), 1, 16, 0)[0].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(image, expected, atol=1e-6)
    visual = load_recording("nsd", nsd_tree, roi="prf-visualrois")
    assert set(visual.neuroid_meta["region"]) == {"V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"}


def test_one_percent_pipeline_simulate_load_targets_ridge(tmp_path):
    start = time.perf_counter()
    root = write_nsd_tree(tmp_path / "nsd", scale=0.01, image_size=16, seed=1)
    rec = load_recording("nsd", root, roi="nsdgeneral")
    targets = rec.average()  # (250, 128, 1) trial-averaged z-scored betas
    features = rec.images.load(rec.stimulus_ids.tolist(), size=8).reshape(len(rec.stimulus_ids), -1)  # (250, 192)
    res = predictivity(features, targets, n_folds=5, target_block=50)
    ncsnr = rec.neuroid_meta["ncsnr"].to_numpy()
    good = ncsnr > np.median(ncsnr)
    assert res.r.shape == (128,) and np.isfinite(res.r).all()
    # The voxels see an 8 x 8 low-pass of the image: the more reliable half is predicted, better than the rest.
    assert np.median(res.r[good]) > 0.4 and np.median(res.r[good]) > np.median(res.r[~good])
    assert time.perf_counter() - start < 30  # a few seconds on an idle core


def test_bad_input_is_refused_before_writing(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="scale"):
        write_nsd_tree(tmp_path / "a", scale=1.5)
    with pytest.raises(ConfigError, match="image_size"):
        write_nsd_tree(tmp_path / "a", image_size=4)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(ConfigError, match="not an empty folder"):
        write_nsd_tree(busy, scale=0.01)
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 10**8, 10**8))
    with pytest.raises(ConfigError, match=r"not enough free disk .* needs up to 41\.8 GB"):
        write_nsd_tree(tmp_path / "full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_cli_writes_the_tree_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "nsd"
    assert main(["data", "simulate", "nsd", "--out", str(out), "--scale", "0.002", "--image-size", "8"]) == 0
    assert "SIMULATED nsd tree" in capsys.readouterr().out
    with h5py.File(out / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5") as f:
        assert f["imgBrick"].shape == (250, 8, 8, 3)
    for args, message in ((["--scale", "2"], "scale must be in (0, 1]"), (["--image-size", "2"], "image_size"),
                          (["--option", "colour=1"], "'colour'")):
        bad = tmp_path / f"bad{len(message)}"
        assert main(["data", "simulate", "nsd", "--out", str(bad), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and not bad.exists()
