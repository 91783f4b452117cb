"""Terminal output of the CLI: tidy frames as tables that fit the terminal (Rich).

A table keeps the columns of a priority list that fit the console's width (``COLUMNS`` or
the terminal's; 80 when not a terminal) and says which it left out; ``--columns`` chooses
them; the full set is always in the result files (``-o``) and in ``--format csv``. Numbers are
right-aligned, text left-aligned.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

#: Width a column takes beyond its widest cell: Rich's padding (1 each side) and the border.
_COLUMN_OVERHEAD = 3


def fmt(value: Any) -> str:
    """A cell: ``-`` for NaN (not applicable), thousands separators, 3 decimals (or 3
    significant digits in scientific form below 0.01)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if value != value:  # NaN: not applicable (e.g. mapping efficiency of vector layers)
            return "-"
        return f"{value:.3e}" if value and abs(value) < 1e-2 else f"{value:,.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def fit_columns(df: pd.DataFrame, width: int) -> list[str]:
    """The longest prefix of ``df``'s columns (in its order, which is their priority) that fits
    in ``width`` characters; the first column always."""
    chosen: list[str] = []
    used = 1  # the table's left border
    for col in df.columns:
        cells = [fmt(v) for v in df[col]]
        need = max(len(str(col)), *(len(c) for c in cells)) + _COLUMN_OVERHEAD
        if chosen and used + need > width:
            break
        chosen.append(col)
        used += need
    return chosen


def print_frame(console: Console, df: pd.DataFrame, title: str,
                columns: Sequence[str] | None = None) -> list[str]:
    """Print ``df`` as a table: ``columns`` if given, else as many as fit (:func:`fit_columns`).
    Returns the columns left out (the caller may say how to see them)."""
    shown = list(columns) if columns else fit_columns(df, console.width)
    table = Table(title=title, show_lines=False, header_style="bold")
    for col in shown:
        numeric = pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(
            df[col])
        table.add_column(col, justify="right" if numeric else "left")
    for row in df[shown].itertuples(index=False):
        table.add_row(*(fmt(v) for v in row))
    console.print(table)
    return [c for c in df.columns if c not in shown]


def note_hidden(console: Console, hidden: Sequence[str]) -> None:
    """One line naming the columns a table left out and how to see them."""
    if hidden:
        console.print(f"[dim]{len(hidden)} more column(s) not shown for width: "
                      f"{', '.join(hidden)} (--columns to choose; -o or --format csv for all)"
                      f"[/dim]")


def default_cache_dir() -> Path:
    """The user cache directory: ``$XDG_CACHE_HOME/approxsim``, else ``~/.cache/approxsim``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "approxsim"
