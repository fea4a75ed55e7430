"""The contract every boundary keeps: bad input is one line naming the field and what is allowed, exit 2,
no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from brainalign.cli import main


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


@pytest.fixture
def refused(capsys, tmp_path):
    """``refused(args, *needles)``: run the CLI, check the contract, return the error line."""

    def check(args: list[str], *needles: str, watch: Path | None = None) -> str:
        watch = watch or tmp_path
        before = files_under(watch)
        code = main([str(a) for a in args])
        _, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2, f"exit {code}: {err}"
        assert len(lines) == 1, err
        assert lines[0].startswith("error: "), err
        assert "Traceback" not in err and "internal error" not in err, err
        for needle in needles:
            assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
        assert files_under(watch) == before, f"files left behind: {sorted(files_under(watch) - before)}"
        return lines[0]

    return check


@pytest.fixture
def untrained_run(tmp_path):
    """``untrained_run(**result_fields)``: a run folder with an untrained small CNN's weights and a result.json,
    written without training, for the tests of what reads run folders."""
    from brainalign import results
    from brainalign.config import parse_config
    from brainalign.data import load_data
    from brainalign.io import save_checkpoint, write_json, write_yaml
    from brainalign.models import build_model

    def make(weights_width: int = 8, name: str = "baseline", **fields) -> Path:
        config = parse_config({"experiment": "e", "name": name, "out_dir": str(tmp_path / "runs"),
                               "model": {"name": "small_cnn", "width": 8}})
        data = load_data(config.data)
        arch = config.model.model_copy(update={"width": weights_width})
        model = build_model(arch, data.num_classes, data.in_channels, data.image_size, data.mean, data.std)
        run_dir = config.run_dir
        write_yaml(run_dir / results.CONFIG, config.to_dict())
        save_checkpoint(run_dir / results.WEIGHTS, dict(model.state_dict()), {"format": "brainalign-model"})
        result = {**results.provenance(), "experiment": "e", "name": name, "seed": 0, "data": "digits",
                  "model": "small_cnn", "clean_accuracy": 0.1, "n_test": len(data.test),
                  "robustness": {"pgd_linf": {"attack": "pgd_linf", "norm": "Linf", "family": "whitebox",
                                              "eps": [0.0, 0.1], "accuracy": [0.1, 0.05],
                                              "n_examples": 40}}}
        result.update(fields)
        write_json(run_dir / results.RESULT, {k: v for k, v in result.items() if v != DROP})
        return run_dir

    return make


DROP = "<drop>"  # a field value that leaves the field out of the result (tests/contracts use the same text)
