"""NeuralRecording: validation, labelled axes and the methods every consumer relies on."""

import numpy as np
import pandas as pd
import pytest

from brainalign.errors import ConfigError, DataError
from brainalign.neural import ArrayImages, NeuralRecording, mask_nan_neuroids
from brainalign.neural.preprocess import average_repetitions, make_splits, pca, window_average, zscore_sessions


def small(n_stim=5, n_reps=3, n_neur=4, n_time=6, **kw):
    rng = np.random.default_rng(0)
    resp = rng.normal(size=(n_stim, n_reps, n_neur, n_time)).astype(np.float32)
    resp[:, :, :, :] += np.arange(n_stim)[:, None, None, None] * 10  # stimulus identity in the value
    ids = np.array([f"s{i}" for i in range(n_stim)])
    imgs = (np.arange(n_stim, dtype=np.float32)[:, None, None, None] / 10) * np.ones((1, 1, 4, 4), np.float32)
    defaults = dict(responses=resp, stimulus_ids=ids,
                    stimulus_meta=pd.DataFrame({"label": ["a", "b", "a", "b", "c"][:n_stim],
                                                "split": ["train", "train", "test", "train", "test"][:n_stim]}),
                    neuroid_meta=pd.DataFrame({"id": [f"n{i}" for i in range(n_neur)], "kind": "channel",
                                               "name": ["O1", "Oz", "O2", "Pz"][:n_neur],
                                               "region": ["occ", "occ", "occ", "par"][:n_neur]}),
                    time_ms=np.arange(n_time) * 10.0 - 20, images=ArrayImages(imgs, ids), attrs={"source": "t"})
    defaults.update(kw)
    return NeuralRecording(**defaults)


def test_fills_schema_columns_and_defaults():
    rec = small()
    assert rec.responses.dtype == np.float32
    assert list(rec.neuroid_meta.columns[:9]) == ["id", "subject", "kind", "name", "region", "x", "y", "z",
                                                 "reliability"]
    assert list(rec.stimulus_meta.columns[:3]) == ["stimulus_id", "label", "split"]
    assert rec.attrs["simulated"] is False and rec.attrs["preprocessing"] == []


@pytest.mark.parametrize("change, message", [
    (dict(stimulus_ids=np.array(["s0", "s1", "s1", "s3", "s4"])), "duplicate stimulus ids"),
    (dict(stimulus_ids=np.array(["s0", "s1"])), "2 stimulus ids for 5"),
    (dict(time_ms=np.array([0, 10, 10, 20, 30, 40.0])), "strictly increasing"),
    (dict(time_ms=np.arange(5.0)), "5 time points for 6"),
    (dict(responses=np.zeros((5, 3, 4))), "4-d array"),
    (dict(neuroid_meta=pd.DataFrame({"id": ["a", "a", "b", "c"]})), "duplicate neuroid ids"),
    (dict(neuroid_meta=pd.DataFrame({"kind": ["neuron"] * 4})), "neuroid kind"),
    (dict(stimulus_meta=pd.DataFrame({"stimulus_id": ["s1", "s0", "s2", "s3", "s4"]})), "not in the order"),
])
def test_rejects_malformed_input(change, message):
    with pytest.raises(DataError, match=message):
        small(**change)


def test_rejects_infinite_values_and_ids_without_images():
    resp = small().responses.copy()
    resp[1, 0, 0, 0] = np.inf
    with pytest.raises(DataError, match="infinite"):
        small(responses=resp)
    ids = np.array([f"s{i}" for i in range(5)])
    with pytest.raises(DataError, match="match no image: s4"):
        small(images=ArrayImages(np.zeros((4, 1, 2, 2), np.float32), ids[:4]))


def test_average_is_nanmean_over_repetitions():
    rec = small()
    resp = rec.responses.copy()
    resp[0, 2] = np.nan  # stimulus 0 has two real repetitions
    rec = small(responses=resp)
    np.testing.assert_allclose(rec.average()[0], resp[0, :2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(rec.average()[1], resp[1].mean(0), rtol=1e-6)
    assert rec.rep_counts.tolist() == [2, 3, 3, 3, 3]


def test_subset_keeps_responses_metadata_and_images_together():
    rec = small()
    sub = rec.subset(["s3", "s0"])
    assert sub.stimulus_ids.tolist() == ["s3", "s0"]
    np.testing.assert_array_equal(sub.responses, rec.responses[[3, 0]])
    assert sub.labels.tolist() == ["b", "a"]
    np.testing.assert_allclose(sub.load_images()[:, 0, 0, 0], [0.3, 0.0], atol=1e-6)
    assert sub.attrs["preprocessing"][-1].startswith("subset")
    with pytest.raises(DataError, match="unknown stimulus"):
        rec.subset(["nope"])


def test_split_selects_by_split_column():
    rec = small()
    assert rec.split("test").stimulus_ids.tolist() == ["s2", "s4"]
    with pytest.raises(DataError, match="no stimuli in split 'validation'"):
        rec.split("validation")


def test_select_neuroids_by_names_region_mask_and_ids():
    rec = small()
    by_names = rec.select_neuroids(names=["O2", "O1"])
    assert by_names.neuroid_meta["name"].tolist() == ["O2", "O1"]
    np.testing.assert_array_equal(by_names.responses, rec.responses[:, :, [2, 0]])
    assert rec.select_neuroids(region="par").neuroid_meta["name"].tolist() == ["Pz"]
    assert rec.select_neuroids(np.array([True, False, False, True])).n_neuroids == 2
    assert rec.select_neuroids(ids=["n1"]).neuroid_meta["name"].tolist() == ["Oz"]
    with pytest.raises(ConfigError, match="unknown region"):
        rec.select_neuroids(region="IT")
    with pytest.raises(ConfigError, match="unknown neuroid name"):
        rec.select_neuroids(names=["Fz"])


def test_select_time_is_half_open():
    rec = small()  # times -20, -10, 0, 10, 20, 30
    win = rec.select_time(0, 20)
    assert win.time_ms.tolist() == [0.0, 10.0]
    np.testing.assert_array_equal(win.responses, rec.responses[..., 2:4])
    with pytest.raises(ConfigError, match="no time points"):
        rec.select_time(100, 200)


def test_mask_nan_neuroids_drops_and_reports():
    resp = small().responses.copy()
    resp[:, :, 1] = np.nan       # an all-NaN channel
    resp[0, 0, 2, 0] = np.nan    # one missing value
    resp[4, 2] = np.nan          # one padded repetition
    rec = mask_nan_neuroids(small(responses=resp))
    assert rec.neuroid_meta["id"].tolist() == ["n0", "n2", "n3"]
    assert rec.attrs["masked_neuroids"] == ["n1"]
    real = (5 * 3 - 1) * 3 * 6
    assert rec.attrs["nan_fraction"] == pytest.approx(1 / real)
    assert rec.rep_counts.tolist() == [3, 3, 3, 3, 2]
    again = mask_nan_neuroids(rec)
    assert again.attrs["masked_neuroids"] == ["n1"] and again.n_neuroids == 3


def test_noise_ceiling_dispatch_and_shape():
    rec = small()
    for method in ("splithalf", "spearman_brown", "ncsnr", "fev", "oracle"):
        assert rec.noise_ceiling(method).shape == (4, 6)
    with pytest.raises(ConfigError, match="unknown noise ceiling"):
        rec.noise_ceiling("nope")
    with pytest.raises(DataError, match="one repetition"):
        average_repetitions(rec).noise_ceiling("fev")


def test_preprocessing_steps():
    rec = small()
    avg = average_repetitions(rec)
    assert avg.n_reps == 1 and avg.attrs["preprocessing"] == ["average_repetitions"]
    win = window_average(rec, -10, 20)
    np.testing.assert_allclose(win.responses[..., 0], rec.responses[..., 1:4].mean(-1), rtol=1e-5)
    assert win.attrs["time_bin_end_ms"].tolist() == [20.0]
    z = zscore_sessions(rec)
    flat = z.responses.transpose(0, 1, 2, 3).reshape(-1, 4, 6)
    np.testing.assert_allclose(flat.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(flat.std(0), 1, atol=1e-4)
    p = pca(rec, 2)
    assert p.n_neuroids == 2 and set(p.neuroid_meta["kind"]) == {"component"}
    split = make_splits(rec, test_fraction=0.4, seed=1)
    assert (split.stimulus_meta["split"] == "test").sum() == 2
    by_label = make_splits(rec, test_fraction=0.34, seed=0, by="label")
    for _, group in by_label.stimulus_meta.groupby("label"):
        assert group["split"].nunique() == 1


def test_zscore_sessions_uses_sessions():
    rec = small()
    sessions = np.array([[1, 1, 2]] * 5)
    z = zscore_sessions(rec.derive(None, sessions=sessions))
    for s in (1, 2):
        trials = z.responses[sessions == s]
        np.testing.assert_allclose(trials.mean(0), 0, atol=1e-5)
