"""Block-circulant layers computed in the frequency domain (CirCNN, Ding et al., MICRO 2017).

A ``K x N`` weight matrix of ``b x b`` circulant blocks (``p = ceil(K/b)`` block rows of the
input, ``q = ceil(N/b)`` of the output; CirCNN section 3) turns each input row ``x`` into
``a_i = IFFT(sum_j FFT(w_ij) o FFT(x_j))`` (CirCNN eq. 2, with the IFFT moved out of the sum by
linearity): per input row, ``p`` FFTs of the input blocks, ``p q b`` element-wise complex
multiply-accumulates with the stored spectra of the weight vectors, and ``q`` IFFTs. So for a
layer of ``M`` rows (``count`` groups):

* ``butterflies = count M (p + q) (b / 2) log2 b`` radix-2 butterflies (one complex multiply
  and two complex adds each: 4 real multiplies + 6 real adds);
* ``cmacs = count M p q b`` complex multiply-accumulates (4 real multiplies + 4 real adds);

complex radix-2 FFTs of the real vectors, without real-input packing (which would halve both):
a conservative count. ``b`` must be a power of two. The weights' spectra are precomputed and
stored with Hermitian symmetry, ``b`` real values per block (as the time-domain vector); each
complex MAC reads one spectral value of the filter buffer (2 values: real and imaginary, of
the ``b`` stored per block) and every input and output element crosses its buffer once.
The layer's ``effectual_macs`` are its complex MACs (the unit's own operations; ``macs`` stays
the dense layer's), so utilisation is the complex MACs' busy share.

**Time**: a unit with ``B`` butterfly units and ``C`` complex MACs pipelines its FFT, product
and IFFT stages over the input rows, so a layer takes ``max(ceil(butterflies / B),
ceil(cmacs / C)) + log2 b`` cycles (the last row's pipeline drain). A SIMD vector unit runs
the same counts on its lanes as primitive ops (a butterfly 10, a complex MAC 8), one per lane
per cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from simulator.errors import MappingError
from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext
from simulator.mapping.schedule import Buffer, LayerMapping, even_tiles
from simulator.workload.layer import Layer

#: Real operations of one radix-2 butterfly and of one complex multiply-accumulate.
BUTTERFLY_OPS = {"multiplies": 4, "adds": 6}
CMAC_OPS = {"multiplies": 4, "adds": 4}


@dataclass(frozen=True, slots=True)
class CirculantWork:
    """The frequency-domain work of one block-circulant layer (module docstring)."""

    block: int
    p: int
    q: int
    butterflies: int
    cmacs: int
    stored_values: int

    @property
    def stages(self) -> int:
        return self.block.bit_length() - 1


def circulant_work(layer: Layer, unit: str) -> CirculantWork:
    """The counts of ``layer``; a :class:`MappingError` if it is not block-circulant with a
    power-of-two block."""
    b = layer.weight.block if layer.weight.structure == "circulant" else None
    if layer.kind != "gemm" or not layer.filter_is_weight or b is None:
        raise MappingError(f"layer {layer.name!r} cannot run on unit {unit!r}: it computes "
                           f"block-circulant weight layers only (weight_structure: circulant)"
                           f"; this layer is {layer.op} with {layer.weight.structure} weights")
    if b & (b - 1):
        raise MappingError(f"layer {layer.name!r} cannot run on unit {unit!r}: its circulant "
                           f"block side {b} is not a power of two (radix-2 FFT)")
    p, q = -(-layer.K // b), -(-layer.N // b)
    rows = layer.M * layer.count
    stages = b.bit_length() - 1
    return CirculantWork(b, p, q, rows * (p + q) * (b // 2) * stages, rows * p * q * b,
                         layer.count * p * q * b)


def map_circulant(layer: Layer, unit: str, butterflies: int, cmacs: int,
                  buffers: Mapping[str, Buffer], act_bits: int, weight_bits: int,
                  *, lanes: int | None = None,
                  ctx: MappingContext = DEFAULT_CONTEXT) -> LayerMapping:
    """Cycles, tiles and counts of a block-circulant layer on an FFT unit with ``butterflies``
    butterfly units and ``cmacs`` complex MACs, or (``lanes``) on a SIMD unit's lanes.

    Residency (``ctx``) as for every unit: preloaded spectra (``"filter"`` resident) and an
    input kept by its producer are not loaded, a kept output is not stored; ``weight_bytes``
    (the stored spectra) is what a preload moves."""
    w = circulant_work(layer, unit)
    a_bits = layer.act_bits or act_bits
    wb = layer.weight_bits or weight_bits
    if lanes is not None:
        ops = w.butterflies * sum(BUTTERFLY_OPS.values()) + w.cmacs * sum(CMAC_OPS.values())
        cycles = -(-ops // lanes)
        arith = {"vec.vector_op": ops}
    else:
        cycles = max(-(-w.butterflies // butterflies), -(-w.cmacs // cmacs)) + w.stages
        arith = {"arith.butterfly": w.butterflies, "arith.cmac": w.cmacs}
    weight_bytes = w.stored_values * wb / 8
    store = layer.ofmap_elements * a_bits / 8
    tiles = even_tiles(cycles, {"ifmap": layer.ifmap_elements * a_bits / 8
                                * (1.0 - ctx.kept_inputs), "filter": weight_bytes},
                       store, ctx.buffers if ctx.buffers is not None else buffers,
                       ctx.resident, ctx.keep_output)
    rows = layer.M * layer.count
    counts = {"sram_ifmap_reads": rows * layer.K, "sram_filter_reads": 2 * w.cmacs,
              "sram_ofmap_writes": rows * layer.N, "sram_ofmap_reads": 0,
              "effectual_macs": w.cmacs, "gated_macs": 0, "skipped_macs": 0,
              "computed_macs": w.cmacs, "weight_metadata_bytes": 0, "act_metadata_bytes": 0,
              **arith}
    note = (f"layer {layer.name!r}: block-circulant (b = {w.block}) in the frequency domain "
            f"on {unit!r}: {w.butterflies:,} butterflies and {w.cmacs:,} complex MACs for "
            f"{layer.macs:,} dense MACs")
    return LayerMapping(layer, unit, tiles, compute_cycles=cycles, folds=0,
                        mapping_efficiency=float("nan"), counts=counts, weight_bits=wb,
                        act_bits=a_bits, pe_kind="fft", stationary="none",
                        storage_bits={"filter": float(wb)}, notes=(note,),
                        weight_bytes=weight_bytes,
                        kept_bytes=math.ceil(store) if ctx.keep_output else 0)
