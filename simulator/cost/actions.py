"""Action counts of one simulated layer, keyed ``(component, action)``: counts, never costs.

Energy is computed afterwards as counts x an :class:`~simulator.cost.table.EnergyTable`
(STYLE.md rule 2), so changing the technology never touches this module. Components are named
by instance: ``pe_array``, ``vector_unit``, ``ifmap``, ``filter``, ``ofmap``, ``dram``.

**Arithmetic** (``pe_array``). ``dequantize``: one per weight (or KV-cache) value read into
the array when the operand is stored quantised and computed at the activation precision
(``Operand.dequantize``: ``s (q - z)`` at the array edge). ``mac``: multiply-accumulates
that fire (all MACs minus the skipped and the gated ones: a zero operand that is neither
skipped nor gated costs a full MAC;
a PE kind's own operations instead, scaled the same way; an engine that computes products
that land on no output, as SCNN's Cartesian product does, reports them in
``computed_macs`` and they fire too); ``mac_gated``: MACs whose zero operand was detected and
gated (no cycle saved, little energy; Eyeriss). A MAC is priced at the *layer's* precision:
when the multiplier's operands (the decoded weight and the activation, ``LayerMapping``
``weight_bits``/``act_bits``) differ from the PE's own widths, the action is named
``mac@<format><w>x<a>`` (e.g. ``mac@int4x8``, ``mac@fp16x16``) and the energy table
produces its entry from the same model (:mod:`simulator.cost.models`); so does
``mac_gated``. ``mac_idle``: PE-cycles of the layer's compute time in which a PE did nothing,
``n_pes * compute_cycles - busy`` with ``busy = scheduled MACs / macs_per_pe_per_cycle`` (a
bit-serial PE is busy 8 cycles per 8-bit MAC, an XNOR PE one cycle per 64-bit word). The
sparsity model provides ``skipped_macs`` / ``gated_macs`` in the mapping's counts; without
them a layer is dense (every MAC fires, none gated).

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
psum leaves at the last PE as an ofmap write). Scheduled = fired + gated: **values still
flow through a gated PE, so a systolic array's hops are charged for gated work**; gating
removes the MAC and the stationary operand's register read (and, in ``os``, the
accumulator's read and write). The hop covers the wire and the receiving pipeline register;
the multiplier reads that register directly. Not counted (small next to the terms above):
the preload path of the stationary operand and the buffer-side partial-sum adder.

**Vector unit**: ``vector_op`` per primitive op; a function computed by segments or a table
(:mod:`simulator.workload.approx`) adds its stages, ``compare`` (range clamp), ``mul_add``
(segment index, evaluation) at the lane's width, ``lut_read_bit`` (the table entry read per
evaluation, in bits) and ``lut_write_bit`` (loading the table).

**Packed words.** A PE kind that reduces ``pack`` operand pairs per step into one partial sum
(``LayerMapping.values_per_word``: 64 for a 64-bit XNOR word, ``F`` for a Bit Fusion unit,
``lanes`` for a bit-serial PE) reads and writes its accumulator, and passes its partial sum
on, once per word: ``psum_rf_*`` and ``psum_hop`` are counted per word (MACs / pack).
Operand registers and hops are counted per element at the element's width, which is the
same energy as per packed word at the word's width (``pack x bits``), because every table
prices a register access and a hop linearly in its bits.

**SRAM** (``ifmap``/``filter``/``ofmap``): ``read``/``write`` in words of that buffer's
``word_bits``: the array-side traffic of the mapping (operand elements at their bit width,
packed; a compressed operand at its exact stored bits per element incl. metadata, which
may be fractional: the layer's bits are summed, then rounded up to whole words once;
partial sums at ``acc_bits`` when K is spatial, as the mapping's port model) plus the
DMA side: DRAM loads are SRAM writes, DRAM stores are ofmap reads; an output kept on chip
for the next layer (``residency: {activations: keep}``) is an ofmap read and an ifmap
write. Engines add their own array-side reads in ``sram_<buffer>_read_bits`` (e.g. EIE's
column pointers).

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
from simulator.hardware.pe import PE_KINDS
from simulator.mapping.schedule import LayerMapping
from simulator.workload.layer import Layer

Actions = dict[tuple[str, str], int]
#: On-chip components that leak every cycle.
LEAKY = ("pe_array", "vector_unit", "ifmap", "filter", "ofmap")
#: Every action this module can count, by kind of component (energy tables are checked
#: against it: an entry for an action that is never counted is a typo, not a price).
#: ``pe_array`` adds each PE kind's own arithmetic (:func:`known_actions`).
ACTIONS: dict[str, frozenset[str]] = {
    "pe_array": frozenset({"mac", "mac_gated", "mac_idle", "codebook_read", "leak_cycle",
                           "halo_psum", "dequantize"}
                          | {f"{op}_rf_{rw}" for op in ("ifmap", "filter", "psum")
                             for rw in ("read", "write")}
                          | {f"{op}_hop" for op in ("ifmap", "filter", "psum")}),
    "vector_unit": frozenset({"vector_op", "leak_cycle", "compare", "mul_add",
                              "lut_read_bit", "lut_write_bit"}),
    "buffer": frozenset({"read", "write", "leak_cycle"}),
    "dram": frozenset({"read_bit", "write_bit"}),
}
#: Instance name -> kind of component.
INSTANCES = {"pe_array": "pe_array", "vector_unit": "vector_unit", "ifmap": "buffer",
             "filter": "buffer", "ofmap": "buffer", "dram": "dram"}


def known_actions(kind: str) -> frozenset[str]:
    """The actions counted for a component of ``kind`` (``pe_array``: incl. every PE kind's
    arithmetic, from its own ``actions``)."""
    if kind != "pe_array":
        return ACTIONS[kind]
    from_kinds = {name for impl in PE_KINDS.names for name in PE_KINDS.get(impl).action_names()}
    return ACTIONS["pe_array"] | from_kinds


def _words(elements: float, bits: float, word_bits: int) -> int:
    """SRAM words moved by ``elements`` values of ``bits`` each (may be fractional: the exact
    total is rounded up once), packed into ``word_bits``."""
    total = elements * bits
    return math.ceil(total / word_bits - 1e-9) if total > 0 else 0


def precision_suffix(mapping: LayerMapping, pe: Any) -> str:
    """``""`` when the layer's multiplier operands are the PE's own widths, else
    ``"@<format><w>x<a>"`` (module docstring)."""
    w = mapping.weight_bits or pe.weight_bits
    a = mapping.act_bits or pe.act_bits
    if (w, a) == (pe.weight_bits, pe.act_bits):
        return ""
    return f"@{mapping.number_format}{w}x{a}"


def _arith(layer: Layer, counts: Mapping[str, Any], fired: int, gated: int,
           suffix: str, unit: str = "pe_array") -> Actions:
    """Arithmetic actions of a GEMM layer: ``mac`` split by sparsity, or a PE kind's own.

    A PE kind's dense counts (``arith.*`` from the mapping, incl. ``codebook_read``) are scaled
    by the share of MACs that fire (not skipped, not gated): a zero that is neither skipped nor
    gated costs a full operation. The share is of the MACs the counts were taken on
    (``arith_view_macs``: the pruned shape), so filters, channels or N:M groups removed from
    the shape are not discounted a second time."""
    kind_counts = {k[6:]: int(v) for k, v in counts.items() if k.startswith("arith.")}
    if not kind_counts:
        return {(unit, "mac" + suffix): fired, (unit, "mac_gated" + suffix): gated}
    dense = int(counts.get("arith_view_macs", counts.get("computed_macs", layer.macs)))
    share = fired / dense if dense else 0.0
    out = {(unit, name + (suffix if name == "mac" else "")): round(n * share)
           for name, n in kind_counts.items()}
    out[(unit, "mac_gated" + suffix)] = gated
    return out


def leaky(acc: Accelerator) -> tuple[str, ...]:
    """The on-chip components of ``acc`` that leak every cycle: its compute units (``pe_array``
    for a single array), the vector unit and the three SRAMs."""
    return (*acc.units, *LEAKY[1:])


def _pe_actions(layer: Layer, mapping: LayerMapping, pe: Any, unit: str,
                reads: Mapping[str, int], writes: int) -> Actions:
    """Arithmetic, PE-local storage and array-network actions of a GEMM on PE unit ``unit``."""
    c = mapping.counts
    gated = int(c.get("gated_macs", 0))
    computed = int(c.get("computed_macs", layer.macs - int(c.get("skipped_macs", 0))))
    fired = computed - gated
    scheduled = fired + gated
    out = _arith(layer, c, fired, gated, precision_suffix(mapping, pe), unit)
    if c.get("dequantized_values"):  # weight-only / KV-cache quantisation
        out[(unit, "dequantize")] = int(c["dequantized_values"])
    busy = scheduled / mapping.macs_per_pe_per_cycle
    out[(unit, "mac_idle")] = max(0, round(pe.n_pes * mapping.compute_cycles - busy))
    pack = mapping.values_per_word
    edge = {"ifmap": reads["ifmap"], "filter": reads["filter"], "psum": writes}
    # (EIE- and SCNN-like engines accumulate outputs in their PEs: psum-stationary; an FFT
    # unit's registers and accumulators are inside its priced actions: "none")
    stationary = mapping.stationary
    if stationary == "all":
        out.update(_row_stationary(c, fired, unit))
    elif stationary != "none":
        for op, enters in edge.items():
            if op != stationary:
                steps = -(-scheduled // pack) if op == "psum" else scheduled
                out[(unit, f"{op}_hop")] = max(0, steps - enters)
    if stationary == "psum":
        out[(unit, "psum_rf_read")] = -(-fired // pack)
        out[(unit, "psum_rf_write")] = -(-fired // pack)
    elif stationary not in ("none", "all"):
        out[(unit, f"{stationary}_rf_write")] = edge[stationary]
        out[(unit, f"{stationary}_rf_read")] = fired
    for name, n in c.items():  # an engine's own PE-local actions (``pe.<action>``)
        if name.startswith("pe."):
            out[(unit, name[3:])] = int(n)
    return out


def _row_stationary(c: Mapping[str, Any], fired: int, pe: str = "pe_array") -> Actions:
    """Row-stationary PEs (``stationary == "all"``, :mod:`simulator.mapping.rowstationary`):
    every MAC reads its ifmap and filter scratchpads and reads and writes its psum
    scratchpad; the scratchpads are filled over the array network (one hop per word written,
    as the mapping counts them), and partial sums move up the PE-set columns
    (``rs.psum_hop``). ``pe``: the unit that ran the layer."""
    return {(pe, "ifmap_rf_read"): fired, (pe, "filter_rf_read"): fired,
            (pe, "psum_rf_read"): fired, (pe, "psum_rf_write"): fired,
            (pe, "ifmap_rf_write"): int(c["rs.ifmap_rf_write"]),
            (pe, "filter_rf_write"): int(c["rs.filter_rf_write"]),
            (pe, "ifmap_hop"): int(c["rs.ifmap_rf_write"]),
            (pe, "filter_hop"): int(c["rs.filter_rf_write"]),
            (pe, "psum_hop"): int(c["rs.psum_hop"])}


def count_actions(layer: Layer, mapping: LayerMapping, timing: Timing,
                  acc: Accelerator) -> Actions:
    """All action counts of one layer (module docstring); every count is a Python ``int``.

    Actions are keyed by the unit that ran the layer (``mapping.unit``: a PE array, or the
    vector unit, which may also run a block-circulant GEMM in the frequency domain)."""
    c: Mapping[str, Any] = mapping.counts
    t = mapping.tiles
    total = timing.total_cycles
    pe = acc.units.get(mapping.unit)
    bufs = acc.buffers
    act_bits = layer.act_bits or (pe or acc.pe_array).act_bits
    reads = {op: int(c.get(f"sram_{op}_reads", 0)) for op in ("ifmap", "filter", "ofmap")}
    writes = int(c.get("sram_ofmap_writes", 0))
    load = {"ifmap": int(t.ifmap_load_bytes.sum()), "filter": int(t.filter_load_bytes.sum()),
            "psum": int(t.psum_load_bytes.sum())}
    store = int(t.store_bytes.sum())
    out: Actions = {}
    bits: dict[str, float]
    if layer.kind == "gemm" and pe is not None:
        out.update(_pe_actions(layer, mapping, pe, mapping.unit, reads, writes))
        w_bits = layer.weight_bits or pe.weight_bits
        bits = {"ifmap": act_bits, "filter": w_bits if layer.filter_is_weight else act_bits,
                "ofmap": act_bits if mapping.stationary in ("psum", "none")
                else mapping.acc_bits}
    else:  # the mapping's own counts (an approximated function's stages), else flat ops
        vec = {k[4:]: int(v) for k, v in c.items() if k.startswith("vec.")}
        for name, n in (vec or {"vector_op": int(layer.vector_ops)}).items():
            out[("vector_unit", name)] = n
        bits = {"ifmap": act_bits, "filter": act_bits,
                "ofmap": math.ceil(layer.output_bits or act_bits)}
    # compressed formats: values + metadata per element as stored (mapping.storage_bits)
    bits.update(mapping.storage_bits)
    wb = {op: bufs[op].params.word_bits for op in ("ifmap", "filter", "ofmap")}
    extra = {op: float(c.get(f"sram_{op}_read_bits", 0)) for op in ("ifmap", "filter", "ofmap")}
    kept = int(mapping.kept_bytes)  # outputs kept on chip: ofmap -> ifmap buffer, no DRAM
    out[("ifmap", "read")] = _words(1, reads["ifmap"] * bits["ifmap"] + extra["ifmap"],
                                    wb["ifmap"])
    out[("ifmap", "write")] = _words(load["ifmap"] + kept, 8, wb["ifmap"])
    out[("filter", "read")] = _words(1, reads["filter"] * bits["filter"] + extra["filter"],
                                     wb["filter"])
    out[("filter", "write")] = _words(load["filter"], 8, wb["filter"])
    out[("ofmap", "read")] = (_words(1, reads["ofmap"] * bits["ofmap"] + extra["ofmap"],
                                     wb["ofmap"])
                              + _words(store + kept, 8, wb["ofmap"]))
    out[("ofmap", "write")] = (_words(writes, bits["ofmap"], wb["ofmap"])
                               + _words(load["psum"], 8, wb["ofmap"]))
    out[("dram", "read_bit")] = 8 * sum(load.values())
    out[("dram", "write_bit")] = 8 * store
    for comp in leaky(acc):
        out[(comp, "leak_cycle")] = int(total)
    return out
