"""Results: one :class:`LayerResult` per layer, collected in a :class:`Report` of DataFrames.

Columns carry their units in their names (``*_cycles``, ``*_bytes``); SRAM reads and writes
are counted in operand elements (SCALE-Sim's "words" at one element per word).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from simulator.cost.metrics import energy_totals
from simulator.cost.table import EnergyTable, layer_energy_pj, price
from simulator.errors import OutputError
from simulator.files import check_output_dir, replace_dir_atomic, safe_name, write_atomic

LAYER_COLUMNS = [
    "layer", "op", "unit", "M", "K", "N", "groups", "loop_order", "tile_M", "tile_K", "tile_N",
    "resident", "macs", "effectual_macs", "effectual_macs_ignoring_padding", "skipped_macs",
    "gated_macs", "weight_density", "act_density", "load_imbalance", "folds", "tiles",
    "compute_cycles", "stall_cycles", "total_cycles", "pe_utilisation", "compute_utilisation",
    "mapping_efficiency", "sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes",
    "sram_ofmap_reads", "dram_ifmap_read_bytes", "dram_filter_read_bytes",
    "dram_psum_read_bytes", "dram_read_bytes", "dram_write_bytes", "dram_busy_cycles",
    "weight_metadata_bytes", "act_metadata_bytes", "preload_bytes", "pe_kind", "weight_bits",
    "act_bits", "macs_per_pe_per_cycle", "energy_pj",
]
_NOT_SUMMED = ("loop_order", "tile_M", "tile_K", "tile_N", "resident", "pe_utilisation",
               "compute_utilisation", "mapping_efficiency", "weight_density", "act_density",
               "load_imbalance", "energy_pj", "pe_kind", "weight_bits", "act_bits",
               "macs_per_pe_per_cycle")


#: The files of a result set per format, its manifest, and the manifest's format tag.
RESULT_FILES = {"csv": ("layers.csv", "totals.csv", "actions.csv", "energy.csv"),
                "json": ("report.json",)}
MANIFEST = "manifest.json"
RESULT_FORMAT = "approxsim-result/1"


def _manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a result set directory, or None if it is not one."""
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == RESULT_FORMAT else None


@dataclass(frozen=True, slots=True)
class LayerResult:
    """What happened in one layer: cycles, traffic and action counts."""

    layer: str
    op: str
    unit: str
    M: int
    K: int
    N: int
    groups: int
    loop_order: str
    tile_M: int
    tile_K: int
    tile_N: int
    resident: str
    macs: int
    effectual_macs: int
    effectual_macs_ignoring_padding: int
    skipped_macs: int
    gated_macs: int
    weight_density: float
    act_density: float
    load_imbalance: float
    folds: int
    tiles: int
    compute_cycles: int
    stall_cycles: int
    total_cycles: int
    pe_utilisation: float
    compute_utilisation: float
    mapping_efficiency: float
    sram_ifmap_reads: int
    sram_filter_reads: int
    sram_ofmap_writes: int
    sram_ofmap_reads: int
    dram_ifmap_read_bytes: int
    dram_filter_read_bytes: int
    dram_psum_read_bytes: int
    dram_read_bytes: int
    dram_write_bytes: int
    dram_busy_cycles: int
    weight_metadata_bytes: int
    act_metadata_bytes: int
    preload_bytes: int
    pe_kind: str
    weight_bits: int
    act_bits: int
    macs_per_pe_per_cycle: float
    actions: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: what the compute unit did that a reader should know (padding, compressed storage)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Preload:
    """The one-off load of weights pinned on chip (``residency: {weights: preload}``):
    outside every per-inference figure."""

    dram_read_bytes: int = 0
    cycles: int = 0
    energy_pj: float = 0.0


@dataclass(frozen=True)
class Report:
    """The result of ``simulate(arch, workload)``: per-layer rows and network totals."""

    arch: str
    workload: str
    n_pes: int
    clock_mhz: float
    results: tuple[LayerResult, ...]
    energy_table: EnergyTable | None = None
    #: PEs of every PE array by name (several with ``pe_arrays:``)
    unit_pes: Mapping[str, int] = field(default_factory=dict)
    preload: Preload = Preload()

    @cached_property
    def layers(self) -> pd.DataFrame:
        """One row per layer, columns :data:`LAYER_COLUMNS` (``energy_pj``: counts x table)."""
        import pandas as pd

        fields = [c for c in LAYER_COLUMNS if c != "energy_pj"]  # priced below; no asdict copy
        rows = [{k: getattr(r, k) for k in fields} for r in self.results]
        df = pd.DataFrame(rows, columns=LAYER_COLUMNS)
        df["energy_pj"] = self.layer_energy_pj
        return df

    @cached_property
    def layer_energy_pj(self) -> list[float]:
        """Each layer's energy (the ``energy_pj`` column of :attr:`layers`, without a frame)."""
        return layer_energy_pj([r.actions for r in self.results], self.energy_table)

    @cached_property
    def units(self) -> pd.DataFrame:
        """One row per compute unit that ran a layer: its layers, MACs, effectual MACs, busy
        cycles (its layers' total cycles; units never overlap) and utilisation: its PEs'
        busy share (effectual MACs at each layer's rate) of the whole network's time, and of
        its own layers' time (``utilisation_when_active``)."""
        import pandas as pd

        df = self.layers
        total = int(df["total_cycles"].sum())
        rows = []
        for unit, g in df.groupby("unit", sort=False):
            pes = self.unit_pes.get(str(unit), 0)
            busy = float((g["effectual_macs"] / g["macs_per_pe_per_cycle"].where(
                g["macs_per_pe_per_cycle"] > 0, 1.0)).sum())
            cyc = int(g["total_cycles"].sum())
            rows.append({"unit": unit, "layers": len(g), "n_pes": pes,
                         "macs": int(g["macs"].sum()),
                         "effectual_macs": int(g["effectual_macs"].sum()),
                         "busy_cycles": cyc, "time_share": cyc / total if total else 0.0,
                         "utilisation": busy / (pes * total) if pes and total else math.nan,
                         "utilisation_when_active": busy / (pes * cyc) if pes and cyc
                         else math.nan,
                         "energy_pj": float(g["energy_pj"].sum())})
        return pd.DataFrame(rows)

    @property
    def notes(self) -> list[str]:
        """Every layer's notes (padding to the datapath, compressed storage), in order."""
        return [n for r in self.results for n in r.notes]

    @cached_property
    def energy(self) -> pd.DataFrame:
        """Long table: ``arch, layer, component, action, count, pj_per_action, energy_pj``."""
        return price(self.actions, self.energy_table)

    @cached_property
    def actions(self) -> pd.DataFrame:
        """Long table of action counts: ``arch, layer, component, action, count``."""
        import pandas as pd

        rows = [(self.arch, r.layer, comp, act, n)
                for r in self.results for (comp, act), n in r.actions.items()]
        return pd.DataFrame(rows, columns=["arch", "layer", "component", "action", "count"])

    @cached_property
    def totals(self) -> dict[str, Any]:
        """Whole-network totals; utilisation is MAC-weighted over the network's cycles.

        Computed from the layer results without a frame, with the arithmetic of the frame's
        column sums (pandas sums skip NaN; a float column makes every sum float64), so the
        values are those of summing :attr:`layers` (``tests/test_report.py`` checks both)."""
        import numpy as np

        res = self.results
        energy = self.layer_energy_pj

        def col(c: str) -> np.ndarray:
            return np.array([getattr(r, c) for r in res]) if res else np.zeros(0)

        summed = [c for c in LAYER_COLUMNS[7:] if c not in _NOT_SUMMED and c != "preload_bytes"]
        cols = {c: col(c) for c in summed}
        raw = {c: np.nansum(a) if a.dtype.kind == "f" else a.sum() for c, a in cols.items()}
        if any(a.dtype.kind == "f" for a in cols.values()):  # the frame's sum: one float64
            raw = {c: np.float64(v) for c, v in raw.items()}  # Series for every column
        sums = {c: int(v) for c, v in raw.items()}
        gemm = cols["folds"] > 0
        folds, comp = cols["folds"][gemm], cols["compute_cycles"][gemm]
        eff, util = col("mapping_efficiency")[gemm], col("compute_utilisation")[gemm]
        used = float(np.nansum(eff * folds))
        total = sums["total_cycles"]
        n_gemm = int(gemm.sum())
        return {
            "arch": self.arch, "workload": self.workload, "layers": len(res), **sums,
            "pe_utilisation": (float(np.nansum(col("pe_utilisation") * cols["total_cycles"]))
                               / total if total else 0.0),
            "compute_utilisation": (float(np.nansum(util * comp)) / float(comp.sum())
                                    if n_gemm else 0.0),
            "mapping_efficiency": used / float(folds.sum()) if n_gemm else 0.0,
            "latency_us": total / self.clock_mhz,
            **energy_totals(math.fsum(energy), total, self.clock_mhz, sums["macs"],
                            self.energy_table.area_mm2 if self.energy_table else {},
                            sums["effectual_macs"], self._onchip_pj()),
            "preload_dram_bytes": self.preload.dram_read_bytes,
            "preload_cycles": self.preload.cycles, "preload_energy_pj": self.preload.energy_pj,
        }

    def _onchip_pj(self) -> float:
        """Energy of every component but the off-chip DRAM (kind ``offchip``): the
        :attr:`energy` rows' sum, priced as they are (float count x pJ), without the frame."""
        if self.energy_table is None:
            return math.nan
        e = self.energy_table.entries
        return math.fsum(float(n) * e[k].pj for r in self.results for k, n in r.actions.items()
                         if e[k].kind != "offchip")

    def write(self, directory: str | Path, fmt: str = "csv", *, name: str | None = None,
              inputs: Mapping[str, str] | None = None) -> list[Path]:
        """Write the result set into ``directory/<name>/``, atomically as a whole.

        ``csv``: ``layers.csv``, ``totals.csv``, ``actions.csv``, ``energy.csv``; ``json``:
        ``report.json``; both with ``manifest.json`` (format, arch, workload, ``inputs``, the
        files). ``name`` (default ``<arch>__<workload>``) is made a safe file name
        (:func:`~simulator.files.safe_name`): file contents never choose a path. The set is
        built beside the target and swapped in (:func:`~simulator.files.replace_dir_atomic`):
        an interrupted write leaves the old set or the new one. An existing directory is
        replaced only if it is a result set and, when ``inputs`` are given (e.g. the input
        files' paths), of the same inputs; otherwise :class:`~simulator.errors.OutputError`.
        Returns the files written.
        """
        if fmt not in RESULT_FILES:
            raise ValueError(f"format must be 'csv' or 'json' (got {fmt!r})")
        out = check_output_dir(directory)
        target = out / safe_name(name if name is not None else f"{self.arch}__{self.workload}")
        given = dict(inputs or {})
        texts = self._texts(fmt)
        manifest = {"format": RESULT_FORMAT, "arch": self.arch, "workload": self.workload,
                    "inputs": given, "files": list(texts)}
        old = _manifest(target)
        if target.exists() and old is None:
            raise OutputError(f"{target}: exists and is not an approxsim result set "
                              f"(no readable {MANIFEST}); not replaced")
        if old is not None and given and old.get("inputs") and old["inputs"] != given:
            raise OutputError(f"{target}: holds results of other inputs ({old['inputs']}); "
                              f"choose another name (--name) or directory")

        def fill(tmp: Path) -> None:
            for file, text in texts.items():
                write_atomic(tmp / file, text)
            write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=2))

        replace_dir_atomic(target, fill, lambda p: _manifest(p) is not None)
        return [target / file for file in texts]

    def _texts(self, fmt: str) -> dict[str, str]:
        import pandas as pd

        if fmt == "json":
            return {"report.json": self.to_json()}
        return {"layers.csv": self.layers.to_csv(index=False),
                "totals.csv": pd.DataFrame([self.totals]).to_csv(index=False),
                "actions.csv": self.actions.to_csv(index=False),
                "energy.csv": self.energy.to_csv(index=False)}

    def to_json(self) -> str:
        return json.dumps({"totals": self.totals,
                           "layers": json.loads(self.layers.to_json(orient="records"))},
                          indent=2)
