"""``simulate_llm(arch, spec) -> LLMReport``: prefill and decode of a transformer LLM spec.

Each phase's layers (:func:`simulator.workload.llm.phases`) are simulated as
:func:`simulator.simulation.simulate` does (one SimPy run per layer, no inter-layer overlap),
but every *distinct* layer only once: a layer repeated ``n`` times (``layers`` identical
blocks; the projections of every decode step) contributes ``n`` times its cycles, traffic and
energy. That shortcut is exact (layers with equal dims and operands map and run identically)
and is proven equal to simulating the fully expanded workload by ``tests/test_llm.py``.

Figures (:attr:`LLMReport.metrics`), at the architecture's clock: ``ttft_ms`` (time to first
token = the prefill, whose last position gives the first token), ``tpot_ms`` (mean time per
output token over the decode steps), ``tokens_per_s`` (``batch / tpot``), ``prefill_tokens_per_s``,
``energy_per_token_uj`` (decode energy per generated token), ``prefill_energy_uj``,
``kv_cache_bytes`` (the cache after the last step, all layers and sequences, with scales),
``weight_bytes`` (stored weights incl. scales, as moved), and per phase
``weight_traffic_share``: the DRAM time of the weights' bytes (``dram_filter_read_bytes`` of
weight layers over the DRAM bandwidth) over the phase's time. Near 1 in decode: weights, not
MACs, set the latency.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.arch.accelerator import build
from simulator.arch.config import ArchConfig
from simulator.cost.table import EnergyTable, layer_energy_pj
from simulator.cost.table_file import table_for
from simulator.errors import OutputError
from simulator.files import check_output_dir, replace_dir_atomic, safe_name, write_atomic
from simulator.report import LAYER_COLUMNS, LayerResult
from simulator.simulation import run_layer
from simulator.workload.layer import Layer, Operand, Workload
from simulator.workload.llm import LLMSpec, Phase, phases

LLM_RESULT_FORMAT = "approxsim-llm-result/1"
_SUMMED = ["macs", "effectual_macs", "compute_cycles", "stall_cycles", "total_cycles",
           "dram_ifmap_read_bytes", "dram_filter_read_bytes", "dram_psum_read_bytes",
           "dram_read_bytes", "dram_write_bytes", "energy_pj"]


def layer_key(layer: Layer) -> tuple[Any, ...]:
    """What makes two mask-free layers simulate identically (everything but the name)."""
    def op(o: Operand) -> tuple[Any, ...]:
        assert o.mask is None, "layers with masks are not memoised"
        return (o.bits, o.density, o.structure, o.scheme, o.codebook_size, o.scale_bits,
                o.dequantize)

    return (layer.op, layer.kind, layer.M, layer.K, layer.N, layer.count,
            layer.ifmap_elements, layer.filter_elements, layer.ofmap_elements,
            layer.vector_ops, layer.filter_is_weight, layer.output_bits, op(layer.weight),
            op(layer.activation), tuple(sorted((k, str(v)) for k, v in layer.dims.items())))


@dataclass(frozen=True)
class LLMReport:
    """Per-layer rows (``phase``, ``repeat`` and the :data:`~simulator.report.LAYER_COLUMNS`
    of one instance), per-phase totals and the LLM figures (module docstring)."""

    arch: str
    model: str
    layers: pd.DataFrame
    phases: pd.DataFrame
    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def write(self, directory: str | Path, *, name: str | None = None) -> list[Path]:
        """Write ``llm_layers.csv``, ``llm_phases.csv``, ``llm_metrics.csv`` and a manifest into
        ``directory/<name>/`` atomically as a whole (as :meth:`Report.write`); an existing
        directory is replaced only if it is such a result set."""
        out = check_output_dir(directory)
        target = out / safe_name(name if name is not None else f"{self.arch}__{self.model}")
        texts = {"llm_layers.csv": self.layers.to_csv(index=False),
                 "llm_phases.csv": self.phases.to_csv(index=False),
                 "llm_metrics.csv": pd.DataFrame([self.metrics]).to_csv(index=False)}
        manifest = {"format": LLM_RESULT_FORMAT, "arch": self.arch, "model": self.model,
                    "files": list(texts), "notes": self.notes}

        def fill(tmp: Path) -> None:
            for file, text in texts.items():
                write_atomic(tmp / file, text)
            write_atomic(tmp / "manifest.json", json.dumps(manifest, indent=2))

        def ours(p: Path) -> bool:
            try:
                return json.loads((p / "manifest.json").read_text())["format"] == \
                    LLM_RESULT_FORMAT
            except (OSError, ValueError, KeyError, TypeError):
                return False

        if target.exists() and not ours(target):
            raise OutputError(f"{target}: exists and is not an approxsim LLM result set; "
                              f"not replaced")
        replace_dir_atomic(target, fill, ours)
        return [target / f for f in texts]


def simulate_llm(arch: ArchConfig, spec: LLMSpec,
                 energy_table: EnergyTable | None = None) -> LLMReport:
    """Simulate every phase of ``spec`` on ``arch``; pure, like :func:`simulate`."""
    acc = build(arch)
    memo: dict[tuple[Any, ...], LayerResult] = {}
    rows = []
    plist = phases(spec)
    for ph in plist:
        for layer, rep in ph.entries:
            key = layer_key(layer)
            if key not in memo:
                memo[key] = run_layer(layer, acc, spec.seed)
            rows.append((ph.name, layer, rep, memo[key]))
    variants = {a for r in memo.values() for (_, a) in r.actions if "@" in a}
    table = energy_table if energy_table is not None else table_for(arch, acc, variants)
    table.require(k for r in memo.values() for k in r.actions)
    energy = {k: layer_energy_pj([r.actions], table)[0] for k, r in memo.items()}
    recs = []
    for name, layer, rep, r in rows:
        d = {c: getattr(r, c) for c in LAYER_COLUMNS if c != "energy_pj"}
        d.update(layer=layer.name, phase=name, repeat=rep, weight_layer=layer.filter_is_weight
                 and layer.kind == "gemm", energy_pj=energy[layer_key(layer)])
        recs.append(d)
    df = pd.DataFrame(recs, columns=["phase", "repeat", "weight_layer", *LAYER_COLUMNS])
    bpc = acc.dram.bytes_per_cycle
    ph_rows = []
    for ph in plist:
        sub = df[df["phase"] == ph.name]
        tot = {c: float((sub[c] * sub["repeat"]).sum()) for c in _SUMMED}
        w = sub[sub["weight_layer"]]
        wbytes = float((w["dram_filter_read_bytes"] * w["repeat"]).sum())
        cycles = tot["total_cycles"]
        ph_rows.append({"phase": ph.name, "generated_tokens": ph.tokens,
                        **{c: int(v) if c != "energy_pj" else v for c, v in tot.items()},
                        "latency_s": cycles / (arch.clock_mhz * 1e6),
                        "weight_read_bytes": int(wbytes),
                        "weight_traffic_share": (wbytes / bpc / cycles
                                                 if cycles and math.isfinite(bpc) else 0.0)})
    pdf = pd.DataFrame(ph_rows)
    return LLMReport(arch.name, spec.name, df, pdf, _metrics(spec, pdf),
                     [n for ph in plist for n in ph.notes])


def _metrics(spec: LLMSpec, ph: pd.DataFrame) -> dict[str, Any]:
    by = {r["phase"]: r for r in ph.to_dict("records")}
    pre = by["prefill"]
    out: dict[str, Any] = {
        "model": spec.name, "batch": spec.batch, "prefill_tokens": spec.phases.prefill.tokens,
        "ttft_ms": pre["latency_s"] * 1e3,
        "prefill_tokens_per_s": spec.batch * spec.phases.prefill.tokens / pre["latency_s"],
        "prefill_energy_uj": pre["energy_pj"] * 1e-6,
        "prefill_weight_traffic_share": pre["weight_traffic_share"],
        "weight_bytes": weight_bytes(spec),
        "kv_cache_bytes": spec.kv_cache_bytes(spec.phases.prefill.tokens),
    }
    dec = by.get("decode")
    if dec is not None and spec.phases.decode is not None:
        steps = spec.phases.decode.steps
        tpot = dec["latency_s"] / steps
        out.update({
            "decode_steps": steps, "tpot_ms": tpot * 1e3, "tokens_per_s": spec.batch / tpot,
            "energy_per_token_uj": dec["energy_pj"] * 1e-6 / (steps * spec.batch),
            "decode_weight_traffic_share": dec["weight_traffic_share"],
            "kv_cache_bytes": spec.kv_cache_bytes(spec.phases.decode.context + steps),
        })
    return out


def weight_bytes(spec: LLMSpec) -> float:
    """Stored bytes of the weight GEMMs (incl. group scales), embeddings at act bits."""
    from simulator.workload.llm import _Builder

    b = _Builder(spec)
    total = 0.0
    for name, k, n in spec.weight_layers():
        if name == "lm_head" and spec.tied_embeddings:
            continue  # the token embedding, counted below
        for block in range(spec.layers) if "." in name else [None]:
            b.entries.clear()
            b.block_id = block
            b.lin(name, k, n, 1, 1)
            lay = b.entries[0][0]
            bits = (lay.weight.bits or spec.act_bits or 16) + lay.weight.scale_bits
            total += k * n * lay.weight.density * bits / 8
    emb = spec.parameters() - sum(k * n * (1 if "." not in nm else spec.layers)
                                  for nm, k, n in spec.weight_layers()
                                  if not (nm == "lm_head" and spec.tied_embeddings))
    return total + emb * (spec.act_bits or 16) / 8


def expanded(phase: Phase) -> Workload:
    """The phase with every repeated layer written out (the long way, for tests)."""
    layers = []
    for layer, rep in phase.entries:
        for i in range(rep):
            layers.append(Layer(**{**{f: getattr(layer, f) for f in Layer.__dataclass_fields__},
                                   "name": f"{layer.name}#{i}"}))
    return Workload(phase.name, tuple(layers))
