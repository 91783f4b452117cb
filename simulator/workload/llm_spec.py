"""The LLM spec file's schema (``workloads/llm/*.yaml``, described in
:mod:`simulator.workload.llm`): frozen pydantic models, every error at once with its path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulator.errors import WorkloadError
from simulator.registry import pydantic_errors

PosInt = Annotated[int, Field(gt=0, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


class GroupQuant(_Strict):
    """Values stored at ``bits`` with one ``scale_bits`` scale (and a ``bits`` zero point when
    asymmetric) per ``group_size`` values along the reduction (None: per row / per head)."""

    bits: Annotated[int, Field(ge=1, le=16, strict=True)]
    group_size: PosInt | None = None
    symmetric: bool = False
    scale_bits: Annotated[int, Field(ge=0, le=32, strict=True)] = 16

    def meta_bits(self, row: int) -> float:
        """Scale and zero-point bits per value for rows of ``row`` values."""
        return (self.scale_bits + (0 if self.symmetric else self.bits)) / (self.group_size or row)


class Override(_Strict):
    """Other quantisation for some layers (``modules``: names such as ``mlp.down_proj``) of
    some blocks (``blocks``: indices; None: all): ``skip`` leaves them unquantised."""

    modules: list[str]
    blocks: list[int] | None = None
    skip: bool = False
    bits: Annotated[int, Field(ge=1, le=16, strict=True)] | None = None
    group_size: PosInt | None = None
    symmetric: bool | None = None


class WeightQuant(GroupQuant):
    #: weight-only (W4A16): de-quantised to the activation precision before the MAC
    dequantize: bool = True
    exclude: list[str] = Field(default_factory=list)
    #: GPTQ act-order: a ``g_idx`` of one int32 per input channel is stored with each layer
    desc_act: bool = False
    overrides: list[Override] = Field(default_factory=list)

    def for_layer(self, name: str, block: int | None) -> WeightQuant | None:
        """The quantisation of layer ``name`` in block ``block`` (None: unquantised)."""
        if name in self.exclude:
            return None
        out = self
        for o in self.overrides:
            if name in o.modules and (o.blocks is None or block in o.blocks):
                if o.skip:
                    return None
                upd = {k: v for k, v in (("bits", o.bits), ("group_size", o.group_size),
                                         ("symmetric", o.symmetric)) if v is not None}
                out = out.model_copy(update=upd)
        return out

    def weight_meta_bits(self, k: int, n: int) -> float:
        """Scale / zero point bits per weight of a ``k x n`` layer, plus GPTQ's ``g_idx``."""
        return self.meta_bits(k) + (32 / n if self.desc_act else 0.0)


class Structure(_Strict):
    structure: str = "2:4"
    density: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    exclude: list[str] = Field(default_factory=list)


class Quantisation(_Strict):
    weights: WeightQuant | None = None
    kv_cache: GroupQuant | None = None
    weight_structure: Structure | None = None


class Prefill(_Strict):
    tokens: PosInt


class Decode(_Strict):
    steps: PosInt
    context: PosInt


class Phases(_Strict):
    prefill: Prefill
    decode: Decode | None = None


class LLMSpec(_Strict):
    """A transformer LLM file (module docstring)."""

    name: str = Field(min_length=1)
    source: str = ""
    kind: Literal["decoder", "encoder"]
    layers: PosInt
    d_model: PosInt
    heads: PosInt
    kv_heads: PosInt | None = None
    head_dim: PosInt | None = None
    ffn: Literal["swiglu", "gelu"]
    ffn_hidden: PosInt
    vocab: PosInt
    norm: Literal["rmsnorm", "layernorm"]
    post_norm: bool = False
    positions: Literal["rope", "learned"]
    max_positions: PosInt | None = None
    type_vocab: Annotated[int, Field(ge=0, strict=True)] = 0
    bias: bool = False
    tied_embeddings: bool = False
    pooler: bool = False
    sliding_window: PosInt | None = None
    batch: PosInt = 1
    act_bits: Annotated[int, Field(ge=1, le=32, strict=True)] | None = 16
    prefill_logits: Literal["last", "all", "none"] = "last"
    phases: Phases
    quantisation: Quantisation = Quantisation()
    seed: int = Field(default=0, ge=0, strict=True)

    @model_validator(mode="after")
    def _check(self) -> LLMSpec:
        kv = self.kv_heads or self.heads
        if self.heads % kv:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({kv})")
        if self.head_dim is None and self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) is not a multiple of heads "
                             f"({self.heads}); give head_dim")
        if self.kind == "encoder" and self.phases.decode is not None:
            raise ValueError("an encoder has no decode phase")
        if self.positions == "learned" and self.max_positions is None:
            raise ValueError("positions: learned needs max_positions")
        return self

    @property
    def kv(self) -> int:
        return self.kv_heads or self.heads

    @property
    def hd(self) -> int:
        return self.head_dim or self.d_model // self.heads

    def weight_layers(self) -> list[tuple[str, int, int]]:
        """``(name, in_features, out_features)`` of every weight GEMM of one block, then the
        model-level ones (the names recipes and ``exclude`` lists select)."""
        d, hq, hk, f = self.d_model, self.heads * self.hd, self.kv * self.hd, self.ffn_hidden
        out = [("attn.q_proj", d, hq), ("attn.k_proj", d, hk), ("attn.v_proj", d, hk),
               ("attn.o_proj", hq, d)]
        out += ([("mlp.gate_proj", d, f), ("mlp.up_proj", d, f), ("mlp.down_proj", f, d)]
                if self.ffn == "swiglu" else [("mlp.fc1", d, f), ("mlp.fc2", f, d)])
        if self.pooler:
            out.append(("pooler", d, d))
        if self.kind == "decoder":
            out.append(("lm_head", d, self.vocab))
        return out

    def parameters(self) -> int:
        """Weights of the model (embeddings, projections, biases, norm gains and shifts)."""
        d = self.d_model
        norm = d if self.norm == "rmsnorm" else 2 * d
        block = [(k, n) for name, k, n in self.weight_layers()[:7] if "." in name]
        per = sum(k * n + (n if self.bias else 0) for k, n in block) + 2 * norm
        emb = self.vocab * d + (self.max_positions or 0) * d * (self.positions == "learned")
        emb += self.type_vocab * d
        top = sum(k * n + (n if self.bias else 0) for name, k, n in self.weight_layers()
                  if "." not in name and not (name == "lm_head" and self.tied_embeddings))
        return emb + self.layers * per + norm + top  # final (or embedding) norm: one

    def kv_bits(self) -> float:
        """Stored bits per cached K / V element incl. scales."""
        q = self.quantisation.kv_cache
        if q is None:
            return float(self.act_bits or 16)
        return q.bits + q.meta_bits(self.hd)

    def kv_cache_bytes(self, tokens: int) -> float:
        """Bytes of the KV cache holding ``tokens`` tokens of every sequence, all layers."""
        return self.batch * tokens * self.layers * 2 * self.kv * self.hd * self.kv_bits() / 8


def parse_llm(data: Any, source: str = "<dict>") -> LLMSpec:
    """Validate an LLM spec mapping (every error at once, with its path)."""
    if not isinstance(data, Mapping):
        raise WorkloadError(source, [("", f"must be a mapping (got {type(data).__name__})")])
    try:
        return LLMSpec.model_validate(data)
    except ValidationError as exc:
        raise WorkloadError(source, pydantic_errors(exc)) from None


def is_llm(data: Any) -> bool:
    return isinstance(data, Mapping) and data.get("kind") in ("decoder", "encoder")
