"""What a wheel ships: the package data that `brainalign demo` needs once installed without the source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from brainalign.demo import TUNED_DIR, load_conditions
from brainalign.tune import MANIFEST

ROOT = Path(__file__).resolve().parents[1]


def _build_wheel(tmp_path: Path) -> Path:
    """Build a wheel from a copy of the tree (the build writes build/ and *.egg-info beside its sources)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out), str(tree)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("brainalign-*.whl")
    return wheel


def test_tuned_dir_resolves_to_the_packaged_configs():
    manifest = json.loads((TUNED_DIR / MANIFEST).read_text())
    assert TUNED_DIR.is_relative_to(Path(sys.modules["brainalign"].__file__).parent)
    conditions, schedule = load_conditions()
    assert {c.tuned["method"] for c in conditions} == set(manifest["methods"])
    assert schedule


def test_a_wheel_ships_the_tuned_configs_and_the_installed_demo_finds_them(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(f"brainalign/tuned/{MANIFEST}"))
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        archive.extractall(tmp_path / "site")
    assert {f"brainalign/tuned/{file}" for file in manifest["configs"].values()} <= names
    assert "License-Expression: MIT" in metadata.splitlines()  # the SPDX form (PEP 639), not a License: text
    # The installed package, not this checkout: only the unpacked wheel is on the path, run from elsewhere.
    probe = ("import brainalign, brainalign.demo as d; "
             "print(brainalign.__file__); print(d.TUNED_DIR); print(len(d.load_conditions()[0]))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True, timeout=300)
    package_file, tuned_dir, count = run.stdout.split()
    assert Path(package_file).is_relative_to(tmp_path / "site")
    assert Path(tuned_dir) == tmp_path / "site" / "brainalign" / "tuned"
    assert int(count) == len(load_conditions()[0])
