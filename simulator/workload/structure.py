"""Weight structures a layer may declare: ``unstructured``, ``filter``, ``channel`` or
``"N:M"`` (at most N nonzeros in every M consecutive weights along K; NVIDIA's 2:4, Mishra et
al., arXiv:2104.08378), and the hint for the YAML trap behind the last one."""

from __future__ import annotations

from typing import Any


def nm_pattern(text: str) -> tuple[int, int] | None:
    """Parse ``"N:M"`` (0 < N < M) or return None."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        return None
    n, m = int(parts[0]), int(parts[1])
    return (n, m) if 0 < n < m else None


def unquoted_nm(value: Any) -> str | None:
    """The hint for an integer that YAML 1.1 read from an unquoted ``N:M`` (base 60:
    ``2:4`` is 124), or None when ``value`` cannot be one."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 60:
        return None
    n, m = divmod(value, 60)
    if n >= 60 or not 0 < n < m:
        return None
    return (f"YAML reads an unquoted {n}:{m} as the number {value} (base 60); "
            f"write it in quotes: '{n}:{m}'")
