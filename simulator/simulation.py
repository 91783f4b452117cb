"""``simulate(arch, workload) -> Report``: map every layer, run its tiles, collect results.

Layers run one after another, each in its own SimPy environment: nothing of a layer is
prefetched during the previous one (no inter-layer pipelining), so network cycles are the sum
of layer cycles, as in SCALE-Sim.
"""

from __future__ import annotations

from simulator.arch.accelerator import Accelerator, build
from simulator.arch.config import ArchConfig
from simulator.arch.placement import place_and_map
from simulator.cost.actions import count_actions
from simulator.cost.table import EnergyTable
from simulator.cost.table_file import table_for
from simulator.engine import run_tiles
from simulator.mapping.schedule import MAX_TILES, LayerMapping, check_size
from simulator.report import LayerResult, Report
from simulator.workload.layer import Layer, Workload


def map_layer(layer: Layer, acc: Accelerator, seed: int = 0) -> LayerMapping:
    """Map one layer onto the accelerator's PE array (GEMMs; with several arrays, the one its
    placement rule chooses, :mod:`simulator.arch.placement`) or vector unit (the rest),
    through the one :class:`~simulator.hardware.unit.ComputeUnit` interface.

    ``seed`` draws the random masks of operands that carry only a density."""
    return place_and_map(layer, acc, seed)


def run_layer(layer: Layer, acc: Accelerator, seed: int = 0) -> LayerResult:
    """Map and simulate one layer."""
    m = map_layer(layer, acc, seed)
    t = m.tiles
    check_size(layer.name, "tiles", t.n_tiles, MAX_TILES, "MAX_TILES")
    timing = run_tiles(t, acc.dram, in_slots=min(acc.buffers["ifmap"].slots,
                                                 acc.buffers["filter"].slots),
                       out_slots=acc.buffers["ofmap"].slots)
    reads = {k: int(v.sum()) for k, v in (("ifmap", t.ifmap_load_bytes),
                                         ("filter", t.filter_load_bytes),
                                         ("psum", t.psum_load_bytes))}
    writes = int(t.store_bytes.sum())
    total = timing.total_cycles
    n_pes = acc.unit(m.unit).n_pes
    gemm = layer.kind == "gemm"
    c = m.counts
    actions = count_actions(layer, m, timing, acc)
    return LayerResult(
        layer=layer.name, op=layer.op, unit=m.unit, M=layer.M, K=layer.K, N=layer.N,
        groups=layer.count, macs=layer.macs, folds=m.folds, tiles=t.n_tiles,
        compute_cycles=m.compute_cycles, stall_cycles=total - m.compute_cycles,
        total_cycles=total,
        effectual_macs=c["effectual_macs"], skipped_macs=c["skipped_macs"],
        gated_macs=c["gated_macs"], weight_density=m.weight_density,
        act_density=m.act_density, load_imbalance=m.load_imbalance,
        weight_metadata_bytes=c["weight_metadata_bytes"],
        act_metadata_bytes=c["act_metadata_bytes"],
        pe_kind=m.pe_kind, weight_bits=m.weight_bits, act_bits=m.act_bits,
        macs_per_pe_per_cycle=m.macs_per_pe_per_cycle,
        pe_utilisation=(c["effectual_macs"] / (n_pes * m.macs_per_pe_per_cycle * total)
                        if gemm and total else 0.0),
        compute_utilisation=(c["effectual_macs"]
                             / (n_pes * m.macs_per_pe_per_cycle * m.compute_cycles)
                             if gemm and m.compute_cycles > 0 else 0.0),
        mapping_efficiency=m.mapping_efficiency,
        sram_ifmap_reads=c["sram_ifmap_reads"], sram_filter_reads=c["sram_filter_reads"],
        sram_ofmap_writes=c["sram_ofmap_writes"], sram_ofmap_reads=c["sram_ofmap_reads"],
        dram_ifmap_read_bytes=reads["ifmap"], dram_filter_read_bytes=reads["filter"],
        dram_psum_read_bytes=reads["psum"], dram_read_bytes=sum(reads.values()),
        dram_write_bytes=writes, dram_busy_cycles=timing.dram_busy_cycles, actions=actions,
        notes=m.notes)


def simulate(arch: ArchConfig, workload: Workload,
             energy_table: EnergyTable | None = None) -> Report:
    """Simulate ``workload`` on ``arch``; pure (no printing, no files, no global state).

    Energy: ``energy_table`` if given, else the one ``arch.energy_table`` names, else the
    default 45 nm table (:func:`simulator.cost.table_file.table_for`). Every counted action
    must have an entry (one :class:`~simulator.errors.EnergyError` lists all missing ones).
    """
    acc = build(arch)
    if len(acc.units) == 1:
        acc.pe_array.check_workload(workload.layers)
    results = tuple(run_layer(layer, acc, workload.seed) for layer in workload.layers)
    if len(acc.units) > 1:  # each array with the layers its placement gave it
        for name, unit in acc.units.items():
            unit.check_workload([la for la, r in zip(workload.layers, results, strict=True)
                                 if r.unit == name])
    variants = {a for r in results for (_, a) in r.actions if "@" in a}
    table = energy_table if energy_table is not None else table_for(arch, acc, variants)
    table.require(k for r in results for k in r.actions)
    return Report(arch=arch.name, workload=workload.name, n_pes=acc.pe_array.n_pes,
                  clock_mhz=arch.clock_mhz, results=results, energy_table=table,
                  unit_pes={**{n: u.n_pes for n, u in acc.units.items()},
                            "vector_unit": acc.vector_unit.n_pes})
