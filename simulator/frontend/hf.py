"""A local Hugging Face model directory -> an LLM spec, with its ``quantization_config``.

Reads ``config.json`` only (no weights, no hub, no ``transformers`` needed): LLaMA-family
(``llama``, ``mistral``, ``qwen2``, ``qwen3``, ``gemma``-style keys ``hidden_size``,
``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``, ``intermediate_size``,
``head_dim``, ``sliding_window``, ``tie_word_embeddings``), ``gpt2`` (``n_embd``, ``n_layer``,
``n_head``, ``n_inner``, ``n_positions``) and ``bert`` (encoder). An already-quantised checkpoint
then simulates without a recipe:

* **GPTQ** (``quant_method: gptq``; Frantar et al. ICLR 2023): ``bits``, ``group_size`` (-1:
  per channel), ``sym``, ``desc_act`` (act-order: each layer also stores a ``g_idx`` of one
  int32 per input channel, 32 / out_features bits per weight), and GPTQModel's per-module
  ``dynamic`` overrides: ``"+:regex": {bits, group_size, ...}`` changes the matching modules,
  ``"-:regex": {}`` leaves them unquantised; regexes match full module names
  (``model.layers.3.mlp.down_proj``), so one block can differ from the others;
* **AWQ** (``quant_method: awq``; Lin et al. MLSys 2024): ``bits``, ``group_size``,
  ``zero_point``, ``modules_to_not_convert``;
* **compressed-tensors** (``quant_method: compressed-tensors``, llm-compressor): each of
  ``config_groups``' ``weights`` (``num_bits``, ``symmetric``, ``strategy``: group / channel /
  tensor, ``group_size``) for its ``targets`` (``Linear``), ``input_activations`` (integer
  activations: W8A8, no de-quantisation), ``ignore`` (names or ``re:`` regexes) and
  ``sparsity_config`` (``format: sparse-24*`` or ``sparsity_structure: "2:4"``: 2:4 weights).

Scales are fp16 (16 bits) unless the config says otherwise; an asymmetric scheme stores a zero
point at the weight width per group, as GPTQ / AWQ pack them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from simulator.errors import SimulatorError, WorkloadError
from simulator.workload.llm import LLMSpec, parse_llm

#: our block layer name -> the module path inside block i, per model family
_BLOCK_NAMES = {
    "llama": {"attn.q_proj": "self_attn.q_proj", "attn.k_proj": "self_attn.k_proj",
              "attn.v_proj": "self_attn.v_proj", "attn.o_proj": "self_attn.o_proj",
              "mlp.gate_proj": "mlp.gate_proj", "mlp.up_proj": "mlp.up_proj",
              "mlp.down_proj": "mlp.down_proj"},
    "gpt2": {"attn.q_proj": "attn.c_attn", "attn.k_proj": "attn.c_attn",
             "attn.v_proj": "attn.c_attn", "attn.o_proj": "attn.c_proj",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"},
    "bert": {"attn.q_proj": "attention.self.query", "attn.k_proj": "attention.self.key",
             "attn.v_proj": "attention.self.value", "attn.o_proj": "attention.output.dense",
             "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"},
}
_PREFIX = {"llama": "model.layers", "gpt2": "transformer.h", "bert": "encoder.layer"}


def _family(model_type: str) -> str:
    if model_type in ("gpt2", "bert"):
        return model_type
    return "llama"


def read_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    cfg = p / "config.json" if p.is_dir() else p
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimulatorError(f"{cfg}: file not found (a Hugging Face model directory has a "
                             f"config.json)") from None
    except json.JSONDecodeError as exc:
        raise SimulatorError(f"{cfg}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SimulatorError(f"{cfg}: expected a JSON object")
    return data


def llm_spec_from_hf(path: str | Path, *, prefill_tokens: int = 512, decode_steps: int = 128,
                     act_bits: int = 16) -> LLMSpec:
    """The LLM spec of a local Hugging Face model directory (module docstring)."""
    cfg = read_config(path)
    src = str(Path(path) / "config.json" if Path(path).is_dir() else path)
    mt = str(cfg.get("model_type", ""))
    fam = _family(mt)
    if fam == "gpt2":
        d = cfg.get("n_embd", 768)
        spec: dict[str, Any] = {
            "kind": "decoder", "layers": cfg.get("n_layer", 12), "d_model": d,
            "heads": cfg.get("n_head", 12), "ffn": "gelu",
            "ffn_hidden": cfg.get("n_inner") or 4 * d, "vocab": cfg.get("vocab_size", 50257),
            "norm": "layernorm", "positions": "learned",
            "max_positions": cfg.get("n_positions", 1024), "bias": True,
            "tied_embeddings": cfg.get("tie_word_embeddings", True)}
    elif fam == "bert":
        spec = {"kind": "encoder", "layers": cfg["num_hidden_layers"],
                "d_model": cfg["hidden_size"], "heads": cfg["num_attention_heads"],
                "ffn": "gelu", "ffn_hidden": cfg["intermediate_size"],
                "vocab": cfg["vocab_size"], "norm": "layernorm", "post_norm": True,
                "positions": "learned", "max_positions": cfg.get("max_position_embeddings", 512),
                "type_vocab": cfg.get("type_vocab_size", 2), "bias": True, "pooler": True}
    else:
        try:
            spec = {"kind": "decoder", "layers": cfg["num_hidden_layers"],
                    "d_model": cfg["hidden_size"], "heads": cfg["num_attention_heads"],
                    "kv_heads": cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
                    "ffn": "swiglu", "ffn_hidden": cfg["intermediate_size"],
                    "vocab": cfg["vocab_size"], "norm": "rmsnorm", "positions": "rope",
                    "tied_embeddings": bool(cfg.get("tie_word_embeddings", False))}
        except KeyError as exc:
            raise WorkloadError(src, [(str(exc.args[0]), f"required for model_type {mt!r}")]
                                ) from None
        if cfg.get("head_dim"):
            spec["head_dim"] = cfg["head_dim"]
        if cfg.get("sliding_window"):
            spec["sliding_window"] = cfg["sliding_window"]
    phases: dict[str, Any] = {"prefill": {"tokens": prefill_tokens}}
    if spec["kind"] == "decoder":
        phases["decode"] = {"steps": decode_steps, "context": prefill_tokens}
    spec.update(name=Path(path).name if Path(path).is_dir() else mt, act_bits=act_bits,
                source=f"Hugging Face config {src}", phases=phases)
    base = parse_llm(spec, src)
    q = cfg.get("quantization_config")
    if q is None:
        return base
    quant, bits = quantisation(q, base, fam, src)
    data = {**base.model_dump(), "quantisation": quant}
    if bits is not None:
        data["act_bits"] = bits
    return parse_llm(data, src)


def _match(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    return name == pattern or name.endswith("." + pattern) or pattern in name.split(".")


def quantisation(q: dict[str, Any], spec: LLMSpec, fam: str, src: str
                 ) -> tuple[dict[str, Any], int | None]:
    """The spec's ``quantisation`` section from a ``quantization_config`` (and the activation
    bits when the checkpoint quantises activations)."""
    method = str(q.get("quant_method", "")).lower()
    names = [n for n, _, _ in spec.weight_layers()]
    full = {(i, n): f"{_PREFIX[fam]}.{i}.{_BLOCK_NAMES[fam].get(n, n)}"
            for i in range(spec.layers) for n in names if "." in n}
    top = {n: n for n in names if "." not in n}
    act_bits = None
    structure = None
    if method == "gptq":
        g = int(q.get("group_size", 128))
        base = {"bits": int(q.get("bits", 4)), "group_size": None if g <= 0 else g,
                "symmetric": bool(q.get("sym", True)), "desc_act": bool(q.get("desc_act"))}
        skip = [n for n in names if "." not in n]  # GPTQ quantises the blocks' linears only
        rules = []
        for key, val in (q.get("dynamic") or {}).items():
            neg = key.startswith("-:")
            rx = re.compile(key[2:] if key[:2] in ("+:", "-:") else key)
            rules.append((rx, neg, val or {}))
        overrides = []
        for (i, n), path in full.items():
            for rx, neg, val in rules:
                if rx.search(path):
                    o: dict[str, Any] = {"modules": [n], "blocks": [i], "skip": neg}
                    if not neg:
                        o.update({k: val[k] for k in ("bits", "group_size") if k in val})
                        if "sym" in val:
                            o["symmetric"] = bool(val["sym"])
                    overrides.append(o)
        for n, path in top.items():  # a "+:" rule naming lm_head quantises it too
            if n in skip and any(rx.search(path) and not neg for rx, neg, _ in rules):
                skip.remove(n)
        weights = {**base, "exclude": skip, "overrides": overrides}
    elif method == "awq":
        skip = [n for n in names if "." not in n or any(
            _match(m, n) for m in q.get("modules_to_not_convert") or [])]
        weights = {"bits": int(q.get("w_bit", q.get("bits", 4))),
                   "group_size": int(q.get("q_group_size", q.get("group_size", 128))),
                   "symmetric": not bool(q.get("zero_point", True)), "exclude": skip}
    elif method == "compressed-tensors":
        weights, act_bits = _compressed_tensors(q, names, full, top, src)
        sp = q.get("sparsity_config") or {}
        if sp and ("24" in str(sp.get("format", "")) or sp.get("sparsity_structure") == "2:4"):
            ign = sp.get("ignore") or []
            structure = {"structure": "2:4",
                         "exclude": [n for n in names if any(_match(p, n) for p in ign)]}
    else:
        raise WorkloadError(src, [("quantization_config.quant_method",
                                   f"{method!r} is not read (gptq, awq, compressed-tensors)")])
    out: dict[str, Any] = {"weights": weights}
    if structure is not None:
        out["weight_structure"] = structure
    return out, act_bits


def _compressed_tensors(q: dict[str, Any], names: list[str], full: dict[tuple[int, str], str],
                        top: dict[str, str], src: str) -> tuple[dict[str, Any], int | None]:
    groups = list((q.get("config_groups") or {}).values())
    if not groups:
        raise WorkloadError(src, [("quantization_config.config_groups", "empty")])
    g = groups[0]
    w = g.get("weights") or {}
    strategy = w.get("strategy", "group")
    ignore = q.get("ignore") or []
    skip = [n for n in names if any(_match(p, n) for p in ignore)]
    acts = g.get("input_activations")
    act_bits = int(acts["num_bits"]) if acts else None
    weights = {"bits": int(w.get("num_bits", 8)),
               "group_size": int(w["group_size"]) if strategy == "group" and w.get("group_size")
               else None, "symmetric": bool(w.get("symmetric", True)),
               "dequantize": act_bits is None, "exclude": skip}
    if strategy == "tensor":
        weights["scale_bits"] = 0  # one scale per tensor: nothing per value
    return weights, act_bits
