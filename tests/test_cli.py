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


def test_quick_demo_end_to_end(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--quick", "--out", str(tmp_path))
    assert code == 0, out
    summary = json.loads((tmp_path / "demo_quick" / "summary.json").read_text())
    baseline = summary["conditions"]["baseline"]
    assert baseline["n_seeds"] == 3
    assert 0.6 < baseline["clean_accuracy"]["mean"] <= 1.0
    assert baseline["robust_accuracy"]["mean"] < baseline["clean_accuracy"]["mean"]
    assert baseline["clean_accuracy"]["low"] <= baseline["clean_accuracy"]["mean"] <= \
        baseline["clean_accuracy"]["high"]
    report = (tmp_path / "demo_quick" / "report.md").read_text()
    assert "| baseline | 3 |" in report
