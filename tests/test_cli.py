import json

import pytest

from brainalign.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["datasets", "models", "attacks", "regularizers", "neural", "defences"])
def test_list(capsys, kind):
    code, out, _ = run(capsys, "list", kind)
    assert code == 0
    if kind in ("datasets", "models", "attacks"):
        assert len(out.strip().splitlines()) >= 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "widgets"], "error: unknown kind 'widgets'; valid: datasets"),
        (["train", "missing.yaml"], "error: missing.yaml: config file not found"),
        (["train", "CONFIG", "--set", "train.epochs=0"], "error: train.epochs: Input should be greater than"),
        (["train", "CONFIG", "--set", "data.name=imagenet"], "error: data.name: unknown dataset 'imagenet'; valid:"),
        (["train", "CONFIG", "--set", "eval.attacks=[{name: pgd_linf, eps: [-1]}]"], "error: eval.attacks.0.eps"),
        (["evaluate", "nowhere"], "error: nowhere: no result.json"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_traceback(capsys, tmp_path, args, message):
    config = tmp_path / "c.yaml"
    config.write_text(f"out_dir: {tmp_path / 'runs'}\n")
    args = [str(config) if a == "CONFIG" else a for a in args]
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists(), "nothing may be written on bad input"


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config = tmp_path / "c.yaml"
    config.write_text(f"out_dir: {blocker / 'runs'}\ntrain: {{epochs: 1}}\n")
    code, _, err = run(capsys, "train", str(config))
    assert code == 2 and err.startswith("error: cannot write to")


def test_debug_shows_the_traceback(tmp_path):
    from brainalign.errors import ConfigError

    with pytest.raises(ConfigError):
        main(["--debug", "train", str(tmp_path / "missing.yaml")])


@pytest.mark.trains
def test_quick_demo_end_to_end(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--quick", "--out", str(tmp_path))
    assert code == 0, out
    folder = tmp_path / "demo_quick"
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary["conditions"]) == {"baseline", "pixel_similarity", "neural_similarity_it"}
    baseline = summary["conditions"]["baseline"]
    assert baseline["n_seeds"] == 3
    assert 0.6 < baseline["clean_accuracy"]["mean"] <= 1.0
    assert baseline["clean_accuracy"]["low"] <= baseline["clean_accuracy"]["mean"] <= baseline["clean_accuracy"]["high"]
    # The headline comes from the strong attacks and is never above PGD's number (worst case over more attacks).
    for c in summary["conditions"].values():
        assert c["robust_accuracy"]["mean"] < c["clean_accuracy"]["mean"]
        assert c["robust_accuracy"]["mean"] <= c["robust_accuracy_pgd"]["mean"] + 1e-9
    assert "gain" in summary["conditions"]["pixel_similarity"]
    assert summary["conditions"]["neural_similarity_it"]["simulated_data"] is True
    assert "SIMULATED brain data" in (folder / "summary.md").read_text()
    assert "| baseline | 3 |" in out
    # The self-checks ran on seed 0 of each condition, and the summary says so.
    assert all(c["selfchecked_seeds"] == [0] for c in summary["conditions"].values())
    assert "Self-checks ran on seed 0 of every condition" in (folder / "summary.md").read_text()
    for name in ("study.json", "report.html", "report.md", "report.json"):
        assert (folder / name).exists(), name


def test_quick_demo_refuses_the_headline_check(capsys, tmp_path):
    code, _, err = run(capsys, "demo", "--quick", "--check", "--out", str(tmp_path))
    assert code == 2 and err.startswith("error:") and "--check" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_data_inspect_shows_target_diagnostics(capsys):
    code, out, _ = run(capsys, "data", "inspect", "sim_it", "--option", "n_stimuli=200", "--no-ceilings")
    assert code == 0
    assert "SIMULATED" in out
    line = next(ln for ln in out.splitlines() if "as a similarity target" in ln)
    pixel_r = float(line.split("pixel r ")[1].split(",")[0])
    assert -1.0 <= pixel_r < 0.8  # the simulated IT area is, by construction, not mostly pixels


def test_data_inspect_bad_path(capsys, tmp_path):
    code, _, err = run(capsys, "data", "inspect", str(tmp_path / "nothing"))
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
