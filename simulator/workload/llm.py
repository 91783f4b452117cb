"""Transformer LLM specs (``workloads/llm/*.yaml``): decoder-only models with prefill and decode
phases, and encoders, lowered to layers with their multiplicities.

```yaml
name: llama-2-7b
kind: decoder                  # decoder (causal, KV cache) | encoder (one bidirectional pass)
layers: 32
d_model: 4096
heads: 32
kv_heads: 32                   # < heads: grouped-query attention (1: multi-query)
ffn: swiglu                    # swiglu (gate, up, down) | gelu (fc1, fc2)
ffn_hidden: 11008
vocab: 32000
norm: rmsnorm                  # rmsnorm | layernorm; post_norm: true for BERT
positions: rope                # rope | learned (max_positions)
act_bits: 16                   # activations (and MACs) at 16 bits
phases: {prefill: {tokens: 2048}, decode: {steps: 128, context: 2048}}
quantisation:                  # optional: weight-only, KV cache, 2:4 (or a recipe on the CLI)
  weights: {bits: 4, group_size: 128, symmetric: false, scale_bits: 16, exclude: [lm_head]}
  kv_cache: {bits: 8, group_size: null, scale_bits: 16}
  weight_structure: {structure: "2:4", exclude: [lm_head]}
```

**Lowering** (per block, ``T`` new tokens per sequence, ``batch`` sequences, head dim ``hd =
d_model / heads``, ``g = heads / kv_heads``): norm, ``q_proj`` (``d -> heads hd``), ``k_proj`` and
``v_proj`` (``d -> kv_heads hd``), RoPE on q and k (Su et al. 2021), a KV-quantise layer when
the cache is stored below the activation precision, ``attn.qk`` = ``kv_heads`` GEMMs of
``(g T) x hd @ hd x keys`` (the ``g`` query heads that share one KV head read its keys once:
grouped-query attention, Ainslie et al. 2023), softmax over ``heads x T x keys``, ``attn.av`` =
``kv_heads`` GEMMs of ``(g T) x keys @ keys x hd``, ``o_proj``, residual add, norm, the FFN
(SwiGLU, Shazeer 2020: gate and up ``d -> f``, ``silu(gate) * up``, down ``f -> d``; or GELU:
``d -> f -> d``), residual add. Embedding gathers, learned position (and token-type) embeddings
and adds, the final norm and ``lm_head`` (``d -> vocab``) around the blocks.

**Prefill** runs the prompt (``tokens``) once: attention over ``keys = T`` fresh keys at the
activation precision; the causal mask leaves ``(T + 1) / 2T`` of the attention MACs effective
(stated in the notes: a dense array computes them all). Only the last position's logits are
computed (``prefill_logits: last``, as serving systems do; ``all``: every position, as a
Hugging Face forward). **Decode** generates ``steps`` tokens one at a time: step ``s`` has
``context + s`` tokens in the **KV cache, which lives in DRAM**: ``attn.qk`` and ``attn.av``
take it as their right operand (loaded from DRAM every step at the cache's bits plus its
scales, de-quantised at the array edge when quantised), and the new token's K and V are
appended (the ``k_proj`` / ``v_proj`` outputs, or the KV-quantise layer's). ``sliding_window``
caps the keys (Mistral). Identical layers repeat: each entry carries its multiplicity
(``layers`` blocks, decode steps), so a simulator runs each distinct layer once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from simulator.workload.layer import Layer, Operand
from simulator.workload.llm_spec import (
    GroupQuant,
    LLMSpec,
    Quantisation,
    WeightQuant,
    is_llm,
    parse_llm,
)
from simulator.workload.spec import (
    ElementwiseSpec,
    EmbeddingSpec,
    LinearSpec,
    MatmulSpec,
    VectorSpec,
)

__all__ = ["GroupQuant", "LLMSpec", "Phase", "Quantisation", "WeightQuant", "is_llm",
           "parse_llm", "phases"]


@dataclass(frozen=True)
class Phase:
    """One phase: its layers with multiplicities, the tokens it generates per sequence."""

    name: str
    entries: tuple[tuple[Layer, int], ...]
    tokens: int
    notes: tuple[str, ...] = field(default_factory=tuple)


class _Builder:
    """Lowers one phase of a spec; ``entries`` collects ``(Layer, multiplicity)``."""

    def __init__(self, spec: LLMSpec) -> None:
        self.s = spec
        self.entries: list[tuple[Layer, int]] = []
        self.block_id: int | None = None  # the block whose quantisation the layers take

    def add(self, layer: Layer, rep: int) -> None:
        if layer.kind == "vector":  # vector layers move their tensors at the activation bits
            layer = replace(layer, activation=Operand(bits=self.s.act_bits))
        self.entries.append((layer, rep))

    def lin(self, name: str, k: int, n: int, tokens: int, rep: int) -> None:
        s, q = self.s, self.s.quantisation
        w: dict[str, Any] = {}
        wq = q.weights.for_layer(name, self.block_id if "." in name else None) \
            if q.weights is not None else None
        if wq is not None:
            w = {"weight_bits": wq.bits, "weight_scale_bits": wq.weight_meta_bits(k, n),
                 "weight_dequantize": wq.dequantize}
        st = q.weight_structure
        if st is not None and name not in st.exclude:
            w["weight_structure"] = st.structure
            if ":" in st.structure:
                a, b = st.structure.split(":")
                w["weight_density"] = st.density or int(a) / int(b)
            elif st.density is not None:
                w["weight_density"] = st.density
        self.add(LinearSpec(name=name, op="linear", in_features=k, out_features=n,
                            tokens=tokens, act_bits=s.act_bits, **w).lower(s.batch), rep)

    def elt(self, name: str, op: str, shape: list[int], rep: int) -> None:
        self.add(ElementwiseSpec(name=name, op=op, shape=shape).lower(self.s.batch), rep)

    def attention(self, t: int, keys: int, cached: bool, rep: int, tag: str = "") -> None:
        s = self.s
        g, kv, hd = s.heads // s.kv, s.kv, s.hd
        w: dict[str, Any] = {}
        q = s.quantisation.kv_cache
        if cached and q is not None:
            w = {"weight_bits": q.bits, "weight_scale_bits": q.meta_bits(hd),
                 "weight_dequantize": True}
        self.add(MatmulSpec(name=f"attn.qk{tag}", op="matmul", M=g * t, K=hd, N=keys, batch=kv,
                            act_bits=s.act_bits, **w).lower(s.batch), rep)
        self.elt(f"attn.softmax{tag}", "softmax", [s.heads, t, keys], rep)
        self.add(MatmulSpec(name=f"attn.av{tag}", op="matmul", M=g * t, K=keys, N=hd, batch=kv,
                            act_bits=s.act_bits, **w).lower(s.batch), rep)

    def blocks(self, t: int, per: int, attend: Any) -> None:
        """Every block for ``t`` tokens, ``per`` times each (decode steps): blocks quantised
        alike are one entry with their count; ``attend(n)`` adds attention for ``n`` blocks."""
        groups: dict[Any, list[int]] = {}
        q = self.s.quantisation.weights
        for i in range(self.s.layers):
            key = tuple(None if q is None else q.for_layer(n, i)
                        for n, _, _ in self.s.weight_layers() if "." in n)
            groups.setdefault(repr(key), []).append(i)
        for ids in groups.values():
            self.block_id = ids[0]
            count = len(ids)
            self.block(t, count * per, lambda count=count: attend(count))
        self.block_id = None

    def block(self, t: int, rep: int, attend: Any) -> None:
        """One transformer block for ``t`` tokens; ``attend()`` adds its attention layers."""
        s = self.s
        d, hq, hk = s.d_model, s.heads * s.hd, s.kv * s.hd
        if not s.post_norm:
            self.elt("attn_norm", s.norm, [t, d], rep)
        self.lin("attn.q_proj", d, hq, t, rep)
        self.lin("attn.k_proj", d, hk, t, rep)
        self.lin("attn.v_proj", d, hk, t, rep)
        if s.positions == "rope":
            self.elt("attn.rope", "rope", [t, hq + hk], rep)
        q = s.quantisation.kv_cache
        if q is not None and s.kind == "decoder":
            n = 2 * hk * t
            self.add(VectorSpec(name="attn.kv_quantise", op="vector", label="kv_quantise",
                                in_elements=n, out_elements=n, vector_ops=3 * n,
                                out_bits=s.kv_bits()).lower(s.batch), rep)
        attend()
        self.lin("attn.o_proj", hq, d, t, rep)
        self.elt("attn.residual", "add", [t, d], rep)
        self.elt("ffn_norm" if not s.post_norm else "attn_norm", s.norm, [t, d], rep)
        f = s.ffn_hidden
        if s.ffn == "swiglu":
            self.lin("mlp.gate_proj", d, f, t, rep)
            self.lin("mlp.up_proj", d, f, t, rep)
            self.elt("mlp.act", "swiglu", [t, f], rep)
            self.lin("mlp.down_proj", f, d, t, rep)
        else:
            self.lin("mlp.fc1", d, f, t, rep)
            self.elt("mlp.act", "gelu", [t, f], rep)
            self.lin("mlp.fc2", f, d, t, rep)
        self.elt("mlp.residual", "add", [t, d], rep)
        if s.post_norm:
            self.elt("ffn_norm", s.norm, [t, d], rep)

    def embed(self, t: int, rep: int) -> None:
        s = self.s
        self.add(EmbeddingSpec(name="embed", op="embedding", num_embeddings=s.vocab,
                               dim=s.d_model, tokens=t).lower(s.batch), rep)
        extra = [("embed_positions", s.max_positions)] if s.positions == "learned" else []
        extra += [("embed_types", s.type_vocab)] if s.type_vocab else []
        for name, rows in extra:
            self.add(EmbeddingSpec(name=name, op="embedding", num_embeddings=rows or 1,
                                   dim=s.d_model, tokens=t).lower(s.batch), rep)
            self.elt(f"{name}.add", "add", [t, s.d_model], rep)
        if s.post_norm:
            self.elt("embed_norm", s.norm, [t, s.d_model], rep)

    def head(self, t: int, logits: int, rep: int) -> None:
        s = self.s
        if not s.post_norm:
            self.elt("final_norm", s.norm, [t, s.d_model], rep)
        if s.pooler:
            self.lin("pooler", s.d_model, s.d_model, 1, rep)
            self.elt("pooler.tanh", "tanh", [1, s.d_model], rep)
        if s.kind == "decoder" and logits:
            self.lin("lm_head", s.d_model, s.vocab, logits, rep)


def phases(spec: LLMSpec) -> list[Phase]:
    """The spec's phases, lowered (module docstring)."""
    out = []
    t = spec.phases.prefill.tokens
    b = _Builder(spec)
    b.embed(t, 1)
    b.blocks(t, 1, lambda n: b.attention(t, t, False, n))
    logits = {"last": 1, "all": t, "none": 0}[spec.prefill_logits]
    b.head(t, logits, 1)
    note: tuple[str, ...] = ()
    if spec.kind == "decoder":
        eff = (t + 1) / (2 * t)
        note = (f"prefill: the causal mask leaves {eff:.1%} of the attention (qk, av) MACs "
                f"effective; the dense array computes all of them",)
    out.append(Phase("prefill", tuple(b.entries), 1 if spec.kind == "decoder" else 0, note))
    dec = spec.phases.decode
    if dec is not None:
        b = _Builder(spec)
        steps = dec.steps
        b.embed(1, steps)
        cap = spec.sliding_window

        def attend(n: int) -> None:
            for s in range(steps):
                keys = dec.context + s + 1
                keys = min(keys, cap) if cap else keys
                b.attention(1, keys, True, n, f"@{keys}")

        b.blocks(1, steps, attend)
        b.head(1, 1, steps)
        out.append(Phase("decode", tuple(b.entries), steps))
    return out
