"""The claims table on hand-made run folders whose verdicts are known."""

from __future__ import annotations

import pytest
import synthetic_runs as syn

from brainalign.analysis.summary import summarize
from brainalign.claims import CLAIMS, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED, modality

CE, T = "apgd_ce_linf[steps=100]", "apgd_t_linf[steps=100]"


@pytest.fixture(autouse=True)
def apgd_meta(monkeypatch):
    monkeypatch.setitem(syn.ATTACK_META, "apgd_ce_linf", ("whitebox", "Linf"))
    monkeypatch.setitem(syn.ATTACK_META, "apgd_t_linf", ("whitebox", "Linf"))


def curves(robust: int) -> dict[str, dict[float, int]]:
    return {CE: {0.0: 180, 0.1: robust}, T: {0.0: 180, 0.1: robust}}


def target(recording: str, simulated: bool) -> list[dict]:
    return [{"name": "neural_similarity", "source": f"recording:{recording}", "simulated": simulated}]


def experiment(root, *, simulated: bool, shuffled_gain: bool):
    """baseline; pixel_similarity +30..32 images (a gain); spectral -1/0/+1 image (none); neural_similarity on
    a V1 recording (+30..32 images) and its shuffled control (the same gain, or none)."""
    rec = "sim_v1" if simulated else "sinz_v1"
    for seed in range(3):
        syn.write_run(root, "baseline", seed, curves(50), data="digits")
        syn.write_run(root, "pix", seed, curves(80 + seed), data="digits", regularizers=syn.only("pixel_similarity"))
        syn.write_run(root, "spec", seed, curves(49 + seed), data="digits", regularizers=syn.only("spectral"))
        syn.write_run(root, "neural", seed, curves(80 + seed), data="digits", regularizers=syn.neural(),
                      regularization_targets=target(rec, simulated), simulated_data=simulated)
        syn.write_run(root, "neural_shuf", seed, curves(80 + seed if shuffled_gain else 50), data="digits",
                      regularizers=syn.neural("shuffled"), regularization_targets=target(rec, simulated),
                      simulated_data=simulated)
    return {row["paper"].split(" (")[0]: row for row in summarize(root)["claims"]}


def test_one_row_per_seed_paper_and_verdicts_on_real_targets(tmp_path):
    rows = experiment(tmp_path, simulated=False, shuffled_gain=False)
    assert len(rows) == len(CLAIMS) == 9
    assert rows["Attias et al. 2024"]["verdict"] == REPRODUCED and rows["Attias et al. 2024"]["condition"] == "pix"
    assert rows["Nassar et al. 2020"]["verdict"] == NOT_REPRODUCED
    assert "holds 0" in rows["Nassar et al. 2020"]["reason"]
    li = rows["Li et al. 2019"]
    assert li["condition"] == "neural" and li["verdict"] == REPRODUCED
    assert li["structure"]["control"] == "neural_shuf" and li["structure"]["diff"] > 0
    for paper in ("Pirlot et al. 2022", "Hsiung et al. 2023", "Dapello et al. 2023"):
        assert rows[paper]["verdict"] == NOT_TESTABLE, paper


def test_a_gain_shared_by_the_shuffled_control_is_not_reproduced(tmp_path):
    li = experiment(tmp_path, simulated=False, shuffled_gain=True)["Li et al. 2019"]
    assert li["verdict"] == NOT_REPRODUCED and "not beyond neural_shuf" in li["reason"]


def test_simulated_targets_cannot_test_a_claim_about_the_brain(tmp_path):
    rows = experiment(tmp_path, simulated=True, shuffled_gain=False)
    li = rows["Li et al. 2019"]
    assert li["verdict"] == NOT_TESTABLE and "SIMULATED" in li["reason"] and "CI above 0" in li["reason"]
    assert rows["Attias et al. 2024"]["verdict"] == REPRODUCED  # pixel targets are the real images


def test_claims_are_in_summary_md_and_the_report(tmp_path):
    import json

    from brainalign.analysis.summary import summary_table
    from brainalign.reports import write_report

    experiment(tmp_path, simulated=True, shuffled_gain=False)
    table = summary_table(summarize(tmp_path))
    assert "## The seed papers' claims beside these runs" in table and "Guo et al. 2024" in table
    paths = write_report(tmp_path, n_boot=50)
    report = json.loads(paths["json"].read_text())
    assert len(report["claims"]["rows"]) == 9
    assert "Hsiung et al. 2023" in paths["html"].read_text() and "Hsiung et al. 2023" in paths["md"].read_text()


def test_modality_from_the_recording_name():
    assert [modality(f"recording:{n}") for n in ("sim_eeg", "things_eeg2", "nsd", "sim_v1", "sim_it")] == \
        ["EEG", "EEG", "fMRI", "V1", "IT"]
    assert modality("pixels") is None
