"""Hugging Face model directories (config.json written here, tiny): the LLM spec they give,
the same decoder through the PyTorch importer, and quantised checkpoints' metadata (GPTQ with
act-order and per-module overrides, AWQ, compressed-tensors with 2:4) simulating without a
recipe. Expected bytes are worked out by hand in the comments."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from simulator import load_arch
from simulator.errors import SimulatorError
from simulator.frontend.hf import llm_spec_from_hf
from simulator.llm import simulate_llm, weight_bytes
from simulator.workload.llm import phases

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ARCH = Path(__file__).resolve().parent.parent / "arch_configs" / "llm_128x128_ws.yaml"
LLAMA = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 512,
         "vocab_size": 100, "max_position_embeddings": 64, "tie_word_embeddings": False}


def write(tmp_path: Path, cfg: dict[str, Any], name: str = "m") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _decode_reads(spec: Any) -> dict[str, list[int]]:
    """Per layer name: DRAM weight bytes of one decode-step instance, one per block group."""
    rep = simulate_llm(load_arch(ARCH), spec)
    df = rep.layers[(rep.layers.phase == "decode") & rep.layers.weight_layer]
    out: dict[str, list[int]] = {}
    for r in df.itertuples():
        out.setdefault(str(r.layer), []).extend([int(r.dram_filter_read_bytes)] * int(r.repeat))
    return {k: sorted(v) for k, v in out.items()}


def test_llama_config_gives_the_spec(tmp_path: Path) -> None:
    spec = llm_spec_from_hf(write(tmp_path, LLAMA), prefill_tokens=6, decode_steps=2)
    assert (spec.layers, spec.d_model, spec.heads, spec.kv, spec.ffn, spec.norm) == (
        2, 256, 4, 2, "swiglu", "rmsnorm")
    # 100 x 256 embedding + 2 x (2 x 256^2 + 2 x 256 x 128 + 3 x 256 x 512 + 2 x 256) + 256
    # + lm_head 256 x 100
    assert spec.parameters() == 25600 + 2 * (131072 + 65536 + 393216 + 512) + 256 + 25600


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_hf_decoder_through_the_importer_equals_its_spec(tmp_path: Path) -> None:
    """Prefill (all positions' logits, as the HF forward) and one decode step with the KV
    cache of the prompt: the importer's MACs equal the spec built from the same config."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from simulator.frontend.torch import import_torch
    from simulator.workload.spec import parse_network

    cfg = {**LLAMA, "hidden_size": 32, "intermediate_size": 64}
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(tf.LlamaConfig(**{k: v for k, v in cfg.items()
                                                   if k != "model_type"})).eval()
    spec = llm_spec_from_hf(write(tmp_path, cfg), prefill_tokens=6, decode_steps=1)
    spec = spec.model_copy(update={"prefill_logits": "all"})
    ids = torch.randint(0, 100, (1, 6))

    def macs(m: Any, x: Any) -> int:
        res = import_torch(m, x)
        return parse_network({"name": "m", "layers": [la.spec for la in res.layers]}).macs

    pre, dec = phases(spec)
    assert macs(model, ids) == sum(la.macs * n for la, n in pre.entries)
    with torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any) -> Any:
            return self.model(x, past_key_values=copy.deepcopy(cache), use_cache=True).logits

    assert macs(Step(), ids[:, :1]) == sum(la.macs * n for la, n in dec.entries)


def test_gptq_bits_groups_act_order_and_dynamic_overrides(tmp_path: Path) -> None:
    q = {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True, "desc_act": True,
         "dynamic": {r"-:model\.layers\.0\.mlp\.down_proj": {},
                     r"+:model\.layers\.1\.self_attn\.o_proj": {"bits": 8}}}
    spec = llm_spec_from_hf(write(tmp_path, {**LLAMA, "quantization_config": q}),
                            prefill_tokens=4, decode_steps=1)
    reads = _decode_reads(spec)
    # q_proj 256 x 256 at 4 bits = 32768 B; fp16 scale per 128 (symmetric: no zero) =
    # 2 x 256 x 2 B = 1024 B; act-order g_idx: 256 int32 = 1024 B -> 34816 B, in both blocks
    assert reads["attn.q_proj"] == [32768 + 1024 + 1024] * 2
    # block 0's down_proj stays fp16: 512 x 256 x 2 B; block 1's: 4 bits + 4 groups x 256
    # fp16 scales + a g_idx of 512 int32
    assert reads["mlp.down_proj"] == [512 * 256 // 2 + 4 * 256 * 2 + 512 * 4, 512 * 256 * 2]
    # block 1's o_proj at 8 bits: 65536 + 1024 + 1024; block 0's at 4 bits
    assert reads["attn.o_proj"] == [32768 + 2048, 65536 + 2048]
    assert reads["lm_head"] == [256 * 100 * 2]  # GPTQ leaves lm_head unquantised


def test_awq_zero_points_and_modules_not_converted(tmp_path: Path) -> None:
    q = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
         "version": "gemm", "modules_to_not_convert": ["v_proj"]}
    spec = llm_spec_from_hf(write(tmp_path, {**LLAMA, "quantization_config": q}),
                            prefill_tokens=4, decode_steps=1)
    reads = _decode_reads(spec)
    # 4-bit + (fp16 scale + 4-bit zero) per 128: 32768 + 2 x 256 x 2.5 B
    assert reads["attn.q_proj"] == [32768 + 1280] * 2
    assert reads["attn.v_proj"] == [256 * 128 * 2] * 2


def test_compressed_tensors_w8a8_with_2of4(tmp_path: Path) -> None:
    q = {"quant_method": "compressed-tensors", "format": "int-quantized",
         "config_groups": {"group_0": {"targets": ["Linear"],
                                       "weights": {"num_bits": 8, "symmetric": True,
                                                   "strategy": "channel"},
                                       "input_activations": {"num_bits": 8}}},
         "ignore": ["lm_head"],
         "sparsity_config": {"format": "sparse-24-bitmask", "sparsity_structure": "2:4",
                             "ignore": ["lm_head"]}}
    spec = llm_spec_from_hf(write(tmp_path, {**LLAMA, "quantization_config": q}),
                            prefill_tokens=4, decode_steps=1)
    assert spec.act_bits == 8
    w = spec.quantisation.weights
    assert w is not None and not w.dequantize and w.bits == 8
    layers = {la.name: la for la, _ in phases(spec)[1].entries}
    q_proj = layers["attn.q_proj"]
    assert q_proj.weight.structure == "2:4" and q_proj.weight.density == 0.5
    assert layers["lm_head"].weight.structure == "unstructured"
    assert weight_bytes(spec) < weight_bytes(llm_spec_from_hf(write(tmp_path, LLAMA, "plain")))


def test_bad_directories(tmp_path: Path) -> None:
    with pytest.raises(SimulatorError, match=r"config.json"):
        llm_spec_from_hf(tmp_path)
    with pytest.raises(SimulatorError, match=r"quant_method.*'bnb'"):
        llm_spec_from_hf(write(tmp_path, {**LLAMA, "quantization_config": {
            "quant_method": "bnb"}}))


def test_cli_runs_a_hugging_face_directory(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from simulator.cli import main

    q = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}
    d = write(tmp_path, {**LLAMA, "quantization_config": q})
    res = CliRunner().invoke(main, ["run", str(ARCH), str(d), "--prefill-tokens", "8",
                                    "--decode-steps", "2", "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert "tpot_ms" in res.output
