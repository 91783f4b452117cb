"""The result store: a directory of Parquet parts that grows as points finish.

::

    RESULTS/
      store.json                          format, code version, the sweeps written here (name,
                                          axes)
      parts/part-<ns>-<pid>/points.parquet   one row per point
      parts/part-<ns>-<pid>/layers.parquet   one row per point x layer
      traces/<digest>.zip                 compressed workloads, by content digest

A part is built under a temporary name and renamed into place (``os.rename`` of a directory
is atomic on POSIX), so its two tables appear together or not at all: a sweep killed at any
instant (``kill -9``) leaves whole parts only. The points of a part are exactly those whose
layers it holds, so the set of finished points is the union of the parts' ``point_hash``
columns; a rerun skips those and loses or duplicates nothing.

A store holds results of one code version (:func:`~simulator.sweep.hashing.code_version`):
opening it with another is a :class:`StoreError` (start a new store), so numbers of two
versions of the model never mix. Needs the ``sweep`` extra (pyarrow).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.errors import SimulatorError
from simulator.files import replace_dir_atomic, write_atomic
from simulator.frontend._deps import require

FORMAT = "approxsim-results/1"
MANIFEST = "store.json"
POINTS = "points.parquet"
LAYERS = "layers.parquet"


class StoreError(SimulatorError):
    """A results directory is not a store, is of another version, or cannot be written."""


def _pq() -> Any:
    require("pyarrow")
    import pyarrow.parquet as pq

    return pq


def layer_frame(layers: Sequence[dict[str, list[Any]]]) -> pd.DataFrame:
    """The points' layer rows as one frame: what concatenating one frame per point gives
    (``pd.concat`` of ``pd.DataFrame(cols)``: each point's columns typed on their own, then
    unified), built column by column. A column whose values are of one Python type in every
    point (int, float, str or bool: the same dtype in every point's frame) is typed once over
    all points; any other column is concatenated per point as one-column frames; points whose
    columns differ (names or order) take the long way, one frame each (``long_way``)."""
    present = [cols for cols in layers if cols]
    if not present:
        return pd.DataFrame({"point_hash": pd.Series([], dtype=object)})
    keys = list(present[0])
    if any(list(cols) != keys or not len(cols[keys[0]]) for cols in present):
        return _layer_frame_long(present)
    out: dict[str, pd.Series] = {}
    for k in keys:
        parts = [cols[k] for cols in present]
        kinds = {type(v) for part in parts for v in part}
        if len(kinds) == 1 and next(iter(kinds)) in (int, float, str, bool):
            out[k] = pd.Series([v for part in parts for v in part])
        else:  # frames unify dtypes by their own rules (bool + int: int64, not object)
            out[k] = pd.concat([pd.DataFrame({k: part}) for part in parts],
                               ignore_index=True)[k]
    return pd.DataFrame(out)


def _layer_frame_long(layers: Sequence[dict[str, list[Any]]]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame(cols) for cols in layers], ignore_index=True)


class ResultStore:
    """A results directory (module docstring). Open with :meth:`create` or :meth:`open`."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path) -> ResultStore:
        """Open an existing store for reading."""
        p = Path(root)
        man = p / MANIFEST
        if not man.is_file():
            raise StoreError(f"{p}: not an approxsim results store (no {MANIFEST}; write one "
                             f"with `approxsim sweep SWEEP.yaml -o {p}`)")
        try:
            data = json.loads(man.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{man}: unreadable ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else data
            raise StoreError(f"{man}: format must be {FORMAT!r} (got {got!r})")
        return cls(p, data)

    @classmethod
    def create(cls, root: str | Path, code_version: str, sweep: str,
               axes: Sequence[str] = ()) -> ResultStore:
        """Open ``root`` for a sweep, creating the store if the directory is new or empty."""
        p = Path(root)
        if p.exists() and not p.is_dir():
            raise StoreError(f"{p}: exists and is not a directory")
        if (p / MANIFEST).is_file():
            store = cls.open(p)
            if store.code_version != code_version:
                raise StoreError(
                    f"{p}: holds results of approxsim code {store.code_version}, this is "
                    f"{code_version}; write to a new directory (results of two versions of "
                    f"the model are never mixed)")
        elif p.is_dir() and any(p.iterdir()):
            raise StoreError(f"{p}: exists, is not empty and is not a results store; choose "
                             f"a new directory")
        else:
            try:
                p.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{p}: cannot create the results directory ({exc})") from None
            store = cls(p, {"format": FORMAT, "code_version": code_version, "sweeps": []})
        entry = {"name": sweep, "axes": list(axes)}
        if entry not in store.manifest["sweeps"]:
            store.manifest["sweeps"].append(entry)
        try:
            (p / "parts").mkdir(exist_ok=True)
            write_atomic(p / MANIFEST, json.dumps(store.manifest, indent=2) + "\n")
        except OSError as exc:
            raise StoreError(f"{p}: cannot write the results store ({exc})") from None
        return store

    @property
    def code_version(self) -> str:
        return str(self.manifest.get("code_version"))

    @property
    def axes(self) -> list[str]:
        """The input axes of every sweep written here (result columns), in order."""
        out: list[str] = []
        for sw in self.manifest.get("sweeps", []):
            out += [a for a in sw.get("axes", []) if a not in out]
        return out

    @property
    def traces(self) -> Path:
        return self.root / "traces"

    def parts(self) -> list[Path]:
        """Finished parts, oldest first (temporary ``.part-*`` directories are not parts)."""
        d = self.root / "parts"
        return sorted(q for q in d.glob("part-*") if (q / POINTS).is_file()) if d.is_dir() \
            else []

    # -- writing ---------------------------------------------------------------------------
    def append(self, points: Sequence[dict[str, Any]],
               layers: Sequence[dict[str, list[Any]]]) -> Path:
        """Write one part holding ``points`` and their ``layers`` (column dicts), atomically."""
        pq = _pq()
        import pyarrow as pa

        pts = pa.Table.from_pandas(pd.DataFrame(list(points)), preserve_index=False)
        lay_t = pa.Table.from_pandas(layer_frame(layers), preserve_index=False)
        target = self.root / "parts" / f"part-{time.time_ns():020d}-{os.getpid()}"

        def fill(tmp: Path) -> None:
            pq.write_table(pts, tmp / POINTS)
            pq.write_table(lay_t, tmp / LAYERS)

        return replace_dir_atomic(target, fill, lambda old: False)

    # -- reading ---------------------------------------------------------------------------
    def done(self) -> set[str]:
        """Hashes of every finished point."""
        pq = _pq()
        out: set[str] = set()
        for part in self.parts():
            out.update(pq.read_table(part / POINTS, columns=["point_hash"])
                       .column("point_hash").to_pylist())
        return out

    def _read(self, name: str) -> pd.DataFrame:
        pq = _pq()
        frames = [pq.read_table(part / name).to_pandas() for part in self.parts()]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame({"point_hash": pd.Series([], dtype=object)})
        return pd.concat(frames, ignore_index=True)

    def points(self) -> pd.DataFrame:
        """One row per finished point (parts in the order they were written)."""
        return self._read(POINTS)

    def layers(self) -> pd.DataFrame:
        """One row per finished point x layer."""
        return self._read(LAYERS)
