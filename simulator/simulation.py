"""``simulate(arch, workload) -> Report``: map every layer, run its tiles, collect results.

Layers run one after another, each in its own SimPy environment: nothing of a layer is
prefetched during the previous one (no inter-layer pipelining), so network cycles are the sum
of layer cycles, as in SCALE-Sim.

**What survives a layer** (the architecture's ``residency:``,
:mod:`simulator.mapping.options`), planned here in layer order:

* ``weights: preload``: each layer's weights are pinned in the filter buffer while they fit
  beside those pinned before (a prefix of the network: pinning stops at the first layer whose
  weights do not fit, so the capacity left for the layers that stream is known when they are
  mapped). Pinned weights cost no per-inference DRAM traffic or buffer space; moving them in
  once is the ``preload`` (``Report.preload``: bytes, cycles at the DRAM's bandwidth plus one
  latency, and energy: DRAM reads and filter-buffer writes), outside the per-inference totals.
* ``activations: keep``: a layer's output stays in the ifmap buffer when it fits beside every
  tensor kept there and still awaited by a consumer (``Workload.producers``: the network's
  real edges, residual adds included), and leaves it after its last consumer. Its consumers
  load it from nowhere; the last layer's output goes to DRAM. Each layer maps with the buffer
  capacity left beside the kept tensors (halved for double buffering).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from simulator.arch.accelerator import Accelerator, build
from simulator.arch.config import ArchConfig
from simulator.arch.placement import place_and_map
from simulator.cost.actions import count_actions, leaky
from simulator.cost.table import EnergyTable
from simulator.cost.table_file import TableFiles, table_for
from simulator.engine import run_tiles
from simulator.errors import SimulatorError
from simulator.mapping.options import BufferView, MappingContext, MappingCosts, SharedMemo
from simulator.mapping.schedule import MAX_TILES, LayerMapping, check_size
from simulator.mapping.search import choose_all
from simulator.memo import (
    LayerCache,
    LayerKeys,
    MaskHashes,
    Outcome,
    base_key,
    context_key,
    renamed,
)
from simulator.memo import key as memo_key
from simulator.report import LayerResult, Preload, Report
from simulator.workload.layer import Layer, Workload


def map_layer(layer: Layer, acc: Accelerator, seed: int = 0,
              ctx: MappingContext | None = None,
              unit_costs: Mapping[str, MappingCosts] | None = None) -> LayerMapping:
    """Map one layer onto the accelerator's PE array (GEMMs; with several arrays, the one its
    placement rule chooses, :mod:`simulator.arch.placement`) or vector unit (the rest),
    through the one :class:`~simulator.hardware.unit.ComputeUnit` interface.

    ``seed`` draws the random masks of operands that carry only a density; ``ctx`` the
    mapping options and residency (default: the architecture's options, nothing on chip);
    ``unit_costs`` the search's prices per unit (default: ``ctx.costs`` for every unit)."""
    ctx = ctx if ctx is not None else MappingContext(params=acc.arch.mapping)
    m = place_and_map(layer, acc, seed, ctx, unit_costs)
    return _strip_resident(m, ctx)


def _strip_resident(m: LayerMapping, ctx: MappingContext) -> LayerMapping:
    """Operands the context says are on chip never load, whatever the unit did."""
    t = m.tiles
    zero = {f"{op}_load_bytes": getattr(t, f"{op}_load_bytes") * 0
            for op in ("ifmap", "filter") if op in ctx.resident
            and getattr(t, f"{op}_load_bytes").any()}
    if not zero:
        return m
    tiles = dataclasses.replace(t, **zero)
    tiles = dataclasses.replace(tiles, head_load_bytes=np.minimum(t.head_load_bytes,
                                                                  tiles.load_bytes))
    return dataclasses.replace(m, tiles=tiles)


def run_layer(layer: Layer, acc: Accelerator, seed: int = 0,
              ctx: MappingContext | None = None, preload_bytes: int = 0) -> LayerResult:
    """Map and simulate one layer."""
    return _result(layer, map_layer(layer, acc, seed, ctx), acc, preload_bytes)


def _result(layer: Layer, m: LayerMapping, acc: Accelerator, preload_bytes: int) -> LayerResult:
    t = m.tiles
    check_size(layer.name, "tiles", t.n_tiles, MAX_TILES, "MAX_TILES")
    check_size(layer.name, "tiles", t.n_tiles, MAX_TILES, "MAX_TILES")
    timing = run_tiles(t, acc.dram, in_slots=min(acc.buffers["ifmap"].slots,
                                                 acc.buffers["filter"].slots),
                       out_slots=acc.buffers["ofmap"].slots)
    reads = {k: int(v.sum()) for k, v in (("ifmap", t.ifmap_load_bytes),
                                         ("filter", t.filter_load_bytes),
                                         ("psum", t.psum_load_bytes))}
    total = timing.total_cycles
    n_pes = acc.unit(m.unit).n_pes
    gemm = layer.kind == "gemm"
    c = m.counts
    peak = n_pes * m.macs_per_pe_per_cycle
    return LayerResult(
        layer=layer.name, op=layer.op, unit=m.unit, M=layer.M, K=layer.K, N=layer.N,
        groups=layer.count, macs=layer.macs, folds=m.folds, tiles=t.n_tiles,
        loop_order=m.loop_order, tile_M=m.tile_dims.get("M", 0),
        tile_K=m.tile_dims.get("K", 0), tile_N=m.tile_dims.get("N", 0), resident=m.resident,
        compute_cycles=m.compute_cycles, stall_cycles=total - m.compute_cycles,
        total_cycles=total,
        effectual_macs=c["effectual_macs"],
        effectual_macs_ignoring_padding=c.get("effectual_macs_ignoring_padding",
                                              c["effectual_macs"]),
        skipped_macs=c["skipped_macs"], gated_macs=c["gated_macs"],
        weight_density=m.weight_density, act_density=m.act_density,
        load_imbalance=m.load_imbalance,
        weight_metadata_bytes=c["weight_metadata_bytes"],
        act_metadata_bytes=c["act_metadata_bytes"],
        pe_kind=m.pe_kind, weight_bits=m.weight_bits, act_bits=m.act_bits,
        macs_per_pe_per_cycle=m.macs_per_pe_per_cycle,
        pe_utilisation=c["effectual_macs"] / (peak * total) if gemm and total else 0.0,
        compute_utilisation=(c["effectual_macs"] / (peak * m.compute_cycles)
                             if gemm and m.compute_cycles > 0 else 0.0),
        mapping_efficiency=m.mapping_efficiency,
        sram_ifmap_reads=c["sram_ifmap_reads"], sram_filter_reads=c["sram_filter_reads"],
        sram_ofmap_writes=c["sram_ofmap_writes"], sram_ofmap_reads=c["sram_ofmap_reads"],
        dram_ifmap_read_bytes=reads["ifmap"], dram_filter_read_bytes=reads["filter"],
        dram_psum_read_bytes=reads["psum"], dram_read_bytes=sum(reads.values()),
        dram_write_bytes=int(t.store_bytes.sum()), dram_busy_cycles=timing.dram_busy_cycles,
        preload_bytes=preload_bytes, actions=count_actions(layer, m, timing, acc),
        notes=m.notes)


def mapping_costs(table: EnergyTable, acc: Accelerator, unit: str = "pe_array") -> MappingCosts:
    """The search's prices for PE array ``unit`` from the energy table (an absent entry: 0,
    see MappingCosts); leakage of every on-chip component, whichever unit is busy."""
    e = table.entries

    def pj(comp: str, action: str) -> float:
        entry = e.get((comp, action))
        return entry.pj if entry is not None else 0.0

    stationary = getattr(acc.units.get(unit, acc.pe_array), "stationary", "psum")
    stationary = {"all": "filter"}.get(stationary, stationary)  # row-stationary: spad fills
    stationary = stationary if stationary in ("ifmap", "filter") else ""
    return MappingCosts(
        dram_read_per_byte=8 * pj("dram", "read_bit"),
        dram_write_per_byte=8 * pj("dram", "write_bit"),
        sram_read={b: pj(b, "read") for b in acc.buffers},
        sram_write={b: pj(b, "write") for b in acc.buffers},
        mac=pj(unit, "mac"), mac_idle=pj(unit, "mac_idle"),
        rf_write=pj(unit, f"{stationary}_rf_write") if stationary else 0.0,
        hop=pj(unit, "ifmap_hop"),
        leak_per_cycle=math.fsum(pj(comp, "leak_cycle") for comp in leaky(acc)),
        dram_bytes_per_cycle=acc.dram.bytes_per_cycle,
        dram_latency_cycles=acc.dram.latency_cycles)


@dataclass
class _Residency:
    """The residency plan's running state (module docstring)."""

    acc: Accelerator
    workload: Workload
    base: MappingContext
    unit_costs: Mapping[str, MappingCosts] | None = None
    pinned: float = 0.0
    pinning: bool = True
    live: dict[int, float] = field(default_factory=dict)  # kept layer -> bytes
    last_use: dict[int, int] = field(default_factory=dict)
    preload_bytes: list[int] = field(default_factory=list)
    producers: list[tuple[int, ...]] = field(default_factory=list)
    #: the layer memo (None: every layer mapped and simulated, the long way) and its keys
    cache: LayerCache | None = None
    base_key: str = ""
    hashes: MaskHashes = field(default_factory=MaskHashes)
    layer_keys: LayerKeys = field(default_factory=LayerKeys)
    named: frozenset[str] = frozenset()
    #: layers mapped ahead (:func:`_search_ahead`), by memo key, each used once
    mapped: dict[object, LayerMapping] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.producers = self.workload.producers()
        for i, srcs in enumerate(self.producers):
            for s in srcs:
                if s >= 0:
                    self.last_use[s] = max(self.last_use.get(s, -1), i)

    def view(self, name: str, used: float) -> BufferView:
        b = self.acc.buffers[name]
        left = max(b.capacity_bytes - used, 0.0)
        return BufferView(left, left / b.slots, b.bits_per_cycle, b.params.word_bits)

    def context(self, i: int, layer: Layer) -> tuple[MappingContext, bool]:
        """Layer ``i``'s mapping context in the plan's current state, and whether its output
        is to stay on chip."""
        srcs = self.producers[i]
        resident, kept_share = self._inputs_on_chip(layer, srcs)
        out_bytes = self._out_bytes(i)
        live = sum(self.live.values())
        keep = (self.acc.arch.residency.activations == "keep" and i in self.last_use
                and live + out_bytes <= self.acc.buffers["ifmap"].capacity_bytes)
        views = {"ifmap": self.view("ifmap", live + (out_bytes if keep else 0.0)),
                 "filter": self.view("filter", self.pinned), "ofmap": self.view("ofmap", 0.0)}
        return dataclasses.replace(self.base, resident=frozenset(resident), keep_output=keep,
                                   buffers=views, kept_inputs=kept_share), keep

    def advance(self, i: int, keep: bool, kept_bytes: float) -> None:
        """Layer ``i`` ran: inputs past their last use leave, a kept output stays."""
        for s in self.producers[i]:
            if self.last_use.get(s) == i:
                self.live.pop(s, None)
        if keep and kept_bytes:
            self.live[i] = self._out_bytes(i)

    def run(self, i: int, layer: Layer, seed: int) -> LayerResult:
        res = self.acc.arch.residency
        ctx, keep = self.context(i, layer)
        pin = res.weights == "preload" and self.pinning and layer.kind == "gemm" \
            and layer.filter_is_weight
        out = None
        if pin:
            room = self.acc.buffers["filter"].capacity_bytes - self.pinned
            out = self._outcome(layer, seed, dataclasses.replace(
                ctx, resident=ctx.resident | {"filter"}), True, room)
            if out.result is None:
                self.pinning, out = False, None
        preload = 0
        if out is None:
            out = self._outcome(layer, seed, ctx, False, math.inf)
        else:
            preload = math.ceil(out.weight_bytes)
            self.pinned += out.weight_bytes
        self.preload_bytes.append(preload)
        self.advance(i, keep, out.kept_bytes)
        assert out.result is not None
        return renamed(out.result, layer, preload)

    def _outcome(self, layer: Layer, seed: int, ctx: MappingContext, pin: bool,
                 room: float) -> Outcome:
        """Map ``layer`` in ``ctx`` and, if its weights fit ``room`` (pinned), simulate it;
        from the memo when an equal layer ran in an equal context (:mod:`simulator.memo`)."""
        k = None
        if self.cache is not None:
            k = memo_key(self.base_key, layer, ctx, pin, self.hashes,
                         by_name=layer.name in self.named, layers=self.layer_keys)
            hit = self.cache.get(k)
            if hit is not None and (hit.result is not None or hit.weight_bytes > room):
                return hit if hit.weight_bytes <= room else Outcome(None, hit.weight_bytes,
                                                                    hit.kept_bytes)
        ahead = self.mapped.pop(k, None) if k is not None else None
        m = map_layer(layer, self.acc, seed, ctx, self.unit_costs) if ahead is None else ahead
        result = _result(layer, m, self.acc, 0) if m.weight_bytes <= room else None
        out = Outcome(result, m.weight_bytes, m.kept_bytes)
        if k is not None and self.cache is not None:
            self.cache.put(k, out)
        return out

    def _inputs_on_chip(self, layer: Layer, srcs: tuple[int, ...]) -> tuple[set[str], float]:
        """Operands already on chip (a GEMM's input, a matmul's right operand) and the share
        of a vector layer's input bytes that is."""
        if layer.kind == "gemm":
            ops = ("ifmap", "filter")[: len(srcs)] if not layer.filter_is_weight else ("ifmap",)
            return {op for op, s in zip(ops, srcs, strict=False) if s in self.live}, 0.0
        total = layer.ifmap_elements * (layer.act_bits or self.acc.pe_array.act_bits) / 8
        kept = sum(self.live[s] for s in srcs if s in self.live)
        if srcs and all(s in self.live for s in srcs):
            return {"ifmap"}, 1.0
        return set(), min(kept / total, 1.0) if total else 0.0

    def _out_bytes(self, i: int) -> float:
        layer = self.workload.layers[i]
        return layer.ofmap_elements * (layer.act_bits or self.acc.pe_array.act_bits) / 8


def simulate(arch: ArchConfig, workload: Workload,
             energy_table: EnergyTable | None = None, *, cache: LayerCache | None = None,
             memo: bool = True) -> Report:
    """Simulate ``workload`` on ``arch``; pure (no printing, no files, no global state).

    Energy: ``energy_table`` if given, else the one ``arch.energy_table`` names, else the
    default 45 nm table (:func:`simulator.cost.table_file.table_for`). Every counted action
    must have an entry (one :class:`~simulator.errors.EnergyError` lists all missing ones).
    The table also prices the tiling search's candidates (:mod:`simulator.mapping.search`).

    Identical layers are mapped and simulated once (:mod:`simulator.memo`): within this call
    always (``memo=False`` runs every layer, the long way), across calls when the same
    ``cache`` (a :class:`~simulator.memo.LayerCache`) is passed to each; that cache also
    keeps the energy-table files parsed and the tiling search's candidate geometry per grid.
    """
    acc = build(arch)
    if len(acc.units) == 1:
        acc.pe_array.check_workload(workload.layers)
    # the search prices candidates with the architecture's table (without the per-format
    # variants, which only the counted actions name), each PE array at its own entries
    # energy and area files parsed once per cache (a sweep's chunk of points), else per call
    files = cache.tables if memo and cache is not None else TableFiles()
    prices = energy_table if energy_table is not None else table_for(arch, acc, files=files)
    unit_costs = {name: mapping_costs(prices, acc, name) for name in acc.units}
    base = MappingContext(params=arch.mapping, costs=unit_costs[next(iter(acc.units))],
                          memo={}, geometry=(cache.geometry if memo and cache is not None
                                             else SharedMemo[object]()))
    plan = _Residency(acc, workload, base, unit_costs)
    if memo:
        plan.cache = cache if cache is not None else LayerCache()
        arch_text = repr((dataclasses.replace(arch, name="", source="", warnings=()),
                          sorted((n, repr(c)) for n, c in unit_costs.items())))
        plan.base_key = base_key(arch_text, base, workload.seed)
        plan.named = frozenset(name for u in acc.units.values()
                               for name in getattr(getattr(u, "params", None), "folding", {}))
        if getattr(getattr(acc.placement, "params", None), "layers", None):
            plan.named = frozenset(la.name for la in workload.layers)  # placed by name
        _search_ahead(plan)
    results = tuple(plan.run(i, layer, workload.seed) for i, layer in enumerate(workload.layers))
    if len(acc.units) > 1:  # each array with the layers its placement gave it
        for name, unit in acc.units.items():
            unit.check_workload([la for la, r in zip(workload.layers, results, strict=True)
                                 if r.unit == name])
    variants = {a for r in results for (_, a) in r.actions if "@" in a}
    # no per-format variants: the counted actions' table is the one the search priced with
    table = prices if energy_table is not None or not variants else table_for(
        arch, acc, variants, files)
    table.require(k for r in results for k in r.actions)
    return Report(arch=arch.name, workload=workload.name, n_pes=acc.pe_array.n_pes,
                  clock_mhz=arch.clock_mhz, results=results, energy_table=table,
                  unit_pes={**{n: u.n_pes for n, u in acc.units.items()},
                            "vector_unit": acc.vector_unit.n_pes},
                  preload=_preload(sum(plan.preload_bytes), acc, table))


#: tiles of the layers mapped ahead that :func:`_search_ahead` holds at most (then the rest
#: map themselves when they run; ~9 arrays of 8 bytes per tile: ~75 MB), and how many
#: layers it maps in one call
AHEAD_TILES = 1 << 20
_AHEAD_CHUNK = 64


def _search_ahead(plan: _Residency) -> None:
    """Run the tiling searches of the network's distinct GEMMs in one stacked pass
    (:func:`~simulator.mapping.search.choose_all`) before the layers run, into the memo each
    layer's own search then reads, and map those layers (``plan.mapped``, by the layer memo's
    key: a layer whose key equals one mapped ahead takes its mapping, else maps itself): an
    exact shortcut, since both memos are keyed by everything a choice or a mapping depends
    on and a layer whose context turns out different searches and maps itself. Each
    layer's context is the residency plan's, walked ahead on a copy of its state that takes
    every output the plan keeps to be kept (what the mapping reports for a layer whose
    output is to stay: its bytes). Where: no ``preload`` residency (which pins weights by the
    mapped bytes), no placement rule (one PE array), and an array that offers its searches
    (``plan_layer``: the systolic arrays, for layers without masks or sparsity)."""
    acc = plan.acc
    offer = getattr(acc.pe_array, "plan_layer", None)
    finish = getattr(acc.pe_array, "map_plans", None)
    if acc.arch.residency.weights == "preload" or acc.placement is not None \
            or offer is None or finish is None or plan.cache is None:
        return
    ahead = copy.copy(plan)
    ahead.live = dict(plan.live)
    costs = None if plan.unit_costs is None else plan.unit_costs[next(iter(acc.units))]
    seen: set[tuple[object, ...]] = set()
    planned = []
    # without kept activations every GEMM's context is the first one's (nothing on chip)
    walk = acc.arch.residency.activations == "keep"
    fixed: tuple[MappingContext, tuple[object, ...]] | None = None
    for i, layer in enumerate(plan.workload.layers):
        if walk:
            ctx, keep = ahead.context(i, layer)
            ahead.advance(i, keep, ahead._out_bytes(i))
        if layer.kind != "gemm":
            continue
        if not walk:
            if fixed is None:
                first = ahead.context(i, layer)[0]
                fixed = (first, context_key(first))
            ctx = fixed[0]
        k = memo_key(plan.base_key, layer, ctx, False, plan.hashes,
                     by_name=layer.name in plan.named,
                     ctx_key=fixed[1] if fixed is not None else None, layers=plan.layer_keys)
        if k in seen or k in plan.cache:
            continue
        seen.add(k)
        unit_ctx = ctx if costs is None else dataclasses.replace(ctx, costs=costs)
        gemm = offer(layer, acc.buffers, plan.workload.seed, unit_ctx)
        if gemm is not None:
            planned.append((k, gemm, unit_ctx))
    if len(planned) > 1:
        choose_all([g.problem for _, g, _ in planned])
    kept = 0  # tiles of the mappings held for their layers (bounded: AHEAD_TILES)
    for lo in range(0, len(planned), _AHEAD_CHUNK):
        part = planned[lo:lo + _AHEAD_CHUNK]
        try:
            mapped = finish([g for _, g, _ in part])
        except SimulatorError:  # raised again, in layer order, when the layer is mapped
            return
        for (k, _, unit_ctx), m in zip(part, mapped, strict=True):
            plan.mapped[k] = _strip_resident(m, unit_ctx)
            kept += m.tiles.n_tiles
        if kept > AHEAD_TILES:  # the rest map themselves when they run
            return


def _preload(nbytes: int, acc: Accelerator, table: EnergyTable) -> Preload:
    """The one-off load of the pinned weights: DRAM reads and filter-buffer writes."""
    if nbytes <= 0:
        return Preload()
    d = acc.dram
    cycles = d.latency_cycles + (0 if math.isinf(d.bytes_per_cycle)
                                 else math.ceil(nbytes / d.bytes_per_cycle))
    words = -(-nbytes * 8 // acc.buffers["filter"].params.word_bits)
    energy = (8 * nbytes * table.pj("dram", "read_bit") + words * table.pj("filter", "write"))
    return Preload(dram_read_bytes=nbytes, cycles=cycles, energy_pj=energy)

