"""Pooling and element-wise layers on a SIMD vector unit: cycles and tiles.

Each lane does one primitive op per cycle; a layer of ``n`` ops takes ``ceil(n / lanes)``
cycles. A layer whose nonlinearity is approximated (``Layer.approx``,
:mod:`simulator.workload.approx`) instead costs its exact ops left plus one lane-cycle per
function evaluation, and reports its stage actions (``vec.compare``, ``vec.mul_add``,
``vec.lut_read_bit``) and the table it loads (``vec.lut_write_bit``; the table's bytes come
from DRAM with the layer, through the filter buffer, and are read from it once).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from simulator.mapping.options import DEFAULT_CONTEXT, MappingContext
from simulator.mapping.schedule import Buffer, LayerMapping, even_tiles
from simulator.workload.layer import Layer


def map_vector(layer: Layer, unit: str, lanes: int, buffers: Mapping[str, Buffer],
               act_bits: int, ctx: MappingContext = DEFAULT_CONTEXT) -> LayerMapping:
    """Split a pooling/element-wise layer into tiles that fit the ifmap and ofmap buffers.

    Inputs kept on chip by their producers (``ctx.resident``: all of the ifmap, or the
    ``kept_inputs`` share of a multi-input op) are not loaded; a kept output is not stored."""
    bits = layer.act_bits or act_bits
    ops = {"vector_op": layer.vector_ops, "cycles_ops": layer.vector_ops}
    table_bits = 0
    if layer.approx is not None:
        ops = layer.approx.counts(layer.ofmap_elements, layer.vector_ops)
        table_bits = layer.approx.table_bits
    cycles = -(-ops.pop("cycles_ops") // lanes)
    bufs = ctx.buffers if ctx.buffers is not None else buffers
    in_bytes = layer.ifmap_elements * bits / 8 * (1.0 - ctx.kept_inputs)
    out_bytes = layer.ofmap_elements * (layer.output_bits or bits) / 8
    tiles = even_tiles(cycles, {"ifmap": in_bytes, "filter": table_bits / 8}, out_bytes, bufs,
                       ctx.resident, ctx.keep_output)
    counts = {"sram_ifmap_reads": layer.ifmap_elements, "sram_filter_reads": 0,
              "sram_ofmap_writes": layer.ofmap_elements, "sram_ofmap_reads": 0,
              "effectual_macs": 0, "gated_macs": 0, "skipped_macs": 0,
              "weight_metadata_bytes": 0, "act_metadata_bytes": 0,
              "sram_filter_read_bits": table_bits,
              **{f"vec.{k}": v for k, v in ops.items()}}
    return LayerMapping(layer, unit, tiles, compute_cycles=cycles, folds=0,
                        mapping_efficiency=float("nan"), counts=counts,
                        kept_bytes=math.ceil(out_bytes) if ctx.keep_output else 0)
