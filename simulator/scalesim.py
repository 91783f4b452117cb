"""Import SCALE-Sim files: ``.cfg`` architectures and topology CSVs (conv and GEMM forms).

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
  ../shared/reference/energy.md), the same value the bundled ``scalesim_32x32_*.yaml`` state;
* read and without effect on cycles: ``run_name``, the address offsets, request-buffer
  sizes, ``InterfaceBandwidth`` (CALC/USER), ``TopologyCsvLoc`` and the ``[layout]`` bank keys
  while custom layouts are off;
* rejected by name: ``MemoryBanks`` > 1, custom layouts, ``SparsitySupport = true`` and
  ``UseRamulatorTrace = True`` (not modelled; say so rather than ignore them), any unknown key.
"""

from __future__ import annotations

import configparser
import csv
import math
from pathlib import Path
from typing import Any

from simulator.config import ArchConfig, parse_arch
from simulator.errors import ConfigError, WorkloadError
from simulator.workload import Layer, Workload, touched

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


#: DRAM energy given to imported SCALE-Sim configs (module docstring): LPDDR4, 8 pJ/bit.
SCALESIM_DRAM_PJ_PER_BIT = 8.0


def load_scalesim_cfg(path: str | Path, *,
                      dram_pj_per_bit: float = SCALESIM_DRAM_PJ_PER_BIT) -> ArchConfig:
    """Read a SCALE-Sim ``.cfg`` file as an approxsim architecture (see module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), [("", "file not found")])
    cp = configparser.ConfigParser(strict=True)
    try:
        cp.read_string(p.read_text(encoding="utf-8"), source=str(p))
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
    }
    return parse_arch(data, source=str(p))


_CONV = ["layer name", "ifmap height", "ifmap width", "filter height", "filter width",
         "channels", "num filter", "strides"]
_GEMM = ["layer", "m", "n", "k"]


def load_topology(path: str | Path, *, ofmap_rounding: str = "scalesim") -> Workload:
    """Read a SCALE-Sim topology CSV (conv or GEMM form) as a workload.

    Conv form IFMAP sizes already include padding (SCALE-Sim has no padding field). The output
    size is SCALE-Sim's ``ceil((H - F + S) / S)`` with ``ofmap_rounding="scalesim"`` or the
    correct ``floor((H - F) / S) + 1`` with ``"floor"``. Layers whose name contains ``DP`` are
    depthwise as in SCALE-Sim: one single-channel GEMM per input channel. An optional
    sparsity-ratio column must be ``1:1`` (dense); sparse workloads come from network specs.
    """
    p = Path(path)
    if ofmap_rounding not in ("scalesim", "floor"):
        raise ValueError(f"ofmap_rounding must be 'scalesim' or 'floor' (got {ofmap_rounding!r})")
    if not p.is_file():
        raise WorkloadError(str(p), [("", "file not found")])
    try:
        rows = [r for r in csv.reader(p.read_text(encoding="utf-8").splitlines())
                if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise WorkloadError(str(p), [("", f"not a readable CSV: {exc}")]) from None
    if not rows:
        raise WorkloadError(str(p), [("", "empty topology file")])
    header = [c.strip().lower() for c in rows[0] if c.strip()]
    if header[:8] == _CONV:
        form, width = "conv", 8
    elif header[:4] == _GEMM:
        form, width = "gemm", 4
    else:
        raise WorkloadError(str(p), [("line 1", f"unknown header {rows[0]!r}; expected "
                                                f"SCALE-Sim's conv form ({', '.join(_CONV)}) "
                                                f"or GEMM form ({', '.join(_GEMM)})")])
    errors: list[tuple[str, str]] = []
    layers: list[Layer] = []
    for lineno, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        while cells and cells[-1] == "":
            cells.pop()
        where = f"line {lineno}"
        if len(cells) not in (width, width + 1):
            errors.append((where, f"expected {width} values (+ optional sparsity ratio), "
                                  f"got {len(cells)}"))
            continue
        if len(cells) == width + 1 and cells[-1].replace(" ", "") != "1:1":
            errors.append((f"{where}.sparsity", f"only dense '1:1' is imported (got "
                                                f"{cells[-1]!r})"))
            continue
        name = cells[0]
        try:
            vals = [int(c) for c in cells[1:width]]
        except ValueError:
            errors.append((where, f"values must be integers (got {cells[1:width]})"))
            continue
        if min(vals) <= 0:
            errors.append((where, f"values must be positive (got {vals})"))
            continue
        try:
            layers.append(_topology_layer(name, form, vals, ofmap_rounding))
        except ValueError as exc:
            errors.append((f"{where} ({name})", str(exc)))
    if errors:
        raise WorkloadError(str(p), errors)
    if not layers:
        raise WorkloadError(str(p), [("", "no layers")])
    return Workload(p.stem, tuple(layers), source=f"SCALE-Sim topology {p.name}", path=str(p))


def _topology_layer(name: str, form: str, vals: list[int], rounding: str) -> Layer:
    if form == "gemm":
        m, n, k = vals
        return Layer(name, "gemm", "gemm", M=m, K=k, N=n, ifmap_elements=m * k,
                     filter_elements=k * n, ofmap_elements=m * n,
                     dims={"M": m, "N": n, "K": k})
    h, w, fh, fw, ch, nf, s = vals
    if fh > h or fw > w:
        raise ValueError(f"filter {fh}x{fw} is larger than the ifmap {h}x{w}")
    if rounding == "scalesim":
        oh, ow = -(-(h - fh + s) // s), -(-(w - fw + s) // s)
    else:
        oh, ow = (h - fh) // s + 1, (w - fw) // s + 1
    groups, k_ch = (ch, 1) if "DP" in name else (1, ch)
    return Layer(name, "conv2d", "gemm", M=oh * ow, K=fh * fw * k_ch, N=nf, count=groups,
                 ifmap_elements=touched(h, oh, fh, s) * touched(w, ow, fw, s) * ch,
                 filter_elements=fh * fw * ch * nf,
                 ofmap_elements=oh * ow * nf * groups,
                 dims={"ifmap_h": h, "ifmap_w": w, "filter_h": fh, "filter_w": fw,
                       "channels": ch, "num_filter": nf, "stride": s})
