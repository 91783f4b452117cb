"""On-chip SRAM buffers and off-chip DRAM: capacities and per-cycle bandwidths.

Timing of transfers is simulated by :mod:`simulator.engine` (SimPy) from these figures.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

from simulator.hardware.registries import BUFFERS, DRAMS
from simulator.registry import ParamsModel, finite_at_most


@BUFFERS.register("sram")
class Sram:
    """A scratchpad SRAM feeding one operand of the PE array.

    ``size_kb`` is KiB (1024 bytes). With ``double_buffered`` one half is read by the array
    while the DMA fills the other, so a tile's data must fit in half the capacity. The
    array-side port delivers ``bandwidth_words`` words of ``word_bits`` per cycle; a tile
    whose operand traffic exceeds it is slowed to that bandwidth (the DMA fill port is
    separate and limited by DRAM).

    ``banks``: the capacity is split into that many equal banks (EIE's 8 MB of weights are 64
    banks of 128 KB, one per PE, Han et al. ISCA 2016 section IV). An access reads one bank,
    so its energy is that of a ``size_kb / banks`` array (:mod:`simulator.cost.models`); area
    is the full capacity. Assumption: accesses never conflict (each bank serves its own
    requester, or the mapping interleaves them evenly), so ``bandwidth_words`` is the total
    over all banks and no bank-conflict stall is modelled.
    """

    class Params(ParamsModel):
        #: 128 B (1/8 KiB) to 1 TiB, or .inf (unbounded)
        size_kb: Annotated[float, Field(ge=0.125, allow_inf_nan=True), finite_at_most(1 << 30)]
        word_bits: int = Field(default=8, gt=0, le=4096)
        #: array-side words per cycle: 1/1000 to 10^9, or .inf (unlimited)
        bandwidth_words: Annotated[float, Field(ge=1e-3, allow_inf_nan=True),
                                   finite_at_most(1e9)]
        double_buffered: bool = True
        banks: int = Field(default=1, gt=0, strict=True)

        def implausible(self) -> list[tuple[str, str]]:
            if math.isfinite(self.size_kb) and self.size_kb > 256 * 1024:
                return [("size_kb", f"{self.size_kb:g} KiB (over 256 MiB) of SRAM; intended?")]
            return []

    def __init__(self, name: str, params: Params, **_: object) -> None:
        self.name = name
        self.params = params

    @property
    def capacity_bytes(self) -> float:
        return self.params.size_kb * 1024

    @property
    def tile_bytes(self) -> float:
        """Bytes one tile may occupy: half the SRAM when double buffered, else all of it."""
        return self.capacity_bytes / (2 if self.params.double_buffered else 1)

    @property
    def slots(self) -> int:
        return 2 if self.params.double_buffered else 1

    @property
    def bits_per_cycle(self) -> float:
        return self.params.bandwidth_words * self.params.word_bits

    @property
    def word_bits(self) -> int:
        return self.params.word_bits


@DRAMS.register("dram")
class Dram:
    """Off-chip DRAM: total bandwidth in GB/s (1e9 bytes) split evenly over ``channels``,
    and a fixed access latency in ns added to every read transfer; ``energy_pj_per_bit`` is
    the energy of moving one bit to or from it (interface + device), used by the energy model.

    A transfer of ``b`` bytes on one channel occupies it for
    ``latency + ceil(b / (bytes_per_cycle / channels))`` cycles (reads) or the bandwidth term
    only (posted writes).
    """

    class Params(ParamsModel):
        #: at least 1 MB/s (below, cycle counts of real layers overflow 64 bits); inf: unlimited
        bandwidth_gb_per_s: Annotated[float, Field(ge=1e-3, allow_inf_nan=True),
                                      finite_at_most(1e6)]
        latency_ns: float = Field(default=0.0, ge=0, le=1e6, allow_inf_nan=False)
        channels: int = Field(default=1, gt=0, le=1024)
        #: Required: published DRAM energies differ by 5x (8-40 pJ/bit, reference/energy.md),
        #: so each architecture states its own, with its source; no default hides in code.
        energy_pj_per_bit: float = Field(gt=0, le=1e4, allow_inf_nan=False)

        def implausible(self) -> list[tuple[str, str]]:
            out = []
            bw = self.bandwidth_gb_per_s
            if math.isfinite(bw) and not 0.1 <= bw <= 1e4:
                out.append(("bandwidth_gb_per_s", f"{bw:g} GB/s is outside 0.1-10,000 GB/s "
                                                  f"(LPDDR to HBM3); intended?"))
            if self.latency_ns > 1e4:
                out.append(("latency_ns", f"{self.latency_ns:g} ns is over 10 us; intended?"))
            if not 1 <= self.energy_pj_per_bit <= 100:
                out.append(("energy_pj_per_bit", f"{self.energy_pj_per_bit:g} pJ/bit is outside "
                                                 f"1-100 pJ/bit (published DRAMs: 8-40, "
                                                 f"reference/energy.md); intended?"))
            return out

    def __init__(self, name: str, params: Params, *, clock_mhz: float, **_: object) -> None:
        self.name = name
        self.params = params
        self.clock_mhz = clock_mhz

    @property
    def channels(self) -> int:
        return self.params.channels

    @property
    def bytes_per_cycle(self) -> float:
        """Total bytes per clock cycle over all channels."""
        return self.params.bandwidth_gb_per_s * 1e3 / self.clock_mhz

    @property
    def latency_cycles(self) -> int:
        return math.ceil(self.params.latency_ns * self.clock_mhz / 1e3)
