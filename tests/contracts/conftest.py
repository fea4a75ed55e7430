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
