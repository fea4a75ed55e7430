"""Each loader reads a tiny fixture written in the data set's published format, keeps every response with
its own image, round-trips metadata, and refuses malformed files with a DataError naming file and problem."""

import pickle

import numpy as np
import pytest

from brainalign.errors import ConfigError, DataError
from brainalign.neural import LoaderInfo, detect_loader, load_recording
from brainalign.registry import NEURAL_LOADERS

REAL = ("things_eeg2", "brainio", "nsd", "algonauts2023", "sinz_static", "cadena2019")


def test_registry_entries_have_info():
    for name in REAL + ("sim_v1", "sim_eeg", "sim_fmri", "sim_it"):
        entry = NEURAL_LOADERS.entry(name)
        assert isinstance(entry.info, LoaderInfo)
        assert entry.info.simulated == name.startswith("sim_")
        assert entry.description and "\n" not in entry.description
    with pytest.raises(ConfigError, match="valid: .*things_eeg2"):
        load_recording("things_eeg3", path=".")


# ---- THINGS-EEG2 -------------------------------------------------------------------------------------
def test_things_eeg2_pairs_each_condition_with_its_image(tmp_path, formats):
    sub = formats.write_things(tmp_path)
    rec = load_recording("things_eeg2", path=sub)
    assert rec.responses.shape == (6, 4, 17, 100)
    assert rec.neuroid_meta["name"].tolist() == formats.THINGS_CHANNELS
    assert rec.time_ms[0] == -200 and rec.time_ms[-1] == 790
    assert rec.stimulus_ids.tolist()[:3] == ["aardvark_01s", "aardvark_02s", "bee_01s"]
    assert rec.labels.tolist()[:3] == ["aardvark", "aardvark", "bee"]
    assert set(rec.stimulus_meta["split"]) == {"train"}
    assert rec.stimulus_meta["concept"].iloc[2] == "00002_bee"
    assert rec.neuroid_meta["subject"].iloc[0] == "sub-01" and not rec.attrs["simulated"]
    images = rec.load_images()
    for k in range(rec.n_stimuli):
        condition = int(rec.responses[k, 0, 0, 0] // 1000)
        assert condition == k
        assert abs(formats.level_of(images[k]) - (20 + 10 * condition)) <= 2
    # exact values: repetition, channel and time axes in place
    assert rec.responses[3, 2, 5, 7] == pytest.approx(3 * 1000 + 2 * 100 + 5 + 0.007)


def test_things_eeg2_test_split_and_file_path(tmp_path, formats):
    sub = formats.write_things(tmp_path, n_concepts=2, per_concept=1, reps=6, split="test")
    rec = load_recording("things_eeg2", path=sub / "preprocessed_eeg_test.npy", split="test")
    assert rec.n_reps == 6 and set(rec.stimulus_meta["split"]) == {"test"}
    from_root = load_recording("things_eeg2", path=tmp_path, split="test")  # the one subject below the root
    np.testing.assert_array_equal(from_root.responses, rec.responses)
    (sub.parent / "sub-02").mkdir()
    (sub.parent / "sub-02" / "preprocessed_eeg_test.npy").write_bytes((sub / "preprocessed_eeg_test.npy").read_bytes())
    with pytest.raises(DataError, match=r"2 subjects \(sub-01, sub-02"):
        load_recording("things_eeg2", path=tmp_path, split="test")


def test_things_eeg2_never_uses_np_load_with_pickles(tmp_path, formats, monkeypatch):
    sub = formats.write_things(tmp_path)
    real_load = np.load

    def guarded(*args, **kwargs):
        assert not kwargs.get("allow_pickle"), "np.load(allow_pickle=True) was called"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", guarded)
    assert load_recording("things_eeg2", path=sub).n_stimuli == 6


def test_things_eeg2_refuses_metadata_out_of_condition_order(tmp_path, formats):
    sub = formats.write_things(tmp_path)
    meta_path = tmp_path / "image_set" / "image_metadata.npy"
    meta = np.load(meta_path, allow_pickle=True).item()  # test-side only: this file was written by the test
    for key in meta:
        meta[key] = meta[key][::-1]
    np.save(meta_path, meta)
    with pytest.raises(DataError, match="not in sorted folder order"):
        load_recording("things_eeg2", path=sub)


def test_things_eeg2_bad_files(tmp_path, formats):
    sub = formats.write_things(tmp_path)
    file = sub / "preprocessed_eeg_training.npy"
    raw = file.read_bytes()
    file.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="preprocessed_eeg_training.npy: .*truncated"):
        load_recording("things_eeg2", path=sub)
    data = {"preprocessed_eeg_data": np.zeros((6, 4, 17, 100)), "ch_names": ["O1"] * 16, "times": np.zeros(100)}
    np.save(file, data)
    with pytest.raises(DataError, match="16 ch_names but preprocessed_eeg_data has 17 channels"):
        load_recording("things_eeg2", path=sub)
    del data["times"]
    np.save(file, data)
    with pytest.raises(DataError, match="missing key 'times'"):
        load_recording("things_eeg2", path=sub)
    np.save(file, {"preprocessed_eeg_data": np.zeros((5, 4, 17, 100)), "ch_names": ["O1"] * 17,
                   "times": np.arange(100) / 100})
    with pytest.raises(DataError, match="6 training images but the EEG file has 5 conditions"):
        load_recording("things_eeg2", path=sub)
    with pytest.raises(DataError, match="not found"):
        load_recording("things_eeg2", path=tmp_path / "nowhere")


def test_things_eeg2_nan_channel_is_masked_and_reported(tmp_path, formats):
    from brainalign.neural import format_inspection, inspect_recording

    sub = formats.write_things(tmp_path)
    file = sub / "preprocessed_eeg_training.npy"
    data = np.load(file, allow_pickle=True).item()  # test-side only
    data["preprocessed_eeg_data"][:, :, 3] = np.nan
    data["preprocessed_eeg_data"][0, 0, 0, :10] = np.nan
    np.save(file, data)
    rec = load_recording("things_eeg2", path=sub)
    assert rec.n_neuroids == 16 and "P1" not in rec.neuroid_meta["name"].tolist()
    assert rec.attrs["masked_neuroids"] == ["sub-01/P1"]
    info = inspect_recording(sub, ceilings=False)
    assert info["nan"]["masked_neuroids"] == 1 and info["nan"]["nan_fraction"] > 0
    assert "1 all-NaN neuroid(s) masked (sub-01/P1)" in format_inspection(info)


def test_things_eeg2_without_images(tmp_path, formats):
    sub = formats.write_things(tmp_path)
    (tmp_path / "image_set" / "image_metadata.npy").unlink()
    rec = load_recording("things_eeg2", path=sub)
    assert rec.images is None and rec.stimulus_ids[0] == "training-00001"
    with pytest.raises(DataError, match="no images attached"):
        rec.load_images()


# ---- BrainIO -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("id_column", ["stimulus_id", "image_id"])
def test_brainio_rebuilds_indexes_from_shuffled_presentations(tmp_path, formats, id_column):
    nc = formats.write_brainio(tmp_path, id_column=id_column)
    rec = load_recording("brainio", path=nc)
    assert rec.responses.shape == (6, 3, 4, 2)
    assert rec.time_ms.tolist() == [70.0, 170.0] and rec.attrs["time_bin_end_ms"].tolist() == [170.0, 270.0]
    assert rec.neuroid_meta["region"].tolist() == ["V4", "V4", "IT", "IT"]
    assert rec.neuroid_meta["subject"].tolist() == ["monkeyA"] * 4
    assert rec.attrs["stimulus_set_identifier"] == "dicarlo.Test2024"
    images = rec.load_images()
    for k, sid in enumerate(rec.stimulus_ids):
        number = int(sid[3:])
        # repetitions sorted by the repetition coordinate; neuroid and time_bin axes in place
        np.testing.assert_allclose(rec.responses[k, :, 2, 1], 10 * number + 2 + np.array([0, .01, .02]) + .5,
                                   atol=1e-4)
        assert formats.level_of(images[k]) == 30 + 20 * number
        assert rec.labels[k] == ["car", "face"][number % 2]


def test_brainio_detects_unknown_and_duplicate_stimuli(tmp_path, formats):
    import pandas as pd

    nc = formats.write_brainio(tmp_path)
    csv = tmp_path / "stimulus_dicarlo_Test2024.csv"
    table = pd.read_csv(csv)
    table[table["stimulus_id"] != "img003"].to_csv(csv, index=False)
    with pytest.raises(DataError, match="1 stimulus id\\(s\\) not in stimulus_dicarlo_Test2024.csv, e.g. img003"):
        load_recording("brainio", path=nc)
    pd.concat([table, table.iloc[:1]]).to_csv(csv, index=False)
    with pytest.raises(DataError, match="duplicate stimulus id"):
        load_recording("brainio", path=nc)
    table.assign(filename=table["filename"].str.replace("img002", "missing")).to_csv(csv, index=False)
    with pytest.raises(DataError, match="not in the archive"):
        load_recording("brainio", path=nc)


def test_brainio_corrupt_file(tmp_path):
    bad = tmp_path / "assy_bad.nc"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(DataError, match="assy_bad.nc: not a readable netCDF-4 file"):
        load_recording("brainio", path=bad)


# ---- NSD ---------------------------------------------------------------------------------------------
def test_nsd_betas_meet_their_images(tmp_path, formats):
    formats.write_nsd(tmp_path)
    rec = load_recording("nsd", path=tmp_path, roi="prf-visualrois", zscore=False)
    # ROI: V1v is x == 0 (6 voxels), V2v is x == 1 and z == 0 (3 voxels); -1 is outside the brain
    assert rec.n_neuroids == 9 and rec.n_reps == 3 and rec.n_stimuli == 500
    assert sorted(set(rec.neuroid_meta["region"])) == ["V1v", "V2v"]
    assert (rec.sessions >= 1).all() and set(np.unique(rec.sessions)) == {1, 2}
    vox = np.arange(24).reshape(formats.NSD_SHAPE, order="F")
    meta = rec.neuroid_meta
    expected_vox = vox[meta["x"].astype(int), meta["y"].astype(int), meta["z"].astype(int)]
    np.testing.assert_allclose(meta["reliability"], expected_vox / 100.0, atol=1e-6)
    check = np.arange(0, 500, 37)
    images = rec.images.load(rec.stimulus_ids[check].tolist())
    for j, k in enumerate(check):
        code = np.round(rec.responses[k, :, :, 0] * 300).astype(int)  # (rep, voxel)
        nsd0 = code // 25
        assert (nsd0 == nsd0[0, 0]).all()  # every repetition of this stimulus is the same image
        np.testing.assert_array_equal(code[0] % 25, expected_vox)  # voxel order matches neuroid_meta
        assert rec.stimulus_ids[k] == f"nsd-{nsd0[0, 0]:05d}"
        red, green = np.round(images[j, :2, 0, 0] * 255).astype(int)
        assert red + 256 * green == nsd0[0, 0]
    assert (rec.stimulus_meta["split"] == "test").sum() == 50
    v1 = load_recording("nsd", path=tmp_path, roi="prf-visualrois", roi_labels=["V1v"], sessions=[2])
    assert v1.n_neuroids == 6 and set(np.unique(v1.sessions[v1.sessions >= 0])) == {2}
    np.testing.assert_allclose(np.nanmean(v1.responses[:, :, 0, 0]), 0, atol=1e-5)  # z-scored in session


def test_nsd_bad_input(tmp_path, formats):
    import h5py

    formats.write_nsd(tmp_path)
    with pytest.raises(ConfigError, match="unknown prf-visualrois label"):
        load_recording("nsd", path=tmp_path, roi="prf-visualrois", roi_labels=["FFA-1"])
    with pytest.raises(DataError, match="betas_session05.hdf5 not found"):
        load_recording("nsd", path=tmp_path, roi="prf-visualrois", sessions=[5])
    beta = tmp_path / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.hdf5"
    with h5py.File(beta, "w") as f:
        f.create_dataset("betas", data=np.zeros((750, 2, 3, 5), dtype=np.int16))
    with pytest.raises(DataError, match="betas_session01.hdf5: betas have shape \\(750, 2, 3, 5\\)"):
        load_recording("nsd", path=tmp_path, roi="prf-visualrois")
    roi = tmp_path / "nsddata/ppdata/subj01/func1pt8mm/roi/prf-visualrois.nii.gz"
    roi.write_bytes(roi.read_bytes()[:40])
    with pytest.raises(DataError, match="prf-visualrois.nii.gz"):
        load_recording("nsd", path=tmp_path, roi="prf-visualrois")


# ---- Algonauts 2023 ----------------------------------------------------------------------------------
def test_algonauts_rows_meet_their_images(tmp_path, formats):
    formats.write_algonauts(tmp_path)
    rec = load_recording("algonauts2023", path=tmp_path)
    assert rec.responses.shape == (12, 1, 9, 1)
    assert rec.neuroid_meta["hemisphere"].tolist() == ["lh"] * 5 + ["rh"] * 4
    assert rec.neuroid_meta["region"].tolist()[:6] == ["V1v", "V1v", "V2v", "", "", "V1d"]
    images = rec.load_images()
    for k, sid in enumerate(rec.stimulus_ids):
        nsd = int(sid[4:])
        np.testing.assert_allclose(rec.responses[k, 0, :5, 0], nsd + np.arange(5) / 100, atol=1e-3)
        assert formats.level_of(images[k]) == nsd % 251
    v1 = load_recording("algonauts2023", path=tmp_path / "subj01", rois=["V1v", "V1d"])
    assert v1.neuroid_meta["id"].tolist() == ["subj01/lh/0", "subj01/lh/1", "subj01/rh/0"]
    with pytest.raises(DataError, match="one repetition"):
        rec.noise_ceiling("fev")


def test_algonauts_missing_image_row(tmp_path, formats):
    formats.write_algonauts(tmp_path)
    img_dir = tmp_path / "subj01/training_split/training_images"
    next(img_dir.glob("train-0005_*.png")).unlink()
    with pytest.raises(DataError, match="missing rows \\[4\\]"):
        load_recording("algonauts2023", path=tmp_path)


# ---- Sinz lab ----------------------------------------------------------------------------------------
def test_sinz_static_groups_repeats_by_image_id(tmp_path, formats):
    formats.write_sinz_static(tmp_path)
    rec = load_recording("sinz_static", path=tmp_path)
    assert rec.n_stimuli == 11 and rec.n_reps == 3  # test images 7 and 9 are shown 3 times each
    counts = dict(zip(rec.stimulus_ids, rec.rep_counts, strict=True))
    assert counts["img-7"] == 3 and counts["img-9"] == 3 and counts["img-1"] == 1
    assert rec.neuroid_meta["region"].tolist() == ["V1", "V1", "V1", "LM", "LM"]
    assert rec.neuroid_meta["id"].iloc[0] == "21067/1"
    images = rec.load_images()
    for k, sid in enumerate(rec.stimulus_ids):
        image_id = int(sid[4:])
        reps = rec.responses[k, : rec.rep_counts[k], :, 0]
        np.testing.assert_allclose(reps, np.broadcast_to(image_id + np.arange(5) / 10, reps.shape), atol=1e-6)
        assert formats.level_of(images[k]) == 3 * image_id
    splits = dict(zip(rec.stimulus_ids, rec.stimulus_meta["split"], strict=True))
    assert splits["img-9"] == "test" and splits["img-1"] == "train" and splits["img-8"] == "validation"
    fev = rec.subset(["img-7", "img-9", "img-1"]).noise_ceiling("fev")
    assert np.isfinite(fev).all()
    assert load_recording("sinz_static", path=tmp_path, tiers=["train"]).n_stimuli == 6


def test_sinz_static_missing_trial_file(tmp_path, formats):
    formats.write_sinz_static(tmp_path)
    (tmp_path / "data/responses/3.npy").unlink()
    with pytest.raises(DataError, match="not numbered 0..13"):
        load_recording("sinz_static", path=tmp_path)


@pytest.mark.parametrize("protocol", [2, 4])
def test_cadena2019(tmp_path, formats, protocol):
    formats.write_cadena(tmp_path / "data" / "cadena_ploscb_data.pkl", protocol=protocol)
    rec = load_recording("cadena2019", path=tmp_path)
    assert rec.responses.shape == (10, 4, 4, 1)
    assert rec.stimulus_ids[:2].tolist() == ["100", "101"]
    assert rec.stimulus_meta["split"].tolist() == ["train"] * 8 + ["test"] * 2
    assert rec.labels[:2].tolist() == ["original", "conv1"]
    assert np.isnan(rec.responses[:, 2:, 0]).all() and np.isfinite(rec.responses[:, :, 1]).all()
    np.testing.assert_allclose(rec.responses[3, 1, :, 0], 103 + np.arange(4) / 10, atol=1e-5)
    images = rec.load_images()
    assert images.shape == (10, 1, 8, 8)
    for k in range(10):
        assert formats.level_of(images[k]) == 10 * k
    assert rec.neuroid_meta["subject"].tolist() == ["1", "1", "2", "2"]


def test_cadena_missing_key(tmp_path):
    path = tmp_path / "cadena_ploscb_data.pkl"
    with open(path, "wb") as f:
        pickle.dump({"images": np.zeros((2, 4, 4)), "responses": np.zeros((4, 2, 3))}, f)
    with pytest.raises(DataError, match="missing key 'image_ids'"):
        load_recording("cadena2019", path=path)


# ---- detection -----------------------------------------------------------------------------------
def test_detect_loader(tmp_path, formats):
    formats.write_things(tmp_path / "a")
    formats.write_brainio(tmp_path / "b")
    formats.write_algonauts(tmp_path / "c")
    formats.write_sinz_static(tmp_path / "d")
    formats.write_cadena(tmp_path / "e" / "cadena_ploscb_data.pkl")
    found = {d: detect_loader(tmp_path / d) for d in "abcde"}
    assert found == {"a": "things_eeg2", "b": "brainio", "c": "algonauts2023", "d": "sinz_static", "e": "cadena2019"}
    with pytest.raises(ConfigError, match="cannot tell which loader"):
        detect_loader(tmp_path)
