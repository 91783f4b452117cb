"""Pooling and element-wise layers on a SIMD vector unit: cycles and tiles."""

from __future__ import annotations

from collections.abc import Mapping

from simulator.mapping.schedule import Buffer, LayerMapping, even_tiles
from simulator.workload.layer import Layer


def map_vector(layer: Layer, unit: str, lanes: int, buffers: Mapping[str, Buffer],
               act_bits: int) -> LayerMapping:
    """Split a pooling/element-wise layer into tiles that fit the ifmap and ofmap buffers."""
    bits = layer.act_bits or act_bits
    cycles = -(-layer.vector_ops // lanes)
    out_bits = layer.output_bits or bits
    tiles = even_tiles(cycles, {"ifmap": layer.ifmap_elements * bits / 8, "filter": 0.0},
                       layer.ofmap_elements * out_bits / 8, buffers)
    counts = {"sram_ifmap_reads": layer.ifmap_elements, "sram_filter_reads": 0,
              "sram_ofmap_writes": layer.ofmap_elements, "sram_ofmap_reads": 0,
              "effectual_macs": 0, "gated_macs": 0, "skipped_macs": 0,
              "weight_metadata_bytes": 0, "act_metadata_bytes": 0}
    return LayerMapping(layer, unit, tiles, compute_cycles=cycles, folds=0,
                        mapping_efficiency=float("nan"), counts=counts)
