"""FPGA target: a FINN-style streaming dataflow, one matrix-vector unit (MVAU) per layer.

Model (Umuroglu et al., "FINN", FPGA 2017, section 4; Blott et al., "FINN-R", ACM TRETS
11(3), 2018, section 4, whose resource model FINN implements in its MVAU's ``lut_estimation``
and ``bram_estimation``):

* A layer is its GEMM view: matrix width ``MW = K`` (the reduction), matrix height ``MH = N``
  (output neurons / channels), ``M x groups`` input vectors (output pixels x batch; groups
  run one after another).
* **Folding.** ``PE`` processing elements each own ``MH / PE`` rows of the matrix; each PE
  has ``SIMD`` lanes along ``MW``. FINN requires ``MH % PE == 0`` and ``MW % SIMD == 0``.
  Cycles of a layer = ``(MH / PE) * (MW / SIMD) * vectors`` (the folds of the matrix, once
  per input vector; FINN's ``get_exp_cycles``). Folding is given per layer
  (``folding: {layer: {pe, simd}}``) or chosen: with ``target_cycles`` the first divisor pair
  that meets it, SIMD grown first up to MW and then PE (as FINN's SetFolding); else 1 x 1.
* **Dataflow.** Every layer has its own unit, all resident at once, streaming into each other:
  throughput = clock / (cycles of the slowest layer), latency ~ sum of layer cycles (FIFO and
  sliding-window latencies not modelled). Weights live on chip; activations stream through
  FIFOs, so no DRAM traffic is counted (the input image and the result are not either).
* **LUTs** (FINN-R): ``c0 + c1 * PE * (mult + addertree + acc + thr + comp) + c2`` with
  ``c0 = 300``, ``c1 = 1.1``; ``mult = SIMD (2 ceil((W + A) / 6) - 1)(W + A)`` (0 when the
  multipliers are DSPs); ``addertree = (W + A)(2 SIMD - 1)``; ``acc = acc_bits``; thresholding
  to ``B = threshold_bits`` output bits (1 in a BNN; 0: no thresholds, outputs leave at
  ``acc_bits``): ``thr = (2^B - 1) acc_bits ceil(TMEM / 64)``, ``TMEM = MH / PE``, and
  ``comp = (2^B - 1) acc_bits``; ``c2 = PE SIMD W ceil(WMEM / 64)`` LUTs used as
  memory when the weights sit in LUTRAM (``WMEM = MW MH / (PE SIMD)`` words). With
  ``lut_model: yosys`` the logic is instead ``PE x`` the LUTs Yosys synthesised for this PE
  (:mod:`simulator.hardware.synthesis`, Xilinx 7 series flows): a binary layer's PE is an
  XNOR-popcount unit of word ``SIMD``, a wider one ``SIMD`` MAC PEs.
* **Weights** in LUTRAM when ``WMEM <= 128`` words (FINN's rule for LUT-based weight memory),
  else in block RAM (``ram_style`` overrides): RAMB18 in simple dual-port mode, packed by
  memory width ``PE SIMD W`` and depth ``WMEM`` (FINN's ``bram_estimation``: 1 x 16K, 2 x 8K,
  4 x 4K, 9 x 2K, 18 x 1K or 36 x 512 per block).
* **DSPs**: ``PE SIMD ceil((W + A) / 48)`` when multipliers map to DSP48 (``mult: dsp``, or
  ``auto`` with both operands wider than 4 bits; our rule). **FFs** (not in FINN-R; ours):
  ``PE (acc_bits + SIMD (W + A))``, operand and accumulator registers, or Yosys's count.
* **LUTNet layers** (weight scheme ``lutnet``, ``weight_bits = 2^K``: each kept connection a
  K-input LUT; Wang, Davis, Cheung, Constantinides, "LUTNet", FCCM 2019, unrolled
  architecture): fully unrolled (``PE = MH``, ``SIMD = MW``), LUT masks hardened in the fabric:
  one physical LUT per kept K-LUT (K <= 6 fits a 6-LUT), no weight memory, plus FINN-R's
  popcount tree, accumulator and threshold over the kept connections of each neuron.

A network that does not fit the device is a :class:`FpgaFitError` naming every resource over
budget; energy and area of the architecture still come from the ASIC tables (FPGA power is not
modelled).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import pandas as pd

from simulator.errors import ConfigError, MappingError
from simulator.files import read_yaml
from simulator.hardware.pe import PEKind
from simulator.hardware.pe_kinds import pe_kind
from simulator.hardware.registries import PE_ARRAYS
from simulator.hardware.synthesis import load_synthesis
from simulator.hardware.unit import ParamWidths
from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext
from simulator.mapping.schedule import Buffer, LayerMapping, even_tiles
from simulator.workload.layer import Layer

DEVICES = Path(__file__).resolve().parents[2] / "arch_configs" / "fpga" / "devices.yaml"
RESOURCES = ("luts", "lutram", "ffs", "dsps", "bram18")
C0, C1 = 300, 1.1  # FINN-R's fitted LUT overhead per unit and scale


class FpgaFitError(MappingError):
    """A layer or network needs more of a resource than the FPGA part has."""


class Device(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    description: str
    luts: int = Field(gt=0)
    lutram: int = Field(ge=0)
    ffs: int = Field(gt=0)
    dsps: int = Field(ge=0)
    bram18: int = Field(ge=0)
    source: str


def load_device(name: str, path: Path = DEVICES) -> Device:
    """The resource budget of the part ``name`` (``arch_configs/fpga/devices.yaml``)."""
    parts = read_yaml(path)
    if name not in parts:
        raise ConfigError(str(path), [("", f"unknown FPGA part {name!r}; known: "
                                           f"{sorted(parts)}")])
    return Device.model_validate(parts[name])


class Fold(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    pe: int = Field(ge=1, strict=True)
    simd: int = Field(ge=1, strict=True)


@dataclass(frozen=True, slots=True)
class LayerPlan:
    """One layer's unit: folding, cycles, where its weights live and its resources.

    ``luts`` counts every LUT (logic and memory: FINN-R's ``c2`` is part of its total, as
    Vivado's "Slice LUTs"); ``lutram`` is the part of them used as memory."""

    layer: str
    mw: int
    mh: int
    vectors: int
    pe: int
    simd: int
    cycles: int
    weights_in: str
    luts: int
    lutram: int
    ffs: int
    dsps: int
    bram18: int

    def resources(self) -> dict[str, int]:
        return {r: getattr(self, r) for r in RESOURCES}


def bram18_blocks(width_bits: int, depth: int) -> int:
    """RAMB18s (simple dual port) for a ``width_bits x depth`` memory (FINN's packing)."""
    for width, words in ((1, 16384), (2, 8192), (4, 4096), (9, 2048)):
        if width_bits <= width:
            return math.ceil(depth / words) * math.ceil(width_bits / width)
    if width_bits <= 18 or depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width_bits / 18)
    return math.ceil(depth / 512) * math.ceil(width_bits / 36)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@PE_ARRAYS.register("fpga_finn")
class FinnDataflow(ParamWidths):
    """FINN-style dataflow accelerator on an FPGA part (module docstring)."""

    class Params(BaseModel):
        model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
        device: str
        weight_bits: int = Field(default=1, gt=0, le=64, strict=True)
        act_bits: int = Field(default=1, gt=0, le=32, strict=True)
        acc_bits: int = Field(default=16, gt=0, le=64, strict=True)
        threshold_bits: int = Field(default=1, ge=0, le=16, strict=True)
        folding: dict[str, Fold] = Field(default_factory=dict)
        target_cycles: int | None = Field(default=None, gt=0)
        mult: Literal["auto", "lut", "dsp"] = "auto"
        ram_style: Literal["auto", "block", "distributed"] = "auto"
        lut_model: Literal["finn", "yosys"] = "finn"

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name, self.params = name, params
        self.device = load_device(params.device)
        binary = params.weight_bits == 1 and params.act_bits == 1
        self.kind: PEKind = pe_kind("xnor", word_bits=1) if binary else pe_kind("mac")

    @property
    def n_pes(self) -> int:
        """One unit per layer; its ``PE x SIMD`` lanes are its MACs per cycle."""
        return 1

    @property
    def vector_lanes(self) -> None:
        return None

    # -- the model -----------------------------------------------------------------------
    def _fold(self, layer: Layer, mw: int, mh: int, vectors: int) -> tuple[int, int]:
        p = self.params
        if layer.weight.scheme == "lutnet":
            return mh, mw  # unrolled: every connection its own LUT
        if layer.name in p.folding:
            f = p.folding[layer.name]
            bad = [f"{what} = {v} must divide {dim} = {n} (choose one of {_divisors(n)})"
                   for what, v, dim, n in (("pe", f.pe, "MH", mh), ("simd", f.simd, "MW", mw))
                   if n % v]
            if bad:
                raise MappingError(f"layer {layer.name!r} on {self.name}: " + "; ".join(bad))
            return f.pe, f.simd
        if p.target_cycles is None:
            return 1, 1
        for pe in _divisors(mh):
            for simd in _divisors(mw):
                if (mh // pe) * (mw // simd) * vectors <= p.target_cycles:
                    return pe, simd
        return mh, mw

    def plan(self, layer: Layer) -> LayerPlan:
        """Folding, cycles and resources of one GEMM layer's unit (module docstring)."""
        p = self.params
        mw, mh, vectors = layer.K, layer.N, layer.M * layer.count
        pe, simd = self._fold(layer, mw, mh, vectors)
        cycles = (mh // pe) * (mw // simd) * vectors
        W = layer.weight_bits or p.weight_bits
        A = layer.act_bits or p.act_bits
        acc, B = p.acc_bits, p.threshold_bits
        thr = (2**B - 1) * acc * math.ceil((mh // pe) / 64)
        comp = (2**B - 1) * acc
        if layer.weight.scheme == "lutnet":
            kept = max(1, round(mw * layer.weight.density))  # kept K-LUTs per neuron
            if W > 64:
                raise MappingError(f"layer {layer.name!r}: LUTNet LUTs of {int(math.log2(W))} "
                                   f"inputs do not fit a 6-input FPGA LUT")
            logic = C0 + C1 * pe * (kept + 2 * (2 * kept - 1) + acc + thr + comp)
            ffs = pe * acc
            return LayerPlan(layer.name, mw, mh, vectors, pe, simd, cycles, "lut masks",
                             round(logic), 0, ffs, 0, 0)
        use_dsp = p.mult == "dsp" or (p.mult == "auto" and min(W, A) > 4)
        wmem = mw * mh // (pe * simd)
        distributed = p.ram_style == "distributed" or (p.ram_style == "auto" and wmem <= 128)
        lutram = pe * simd * W * math.ceil(wmem / 64) if distributed else 0
        bram = 0 if distributed else bram18_blocks(pe * simd * W, wmem)
        dsps = pe * simd * math.ceil((W + A) / 48) if use_dsp else 0
        if p.lut_model == "yosys":
            logic, ffs = self._synthesised(layer.name, W, A, simd, pe, use_dsp)
        else:
            mult = 0 if use_dsp else simd * (2 * math.ceil((W + A) / 6) - 1) * (W + A)
            tree = (W + A) * (2 * simd - 1)
            logic = round(C0 + C1 * pe * (mult + tree + acc + thr + comp))
            ffs = pe * (acc + simd * (W + A))
        return LayerPlan(layer.name, mw, mh, vectors, pe, simd, cycles,
                         "lutram" if distributed else "bram", logic + lutram, lutram, ffs, dsps,
                         bram)

    def _synthesised(self, layer: str, W: int, A: int, simd: int, pe: int,
                     use_dsp: bool) -> tuple[int, int]:
        table = load_synthesis()
        flow = "xc7" if use_dsp else "xc7_nodsp"
        binary = W == 1 and A == 1
        entry = (table.find("xnor", 1, 1, 32, simd) if binary
                 else table.find("mac", W, A, 32, 1))
        if entry is None:
            want = f"xnor word {simd}" if binary else f"mac {W}x{A}"
            raise MappingError(f"layer {layer!r}: lut_model 'yosys' needs a synthesised {want} "
                               f"PE (acc 32); add it to simulator/rtl/table.py GRID and rerun "
                               f"tools/synthesize_pes.py")
        lanes = 1 if binary else simd
        return pe * lanes * entry.luts(flow), pe * lanes * entry.ffs(flow)

    def check_fit(self, plans: Iterable[LayerPlan], what: str) -> dict[str, float]:
        """Utilisation of each resource (used / budget); over budget is a FpgaFitError."""
        plans = list(plans)
        used = {r: sum(getattr(pl, r) for pl in plans) for r in RESOURCES}
        budget = {r: getattr(self.device, r) for r in RESOURCES}
        def largest(r: str) -> str:
            return max(plans, key=lambda pl: int(getattr(pl, r))).layer

        over = [f"{r} {used[r]:,} > {budget[r]:,} ({used[r] / budget[r]:.0%}; largest: "
                f"{largest(r)})" for r in RESOURCES if used[r] > budget[r]]
        if over:
            raise FpgaFitError(f"{what} does not fit {self.params.device} "
                               f"({self.device.description}): " + "; ".join(over)
                               + ". Fold more (smaller pe/simd or a larger target_cycles), "
                                 "or choose a larger part")
        return {r: used[r] / budget[r] if budget[r] else 0.0 for r in RESOURCES}

    def check_workload(self, layers: Iterable[Layer]) -> None:
        """All layers' units are resident at once: the whole network must fit the part."""
        gemms = [la for la in layers if la.kind == "gemm"]
        if gemms:
            self.check_fit([self.plan(la) for la in gemms], "the network")

    def map_layer(self, layer: Layer, buffers: Mapping[str, Buffer], seed: int,
                  ctx: MappingContext = DEFAULT_CONTEXT) -> LayerMapping:
        """``ctx`` is unused: FINN's weights live in the units and activations stream between
        them, so no DRAM traffic is scheduled and there is nothing to tile or keep."""
        pl = self.plan(layer)
        self.check_fit([pl], f"layer {layer.name!r}")
        w_bits = layer.weight_bits or self.params.weight_bits
        a_bits = layer.act_bits or self.params.act_bits
        counts = {"sram_ifmap_reads": pl.vectors * pl.mw * (pl.mh // pl.pe),
                  "sram_filter_reads": pl.vectors * pl.mw * pl.mh,
                  "sram_ofmap_writes": pl.vectors * pl.mh, "sram_ofmap_reads": 0,
                  "effectual_macs": layer.macs, "gated_macs": 0, "skipped_macs": 0,
                  "weight_metadata_bytes": 0, "act_metadata_bytes": 0}
        tiles = even_tiles(pl.cycles, {"ifmap": 0.0, "filter": 0.0}, 0.0, buffers)
        return LayerMapping(layer, self.name, tiles, compute_cycles=pl.cycles,
                            folds=(pl.mh // pl.pe) * (pl.mw // pl.simd), mapping_efficiency=1.0,
                            counts=counts, macs_per_pe_per_cycle=pl.pe * pl.simd,
                            weight_bits=w_bits, act_bits=a_bits, pe_kind=self.kind.kind,
                            stationary="filter", acc_bits=self.params.acc_bits)


def fpga_report(unit: FinnDataflow, layers: Iterable[Layer],
                clock_mhz: float) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-layer units (one row each: folding, cycles, weights, resources) and the network's
    totals: resources used, utilisation of each (``<resource>_utilisation``), frames per
    second at the clock (the slowest layer sets the pipeline's interval) and the latency of
    one frame (sum of layer cycles). A network over budget is a :class:`FpgaFitError`."""
    import pandas as pd

    plans = [unit.plan(la) for la in layers if la.kind == "gemm"]
    if not plans:
        raise MappingError("no GEMM layer to place on the FPGA")
    util = unit.check_fit(plans, "the network")
    df = pd.DataFrame([dataclasses.asdict(pl) for pl in plans])
    df["utilisation_of_slowest"] = df["cycles"] / df["cycles"].max()
    totals: dict[str, float] = {r: float(df[r].sum()) for r in RESOURCES}
    totals.update({f"{r}_utilisation": u for r, u in util.items()})
    slowest = int(df["cycles"].max())
    totals.update(interval_cycles=slowest, fps=clock_mhz * 1e6 / slowest,
                  latency_us=float(df["cycles"].sum()) / clock_mhz, clock_mhz=clock_mhz)
    return df, totals


def resource_frame(unit: FinnDataflow, totals: Mapping[str, float]) -> pd.DataFrame:
    """One row per resource of the part: used (network total), budget, utilisation."""
    import pandas as pd

    return pd.DataFrame({"resource": list(RESOURCES),
                         "used": [int(totals[r]) for r in RESOURCES],
                         "budget": [int(getattr(unit.device, r)) for r in RESOURCES],
                         "utilisation": [totals[f"{r}_utilisation"] for r in RESOURCES]})


__all__ = ["DEVICES", "Device", "FinnDataflow", "FpgaFitError", "LayerPlan", "bram18_blocks",
           "fpga_report", "load_device", "resource_frame"]
