"""Where every study script puts its result: written, or with ``--check`` compared with the
committed file (exit status 1 and a unified diff when it drifted). ``make test`` runs every
study with ``--check`` (tests/test_figures.py), so a figure that drifts is a failing test."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path


def emit(path: Path, text: str, argv: list[str] | None = None) -> None:
    """Write ``text`` to ``path``, or compare with it when ``--check`` is in ``argv``."""
    args = sys.argv[1:] if argv is None else argv
    if "--check" not in args:
        path.write_text(text, encoding="utf-8")
        return
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old != text:
        diff = difflib.unified_diff(old.splitlines(), text.splitlines(), str(path),
                                    "regenerated", lineterm="", n=1)
        sys.exit(f"{path} drifted from its script; rerun it without --check:\n"
                 + "\n".join(list(diff)[:80]))
