"""The report tests reuse the study tests' run-folder helpers (hand-made and tiny trained runs)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "study"))
