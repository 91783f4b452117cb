"""Import SCALE-Sim ``.cfg`` architectures (topology CSVs: :mod:`simulator.workload.topology`).

Mapping of a SCALE-Sim 3.0.0 config (keys of its ``scale_config.py``) onto approxsim:

* ``ArrayHeight``/``ArrayWidth``/``Dataflow`` -> ``pe_array`` (systolic, MAC PEs);
* ``IfmapSramSzkB``/``FilterSramSzkB``/``OfmapSramSzkB`` -> double-buffered SRAMs whose
  array-side port is unlimited (SCALE-Sim feeds the array at full rate);
* ``Bandwidth`` (words per cycle) -> DRAM bandwidth; the clock is set to 1000 MHz so that
  GB/s equals bytes per cycle (SCALE-Sim reports cycles only, so the clock is only a unit);
  SCALE-Sim has no DRAM latency, so latency is 0;
* ``WordSize`` (bytes, optional, default 1 as SCALE-Sim's fixed word) -> operand bits;
* SCALE-Sim has no energy model, so its files carry no DRAM energy: the importer sets
  ``dram.energy_pj_per_bit`` from its ``dram_pj_per_bit`` argument, by default
  :data:`SCALESIM_DRAM_PJ_PER_BIT` = 8 pJ/bit (LPDDR4, CACTI as used by Accelergy;
  reference/energy.md), the same value the bundled ``scalesim_32x32_*.yaml`` state;
* the mapping is SCALE-Sim's: ``mapping: {search: false}`` (the dataflow's fixed fold order,
  one array fold per tile, the whole streamed dimension per fold), so that compute cycles are
  SCALE-Sim's exactly and operands are re-fetched along the same order; an approxsim YAML of
  the same hardware (``arch_configs/scalesim_32x32_*.yaml``) searches its tiling instead;
* read and without effect on cycles: ``run_name``, the address offsets, request-buffer
  sizes, ``InterfaceBandwidth`` (CALC/USER), ``TopologyCsvLoc`` and the ``[layout]`` bank keys
  while custom layouts are off;
* rejected by name: ``MemoryBanks`` > 1, custom layouts, ``SparsitySupport = true`` and
  ``UseRamulatorTrace = True`` (not modelled; say so rather than ignore them), any unknown key.
"""

from __future__ import annotations

import configparser
import math
from pathlib import Path
from typing import Any

from simulator.arch.config import ArchConfig, parse_arch
from simulator.errors import ConfigError
from simulator.files import check_file

_KNOWN: dict[str, set[str]] = {
    "general": {"run_name"},
    "architecture_presets": {
        "arrayheight", "arraywidth", "ifmapsramszkb", "filtersramszkb", "ofmapsramszkb",
        "ifmapoffset", "filteroffset", "ofmapoffset", "bandwidth", "dataflow", "memorybanks",
        "readrequestbuffer", "writerequestbuffer", "wordsize"},
    "layout": {f"{op}{k}" for op in ("ifmap", "filter")
               for k in ("customlayout", "srambankbandwidth", "srambanknum", "srambankport")},
    "sparsity": {"sparsitysupport", "sparserep", "optimizedmapping", "blocksize",
                 "randomnumbergeneratorseed", "nonzeroelems"},
    "run_presets": {"interfacebandwidth", "userammulatortrace", "useramulatortrace"},
    "network_presets": {"topologycsvloc"},
}


#: approxsim fields set from SCALE-Sim keys (for error messages in the user's terms).
_CFG_KEYS = {
    "pe_array.rows": "architecture_presets.ArrayHeight",
    "pe_array.cols": "architecture_presets.ArrayWidth",
    "pe_array.dataflow": "architecture_presets.Dataflow",
    "pe_array.weight_bits": "architecture_presets.WordSize",
    "pe_array.act_bits": "architecture_presets.WordSize",
    "buffers.ifmap.size_kb": "architecture_presets.IfmapSramSzkB",
    "buffers.filter.size_kb": "architecture_presets.FilterSramSzkB",
    "buffers.ofmap.size_kb": "architecture_presets.OfmapSramSzkB",
    "buffers.ifmap.word_bits": "architecture_presets.WordSize",
    "buffers.filter.word_bits": "architecture_presets.WordSize",
    "buffers.ofmap.word_bits": "architecture_presets.WordSize",
    "dram.bandwidth_gb_per_s": "architecture_presets.Bandwidth (words per cycle x WordSize)",
    "name": "general.run_name",
}

#: DRAM energy given to imported SCALE-Sim configs (module docstring): LPDDR4, 8 pJ/bit.
SCALESIM_DRAM_PJ_PER_BIT = 8.0


def load_scalesim_cfg(path: str | Path, *,
                      dram_pj_per_bit: float = SCALESIM_DRAM_PJ_PER_BIT) -> ArchConfig:
    """Read a SCALE-Sim ``.cfg`` file as an approxsim architecture (see module docstring)."""
    p = Path(path)
    check_file(p, ConfigError, "a SCALE-Sim .cfg file")
    cp = configparser.ConfigParser(strict=True)
    try:
        cp.read_string(p.read_text(encoding="utf-8-sig"), source=str(p))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), [("", f"not a valid SCALE-Sim config: {exc}")]) from None
    errors: list[tuple[str, str]] = []
    for section in cp.sections():
        if section not in _KNOWN:
            errors.append((section, f"unknown section; expected {sorted(_KNOWN)}"))
            continue
        errors += [(f"{section}.{key}", "unknown SCALE-Sim key") for key in cp[section]
                   if key not in _KNOWN[section]]
    a = cp["architecture_presets"] if cp.has_section("architecture_presets") else {}

    def num(key: str, cast: type = int, default: Any = None) -> Any:
        raw = a.get(key.lower())
        if raw is None:
            if default is None:
                errors.append((f"architecture_presets.{key}", "required key is missing"))
            return default
        try:
            return cast(raw.split(",")[0].strip())
        except ValueError:
            errors.append((f"architecture_presets.{key}", f"must be a number (got {raw!r})"))
            return default

    def flag(section: str, key: str) -> bool:
        return cp.has_option(section, key) and cp.get(section, key).strip().lower() == "true"

    if num("MemoryBanks", int, 1) not in (1, None):
        errors.append(("architecture_presets.MemoryBanks", "only 1 bank is modelled"))
    for op in ("Ifmap", "Filter"):
        if flag("layout", f"{op}CustomLayout"):
            errors.append((f"layout.{op}CustomLayout", "custom SRAM layouts are not modelled"))
    if flag("sparsity", "SparsitySupport"):
        errors.append(("sparsity.SparsitySupport", "SCALE-Sim sparsity is not imported; "
                                                   "configure pe_array sparsity in a YAML arch"))
    if flag("run_presets", "UseRamulatorTrace"):
        errors.append(("run_presets.UseRamulatorTrace", "Ramulator traces are not modelled"))
    word = num("WordSize", int, 1)
    rows, cols = num("ArrayHeight"), num("ArrayWidth")
    sizes = [num(f"{op}SramSzkB", float) for op in ("Ifmap", "Filter", "Ofmap")]
    bandwidth = num("Bandwidth", float)
    dataflow = a.get("dataflow", "").strip() if a else ""
    if errors:
        raise ConfigError(str(p), errors)
    name = cp.get("general", "run_name", fallback=p.stem).strip() or p.stem
    data = {
        "name": name, "clock_mhz": 1000.0,
        "pe_array": {"impl": "systolic", "rows": rows, "cols": cols, "dataflow": dataflow,
                     "weight_bits": 8 * word, "act_bits": 8 * word},
        "buffers": {op: {"impl": "sram", "size_kb": size, "word_bits": 8 * word,
                         "bandwidth_words": math.inf, "double_buffered": True}
                    for op, size in zip(("ifmap", "filter", "ofmap"), sizes, strict=True)},
        "dram": {"impl": "dram", "bandwidth_gb_per_s": bandwidth * word, "latency_ns": 0.0,
                 "channels": 1, "energy_pj_per_bit": dram_pj_per_bit},
        "mapping": {"search": False},
    }
    try:
        return parse_arch(data, source=str(p))
    except ConfigError as exc:  # name the .cfg keys the user wrote, not our fields
        raise ConfigError(str(p), [(_CFG_KEYS.get(path, path), msg)
                                   for path, msg in exc.errors]) from None
