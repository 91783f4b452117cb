"""Energy of one layer split into the categories a report stacks (they sum to ``energy_pj``).

From the layer's action counts x its energy table (:mod:`simulator.cost.actions` names them):

====================  ==================================================================
column                actions
====================  ==================================================================
``energy_arith_pj``   ``pe_array`` arithmetic: ``mac`` (``mac@<format><w>x<a>`` at a layer's
                      own precision), ``mac_gated``, a PE kind's own operations
                      (``shift_add``, ``xnor_popcount``, ...), ``codebook_read``
``energy_pe_local_pj`` ``pe_array`` registers, array network and idle PEs: ``*_rf_read``,
                      ``*_rf_write``, ``*_hop``, ``mac_idle``, ``halo_psum`` (SCNN halos)
``energy_vector_pj``  ``vector_unit`` operations
``energy_ifmap_pj``,  each SRAM's reads and writes, less its metadata share
``energy_filter_pj``,
``energy_ofmap_pj``
``energy_dram_pj``    DRAM reads and writes, less the metadata share
``energy_metadata_pj`` compressed-format metadata moved through the SRAMs and DRAM
``energy_leakage_pj`` ``leak_cycle`` of every on-chip component
``energy_other_pj``   any component not above (none today; kept so the sum stays exact)
====================  ==================================================================

**Metadata attribution.** Metadata is stored beside the values (:mod:`simulator.mapping.formats`)
and moves with them, so it takes the share ``f = meta / (meta + values)`` of an operand's
stored bits of that operand's traffic: ``f_w`` of the filter SRAM's energy and of the DRAM
reads of filters, ``f_a`` of the ifmap SRAM's and of the DRAM reads of inputs (DRAM read
energy is split by operand in proportion to the bytes read, exact since DRAM energy is per
bit). ``meta`` is the layer's ``weight_metadata_bytes`` (``act_metadata_bytes``) and
``values`` its nonzeros at their bits, ``density x elements x bits`` of the GEMM view
(weights ``groups x K x N``, inputs ``groups x M x K``): exact for bitmask formats; for CSR /
RLE the padding entries count as values, so ``f`` is slightly high there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from simulator.cost.table import EnergyTable
from simulator.report import LayerResult

CATEGORIES = ("arith", "pe_local", "vector", "ifmap", "filter", "ofmap", "dram", "metadata",
              "leakage", "other")
COLUMNS = tuple(f"energy_{c}_pj" for c in CATEGORIES)
_LOCAL_SUFFIXES = ("_rf_read", "_rf_write", "_hop")


def _share(meta_bytes: int, density: float, elements: int, bits: int) -> float:
    meta = 8.0 * meta_bytes
    if meta <= 0:
        return 0.0
    return meta / (meta + density * elements * bits)


def categories(r: LayerResult, table: EnergyTable) -> dict[str, float]:
    """``{column: pJ}`` of one layer (module docstring); the values sum to its energy."""
    parts: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    sram = {"ifmap": 0.0, "filter": 0.0, "ofmap": 0.0}
    dram_read = dram_write = 0.0
    e = table.entries
    for (comp, act), n in r.actions.items():
        pj = n * e[(comp, act)].pj
        if act == "leak_cycle":
            parts["leakage"].append(pj)
        elif comp == "pe_array":
            local = act in ("mac_idle", "halo_psum") or act.endswith(_LOCAL_SUFFIXES)
            parts["pe_local" if local else "arith"].append(pj)
        elif comp == "vector_unit":
            parts["vector"].append(pj)
        elif comp in sram:
            sram[comp] += pj
        elif comp == "dram" and act == "read_bit":
            dram_read += pj
        elif comp == "dram":
            dram_write += pj
        else:
            parts["other"].append(pj)
    read_bytes = r.dram_read_bytes
    dram_in = dram_read * r.dram_ifmap_read_bytes / read_bytes if read_bytes else 0.0
    dram_w = dram_read * r.dram_filter_read_bytes / read_bytes if read_bytes else 0.0
    f_w = _share(r.weight_metadata_bytes, r.weight_density, r.groups * r.K * r.N, r.weight_bits)
    f_a = _share(r.act_metadata_bytes, r.act_density, r.groups * r.M * r.K, r.act_bits)
    meta = {"filter": f_w * sram["filter"], "ifmap": f_a * sram["ifmap"]}
    meta_dram = f_w * dram_w + f_a * dram_in
    for op, pj in sram.items():
        parts[op].append(pj - meta.get(op, 0.0))
    parts["dram"].append(dram_read + dram_write - meta_dram)
    parts["metadata"] += [meta["filter"], meta["ifmap"], meta_dram]
    return {f"energy_{c}_pj": math.fsum(v) for c, v in parts.items()}


def total_categories(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Network sums of :func:`categories` rows."""
    return {c: math.fsum(r[c] for r in rows) for c in COLUMNS}
