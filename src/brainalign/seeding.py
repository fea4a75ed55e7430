"""Seeds: every random draw of a run comes from a generator seeded by named parts, the same on every machine."""

from __future__ import annotations

import zlib

import torch


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts (crc32 of their text), the same on every machine."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts))
