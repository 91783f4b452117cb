"""Action counts of one simulated layer, keyed ``(component, action)``: counts, never costs.

Energy is computed afterwards as counts x an :class:`~simulator.cost.table.EnergyTable`
(STYLE.md rule 2), so changing the technology never touches this module. Components are named
by instance: ``pe_array``, ``vector_unit``, ``ifmap``, ``filter``, ``ofmap``, ``dram``.

**Arithmetic** (``pe_array``). ``dequantize``: one per weight (or KV-cache) value read into
the array when the operand is stored quantised and computed at the activation precision
(``Operand.dequantize``: ``s (q - z)`` at the array edge). ``mac``: multiply-accumulates
that fire (all MACs minus the skipped and the gated ones: a zero operand that is neither
skipped nor gated costs a full MAC; a PE kind's own operations instead, scaled the same way);
``mac_gated``: MACs
whose zero operand was detected and gated (no cycle saved, little energy; Eyeriss);
``mac_idle``: PE-cycles of the layer's compute time in which a PE did no MAC at all,
``n_pes * compute_cycles - mac - mac_gated`` (fold fill and drain, unused rows/columns).
The sparsity model provides ``skipped_macs`` / ``gated_macs`` in the mapping's counts;
without them a layer is dense (every MAC fires, none gated).

**PE-local storage and the array network**, implied by the dataflow's reuse. Of the three
operands of a MAC (``ifmap``, ``filter``, ``psum``) one is *stationary* and two *move*:

====  ==========  ================================================================
df    stationary  PE-local accesses
====  ==========  ================================================================
ws    filter      ``filter_rf_write`` once per weight per fold (the SRAM read that
                  loads it), ``filter_rf_read`` once per MAC that fires
is    ifmap       ``ifmap_rf_write`` once per input per fold, ``ifmap_rf_read`` per MAC
os    psum        ``psum_rf_read`` + ``psum_rf_write`` per MAC that fires (the
                  accumulator is PE-local; outputs leave once, as ofmap SRAM writes)
====  ==========  ================================================================

A moving operand enters the array edge from its SRAM (one SRAM access) and then hops from PE
to neighbouring PE: every scheduled MAC position but the first of its row/column receives it
from a neighbour, so ``<operand>_hop = scheduled MACs - SRAM accesses of that operand`` (a
psum leaves at the last PE as an ofmap write). Scheduled = fired + gated: values still
flow through a gated PE. The hop covers the wire and the receiving pipeline register; the
multiplier reads that register directly. Not counted (small next to the terms above):
the preload path of the stationary operand and the buffer-side partial-sum adder.

**SRAM** (``ifmap``/``filter``/``ofmap``): ``read``/``write`` in words of that buffer's
``word_bits``: the array-side traffic of the mapping (operand elements at their bit width,
packed; partial sums at ``acc_bits`` when K is spatial, as the mapping's port model) plus the
DMA side: DRAM loads are SRAM writes, DRAM stores are ofmap reads.

**DRAM**: ``read_bit``/``write_bit``. **Leakage**: ``leak_cycle`` of every on-chip component
(PE array, vector unit, the three SRAMs) for every cycle of the layer, busy or not. DRAM
background power is outside the accelerator's budget and not counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from simulator.arch.accelerator import Accelerator
from simulator.engine import Timing
from simulator.mapping.schedule import LayerMapping
from simulator.workload.layer import Layer

Actions = dict[tuple[str, str], int]
#: On-chip components that leak every cycle.
LEAKY = ("pe_array", "vector_unit", "ifmap", "filter", "ofmap")


def _words(elements: int, bits: int, word_bits: int) -> int:
    """SRAM words moved by ``elements`` values of ``bits`` each, packed into ``word_bits``."""
    return -(-elements * bits // word_bits) if elements > 0 else 0


def _arith(layer: Layer, counts: Mapping[str, Any], fired: int, gated: int) -> Actions:
    """Arithmetic actions of a GEMM layer: ``mac`` split by sparsity, or a PE kind's own.

    A PE kind's dense counts (``arith.*`` from the mapping, incl. ``codebook_read``) are scaled
    by the share of MACs that fire (not skipped, not gated): a zero that is neither skipped nor
    gated costs a full operation."""
    kind_counts = {k[6:]: int(v) for k, v in counts.items() if k.startswith("arith.")}
    if not kind_counts:
        return {("pe_array", "mac"): fired, ("pe_array", "mac_gated"): gated}
    share = fired / layer.macs if layer.macs else 0.0
    out = {("pe_array", name): round(n * share) for name, n in kind_counts.items()}
    out[("pe_array", "mac_gated")] = gated
    return out


def count_actions(layer: Layer, mapping: LayerMapping, timing: Timing,
                  acc: Accelerator) -> Actions:
    """All action counts of one layer (module docstring); every count is a Python ``int``."""
    c: Mapping[str, Any] = mapping.counts
    t = mapping.tiles
    total = timing.total_cycles
    pe = acc.pe_array
    bufs = acc.buffers
    act_bits = layer.act_bits or pe.act_bits
    gemm = layer.kind == "gemm"
    reads = {op: int(c.get(f"sram_{op}_reads", 0)) for op in ("ifmap", "filter", "ofmap")}
    writes = int(c.get("sram_ofmap_writes", 0))
    load = {"ifmap": int(t.ifmap_load_bytes.sum()), "filter": int(t.filter_load_bytes.sum()),
            "psum": int(t.psum_load_bytes.sum())}
    store = int(t.store_bytes.sum())
    out: Actions = {}
    if gemm:
        gated = int(c.get("gated_macs", 0))
        fired = layer.macs - int(c.get("skipped_macs", 0)) - gated
        scheduled = fired + gated
        out.update(_arith(layer, c, fired, gated))
        if c.get("dequantized_values"):  # weight-only / KV-cache quantisation
            out[("pe_array", "dequantize")] = int(c["dequantized_values"])
        out[("pe_array", "mac_idle")] = max(0, acc.pe_array.n_pes * mapping.compute_cycles
                                            - scheduled)
        edge = {"ifmap": reads["ifmap"], "filter": reads["filter"], "psum": writes}
        # (EIE- and SCNN-like engines accumulate outputs in their PEs: psum-stationary)
        stationary = mapping.stationary
        for op, enters in edge.items():
            if op != stationary:
                out[("pe_array", f"{op}_hop")] = max(0, scheduled - enters)
        if stationary == "psum":
            out[("pe_array", "psum_rf_read")] = fired
            out[("pe_array", "psum_rf_write")] = fired
        else:
            out[("pe_array", f"{stationary}_rf_write")] = edge[stationary]
            out[("pe_array", f"{stationary}_rf_read")] = fired
        w_bits = layer.weight_bits or pe.weight_bits
        bits = {"ifmap": act_bits, "filter": w_bits if layer.filter_is_weight else act_bits,
                "ofmap": act_bits if stationary == "psum" else mapping.acc_bits}
        # compressed formats: values + metadata per element as stored (mapping.storage_bits)
        bits.update({op: math.ceil(b) for op, b in mapping.storage_bits.items()})
    else:
        out[("vector_unit", "vector_op")] = int(layer.vector_ops)
        bits = {"ifmap": act_bits, "filter": act_bits,
                "ofmap": math.ceil(layer.output_bits or act_bits)}
    wb = {op: bufs[op].params.word_bits for op in ("ifmap", "filter", "ofmap")}
    out[("ifmap", "read")] = _words(reads["ifmap"], bits["ifmap"], wb["ifmap"])
    out[("ifmap", "write")] = _words(load["ifmap"], 8, wb["ifmap"])
    out[("filter", "read")] = _words(reads["filter"], bits["filter"], wb["filter"])
    out[("filter", "write")] = _words(load["filter"], 8, wb["filter"])
    out[("ofmap", "read")] = (_words(reads["ofmap"], bits["ofmap"], wb["ofmap"])
                              + _words(store, 8, wb["ofmap"]))
    out[("ofmap", "write")] = (_words(writes, bits["ofmap"], wb["ofmap"])
                               + _words(load["psum"], 8, wb["ofmap"]))
    out[("dram", "read_bit")] = 8 * sum(load.values())
    out[("dram", "write_bit")] = 8 * store
    for comp in LEAKY:
        out[(comp, "leak_cycle")] = int(total)
    return out
