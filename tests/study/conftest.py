"""Helpers of the study tests (hand-made run folders, tiny trained runs) importable by name."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
