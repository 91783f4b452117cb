"""The tiling search's estimate of its candidates (:mod:`.search`), for the candidates of
one GEMM or of several at once.

**Estimate of a candidate** (per GEMM, x ``count``): DRAM bytes from :func:`.nest.traffic`;
compute cycles ``folds x max(fold cycles, SRAM-port cycles)`` (SCALE-Sim's closed form per
fold: tiling the stream costs one fill and drain per piece); latency
``max(compute, DRAM bytes / bandwidth) + spilled bytes / bandwidth + DRAM latency`` (a spilled
partial sum waits for its own write); energy = DRAM and DMA-side SRAM words at the table's
prices + array-side SRAM words and stationary-operand register writes (they grow with the
stream pieces) + MACs, idle PE-cycles and leakage over the estimated latency. ``latency``,
``energy`` or ``edp`` (their product) is minimised.

**Several GEMMs at once.** The candidates of GEMMs ``0..G-1`` are stacked, GEMM ``g``'s in
rows ``starts[g]:starts[g] + lengths[g]``; every per-GEMM number (operand sizes and bytes,
buffer room, prices, the array model's constants) becomes a column of one value per
candidate (:func:`per_candidate`), and every formula above is elementwise in them, so each
candidate gets exactly the numbers a search of its GEMM alone gives (``tests/test_search.py``
runs both). The two callables of :class:`ArrayModel` are called once per GEMM on its rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.mapping.nest import DIM_INDEX, IRRELEVANT, Traffic
from simulator.mapping.options import MappingCosts

OBJECTIVES = ("latency", "energy", "edp")
_BUFFERS = ("ifmap", "filter", "ofmap")


@dataclass(frozen=True, slots=True)
class ArrayModel:
    """What the search needs of a dataflow's folds (per GEMM).

    ``base_cycles`` per fold + ``stream_scale`` per streamed element (SCALE-Sim's closed
    form), or for dataflows without a streamed axis ``work_cycles`` in total; ``port``: the
    SRAM-port-limited cycles of a fold for each candidate's stream tile extent (``None``: no
    port limit). Array side, every fold reads its slice of each input and writes (and after
    the first, reads back) its partial sums, so an operand is read once per fold position
    along its irrelevant dimension: ``words`` is the SRAM words per element so moved, and the
    ``stationary`` operand is also written into the PE registers each time
    (:mod:`simulator.cost.actions`). ``array_pj`` replaces that count (per candidate's stream
    pieces -> pJ) for dataflows that move data otherwise (row-stationary)."""

    pes: int
    macs: int
    count: int
    base_cycles: float
    stream_scale: float = 1.0
    work_cycles: float = 0.0
    port: Callable[[np.ndarray], np.ndarray] | None = None
    words: Mapping[str, float] = field(default_factory=dict)
    stationary: str = ""
    array_pj: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True, slots=True)
class GemmEstimate:
    """One GEMM's part of a stacked estimate: its array model, prices, SRAM word bytes,
    operand elements (GEMM view), streamed dimension (``None``: none) and objective."""

    model: ArrayModel
    costs: MappingCosts
    word_bytes: Mapping[str, float]
    sizes: Mapping[str, float]
    stream: str | None
    objective: str


def per_gemm(rows: Sequence[Mapping[str, float]]) -> tuple[list[str], np.ndarray]:
    """Each GEMM's numbers (same names in every row) as a float64 table ``(names, GEMMs)``."""
    names = list(rows[0])
    return names, np.array([[r[k] for k in names] for r in rows], dtype=np.float64).T


def per_candidate(table: tuple[list[str], np.ndarray], lengths: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """A :func:`per_gemm` table repeated over each GEMM's ``lengths`` candidates: one array of
    ``lengths.sum()`` values per name."""
    names, values = table
    stacked = np.repeat(values, lengths, axis=1)
    return {k: stacked[i] for i, k in enumerate(names)}


def numbers(g: GemmEstimate) -> dict[str, float]:
    """The per-GEMM numbers :func:`estimate` reads (a row of :func:`per_gemm`)."""
    m, c = g.model, g.costs
    out = {"count": m.count, "pes": m.pes, "count_macs": m.count * m.macs,
           "base": m.base_cycles, "scale": m.stream_scale, "work": m.work_cycles,
           "streams": g.stream is not None,
           "stream_j": DIM_INDEX[g.stream] if g.stream is not None else 0,
           "rd": c.dram_read_per_byte, "wr": c.dram_write_per_byte, "mac": c.mac,
           "mac_idle": c.mac_idle, "rf": c.rf_write, "leak": c.leak_per_cycle,
           "bw": c.dram_bytes_per_cycle, "latency": c.dram_latency_cycles,
           "objective": OBJECTIVES.index(g.objective), "own_array_pj": m.array_pj is not None}
    for b in _BUFFERS:
        out |= {f"words_{b}": m.words.get(b, 0.0), f"stationary_{b}": m.stationary == b,
                f"sram_read_{b}": c.sram_read.get(b, 0.0),
                f"sram_write_{b}": c.sram_write.get(b, 0.0), f"word_bytes_{b}": g.word_bytes[b],
                f"size_{b}": g.sizes[b]}
    return out


def stream_extent(v: Mapping[str, Any], geo: Mapping[str, np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's largest extent and tile count along its GEMM's streamed dimension
    (float64; of dimension 0 where none streams)."""
    rows = np.arange(len(geo["folds"]))
    j = np.asarray(v["stream_j"]).astype(np.intp)  # one per candidate, or one for all
    return geo["ext_f"][rows, j], geo["n_f"][rows, j]


def callables(gemms: Sequence[GemmEstimate], v: Mapping[str, Any],
              geo: Mapping[str, np.ndarray], starts: np.ndarray, lengths: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """The two callables of each GEMM's :class:`ArrayModel` on its candidates (each
    elementwise in its argument): SRAM-port cycles (``-inf`` without a port limit:
    ``max(fold, -inf)`` is the fold) and array-side pJ (0 where the model has none)."""
    ext, pieces = stream_extent(v, geo)
    pieces = np.where(v["streams"] > 0, pieces, 1.0)
    port = np.full(len(ext), -np.inf)
    own = np.zeros(len(ext))
    for g, s, n in zip(gemms, starts, lengths, strict=True):
        if g.model.port is not None and g.stream is not None:
            port[s:s + n] = g.model.port(ext[s:s + n])
        if g.model.array_pj is not None:
            own[s:s + n] = g.model.array_pj(pieces[s:s + n])
    return port, own


def estimate(v: Mapping[str, Any], geo: Mapping[str, np.ndarray], tr: Traffic,
             port: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, ...]:
    """(latency cycles, energy pJ, objective) of every stacked candidate (module docstring):
    ``v`` the per-candidate numbers (:func:`per_candidate`; or one GEMM's, :func:`numbers`,
    as scalars numpy broadcasts: the same arithmetic), ``port`` and ``own`` what
    :func:`callables` gives."""
    count = v["count"]
    folds = geo["folds"]
    ext, _ = stream_extent(v, geo)
    fold = np.maximum(v["base"] + v["scale"] * ext, port)
    streams = v["streams"] > 0
    compute = np.where(streams, count * folds * fold, count * (folds * v["base"] + v["work"]))
    reads = sum(tr.reads.values())
    dram = count * (reads + tr.writes)
    spill = count * 2 * tr.reads["psum"]
    bw = v["bw"]
    with np.errstate(divide="ignore", invalid="ignore"):
        lat = np.where(np.isfinite(bw), np.maximum(compute, dram / bw) + spill / bw
                       + v["latency"], compute + 0.0)
    e = count * (reads * v["rd"] + tr.writes * v["wr"])
    dma = {"ifmap": tr.reads["ifmap"], "filter": tr.reads["filter"], "ofmap": tr.reads["psum"]}
    for buf, loaded in dma.items():
        e = e + count * loaded / v[f"word_bytes_{buf}"] * v[f"sram_write_{buf}"]
    e = e + count * tr.writes / v["word_bytes_ofmap"] * v["sram_read_ofmap"]
    e = e + count * np.where(v["own_array_pj"] > 0, own, _array_pj(v, geo))
    idle = np.maximum(v["pes"] * compute - v["count_macs"], 0.0)
    e = e + v["count_macs"] * v["mac"] + idle * v["mac_idle"] + lat * v["leak"]
    objective = np.where(v["objective"] == 0, lat, np.where(v["objective"] == 1, e, lat * e))
    return lat, e, objective


def _array_pj(v: Mapping[str, Any], geo: Mapping[str, np.ndarray]) -> np.ndarray:
    """Array-side SRAM and stationary-register energy of every candidate (ArrayModel)."""
    pos = geo["positions_f"]
    out = np.zeros(pos.shape[0])
    for op in ("ifmap", "filter"):
        reads = v[f"size_{op}"] * pos[:, DIM_INDEX[IRRELEVANT[op]]]
        out = out + reads * v[f"words_{op}"] * v[f"sram_read_{op}"]
        # + 0.0 where the operand is not stationary: the sum unchanged
        out = out + np.where(v[f"stationary_{op}"] > 0, reads * v["rf"], 0.0)
    k = pos[:, DIM_INDEX["K"]]
    w = v["words_ofmap"] * v["size_ofmap"]
    return out + w * (k * v["sram_write_ofmap"] + (k - 1) * v["sram_read_ofmap"])


def first_minimum(objective: np.ndarray, starts: np.ndarray, lengths: np.ndarray
                  ) -> np.ndarray:
    """Per GEMM, the row of its first minimum (``np.argmin`` of its rows: the first NaN if
    there is one)."""
    low = np.repeat(np.minimum.reduceat(objective, starts), lengths)
    hit = np.flatnonzero((objective == low) | (np.isnan(objective) & np.isnan(low)))
    return hit[np.searchsorted(hit, starts)]
