"""LLM workloads: KV cache, weight-only and KV quantisation, GQA, phases, bundled specs.

Every expected number is worked out by hand in the comments from the spec's dimensions."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import load_arch, parse_network, simulate
from simulator.files import read_yaml
from simulator.frontend.recipe import load_recipe
from simulator.llm import expanded, simulate_llm
from simulator.workload.llm import parse_llm, phases

ROOT = Path(__file__).resolve().parent.parent
ARCH = ROOT / "arch_configs" / "llm_128x128_ws.yaml"


def tiny(**kw: object) -> dict:
    base = {"name": "tiny", "kind": "decoder", "layers": 2, "d_model": 8, "heads": 2,
            "ffn": "swiglu", "ffn_hidden": 16, "vocab": 10, "norm": "rmsnorm",
            "positions": "rope", "act_bits": 16,
            "phases": {"prefill": {"tokens": 5}, "decode": {"steps": 1, "context": 5}}}
    base.update(kw)
    return base


def _kv_read(rep, phase: str = "decode") -> int:
    df = rep.layers[(rep.layers.phase == phase)
                    & rep.layers.layer.str.match(r"attn\.(qk|av)")]
    return int((df.dram_filter_read_bytes * df.repeat).sum())


def test_kv_cache_bytes_of_one_decode_step_by_hand() -> None:
    # 2 layers, 2 heads of head_dim 8/2 = 4, fp16; the step at context 5 attends over 5 cached
    # tokens + its own = 6 keys. Per layer K: 2 heads x 4 x 6 x 2 B = 96 B, V the same:
    # 2 layers x 192 B = 384 B read from DRAM by attn.qk and attn.av.
    spec = parse_llm(tiny())
    rep = simulate_llm(load_arch(ARCH), spec)
    assert _kv_read(rep) == 384
    assert spec.kv_cache_bytes(6) == 384
    # after the step the cache holds 5 + 1 tokens
    assert rep.metrics["kv_cache_bytes"] == 384


def test_gqa_reads_kv_heads_over_heads_of_the_mha_kv_bytes() -> None:
    arch = load_arch(ARCH)
    mha = simulate_llm(arch, parse_llm(tiny(heads=4, d_model=16)))
    gqa = simulate_llm(arch, parse_llm(tiny(heads=4, kv_heads=1, d_model=16)))
    # head_dim 4; MHA K+V per layer at 6 keys: 2 x 4 heads x 4 x 6 x 2 B = 384 B, 2 layers 768 B
    assert _kv_read(mha) == 768
    assert _kv_read(gqa) * 4 == _kv_read(mha)  # kv_heads / heads = 1/4
    # same MACs: the query heads of a group share the KV head's keys
    macs = {n: int((r.layers.macs * r.layers.repeat)[r.layers.phase == "decode"].sum())
            for n, r in (("mha", mha), ("gqa", gqa))}
    d = 16
    assert macs["mha"] - macs["gqa"] == 2 * 2 * d * (4 - 1) * 4  # k_proj + v_proj, 2 layers


def test_w4_group128_weight_bytes_exactly() -> None:
    # 256 x 64 weights at 4 bits = 8192 B; groups of 128 along K: 2 per output column, each an
    # fp16 scale (2 B) and a 4-bit zero point (0.5 B): 2 x 64 x 2.5 = 320 B. Total 8512 B.
    wl = parse_network({"name": "w4", "layers": [{
        "name": "fc", "op": "linear", "in_features": 256, "out_features": 64, "tokens": 1,
        "weight_bits": 4, "act_bits": 16, "weight_scale_bits": (16 + 4) / 128,
        "weight_dequantize": True}]})
    rep = simulate(load_arch(ARCH), wl)
    row = rep.layers.iloc[0]
    assert row.dram_filter_read_bytes == 256 * 64 * 4 // 8 + 2 * 64 * (2 + 0.5)
    # MACs run at the activation precision; every weight is de-quantised once on its way in
    assert row.weight_bits == 16
    deq = rep.actions[rep.actions.action == "dequantize"]["count"].sum()
    assert deq == row.sram_filter_reads == 256 * 64
    # the same from the recipe method: its metadata bits per weight
    from simulator.frontend.group_quant import WeightOnlyParams, group_scale_bits
    assert group_scale_bits(WeightOnlyParams(bits=4, group_size=128), 256) == (16 + 4) / 128


def test_weight_only_spec_moves_weights_at_their_bits() -> None:
    spec = parse_llm(tiny(d_model=256, heads=2, ffn_hidden=256,
                          quantisation={"weights": {"bits": 4, "group_size": 128}}))
    rep = simulate_llm(load_arch(ARCH), spec)
    q = rep.layers[(rep.layers.phase == "decode") & (rep.layers.layer == "attn.q_proj")].iloc[0]
    # 256 x 256 at 4 bits = 32768 B, + 2 groups x 256 columns x (2 B scale + 0.5 B zero)
    assert q.dram_filter_read_bytes == 256 * 256 * 4 // 8 + 2 * 256 * 2.5


def test_kv_quantisation_scales_with_bits_plus_scales() -> None:
    spec = parse_llm(tiny(quantisation={"kv_cache": {"bits": 4, "group_size": 4}}))
    rep = simulate_llm(load_arch(ARCH), spec)
    # per value 4 bits + (fp16 scale + 4-bit zero) / 4 values = 9 bits (vs 16): 384 x 9/16
    assert spec.kv_bits() == 9
    assert _kv_read(rep) == 384 * 9 // 16
    assert "attn.kv_quantise" in set(rep.layers.layer)


def test_memo_equals_the_long_way() -> None:
    arch = load_arch(ARCH)
    spec = parse_llm(tiny(kv_heads=1, phases={"prefill": {"tokens": 6},
                                             "decode": {"steps": 3, "context": 6}},
                          quantisation={"weights": {"bits": 4, "group_size": 4},
                                        "kv_cache": {"bits": 8}}))
    rep = simulate_llm(arch, spec)
    for ph in phases(spec):
        long = simulate(arch, expanded(ph)).totals
        row = rep.phases[rep.phases.phase == ph.name].iloc[0]
        for col in ("total_cycles", "macs", "dram_read_bytes", "dram_write_bytes"):
            assert row[col] == long[col], col
        assert row.energy_pj == pytest.approx(long["energy_pj"], rel=1e-12)


@pytest.mark.parametrize(("name", "weights"), [
    ("llama2_7b", 6_738_415_616),   # Touvron et al. 2023 (Meta's released checkpoint)
    ("mistral_7b", 7_241_732_096),  # Jiang et al. 2023
    ("gpt2_small", 124_439_808),    # the released GPT-2 checkpoint (tied lm_head)
    ("bert_base", 109_482_240),     # bert-base-uncased incl. pooler
])
def test_bundled_specs_have_the_published_weight_counts(name: str, weights: int) -> None:
    spec = parse_llm(read_yaml(ROOT / "workloads" / "llm" / f"{name}.yaml"))
    assert spec.parameters() == weights


def test_decode_reads_every_weight_each_step_and_recipes_apply() -> None:
    spec = parse_llm(tiny(d_model=512, heads=8, ffn_hidden=1024, vocab=1000,
                          phases={"prefill": {"tokens": 16},
                                  "decode": {"steps": 2, "context": 16}}))
    arch = load_arch(ARCH)
    base = simulate_llm(arch, spec)
    from simulator.frontend.llm_recipe import apply_recipe

    w4 = simulate_llm(arch, apply_recipe(spec, load_recipe("w4a16-g128")))
    m0, m1 = base.metrics, w4.metrics
    assert m1["weight_bytes"] < m0["weight_bytes"] / 2
    for k in ("ttft_ms", "tpot_ms", "tokens_per_s", "energy_per_token_uj", "kv_cache_bytes",
              "decode_weight_traffic_share"):
        assert k in m1
    # the decode phase's weight reads: every GEMM weight once per step (no reuse across
    # tokens): 2 layers x (4 x 512^2 + 3 x 512 x 1024) + lm_head 512 x 1000, fp16, 2 steps
    dec = base.phases[base.phases.phase == "decode"].iloc[0]
    assert dec.weight_read_bytes == 2 * 2 * (2 * (4 * 512**2 + 3 * 512 * 1024) + 512 * 1000)


def test_recipe_that_needs_weights_is_refused() -> None:
    from simulator.frontend.llm_recipe import apply_recipe
    from simulator.frontend.recipe import RecipeError

    with pytest.raises(RecipeError, match=r"kmeans.*needs the model's weights"):
        apply_recipe(parse_llm(tiny()), load_recipe("kmeans16"))


def test_cli_runs_an_llm_spec(tmp_path: Path) -> None:
    from simulator.cli import main

    spec = tmp_path / "tiny.yaml"
    import yaml

    spec.write_text(yaml.safe_dump(tiny()))
    res = CliRunner().invoke(main, ["run", str(ARCH), str(spec), "--recipe",
                                    str(ROOT / "workloads/recipes/llm/w4a16-kv4.yaml"),
                                    "--format", "csv", "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "tpot_ms" in res.output
    sets = list((tmp_path / "out").iterdir())  # one result set, written as a whole
    assert len(sets) == 1 and sorted(p.name for p in sets[0].iterdir()) == [
        "llm_layers.csv", "llm_metrics.csv", "llm_phases.csv", "manifest.json"]


def test_bad_llm_spec_names_the_field() -> None:
    from simulator.errors import WorkloadError

    with pytest.raises(WorkloadError, match="kv_heads"):
        parse_llm(tiny(heads=4, kv_heads=3))


@settings(max_examples=25, deadline=None)
@given(df=st.sampled_from(["os", "ws", "is"]), kg=st.integers(1, 4), n=st.integers(1, 40),
       m=st.integers(1, 9), bits=st.sampled_from([2, 3, 4, 8]),
       g=st.sampled_from([8, 16, 32]), rows=st.integers(2, 8), cols=st.integers(2, 8))
def test_weight_only_bytes_and_dequantize_on_every_dataflow(tiny_arch, df, kg, n, m, bits, g,
                                                            rows, cols) -> None:
    """A weight-only layer whose weights fit the filter buffer moves each weight once at its
    bits plus one fp16 scale and a ``bits`` zero point per group of ``g`` (rounded up to a whole
    byte), on every dataflow and array shape; every value entering the array is de-quantised
    once; and the MACs run at the activation precision (16 bits here)."""
    from simulator.workload.layer import Layer, Operand

    k = kg * g
    arch = tiny_arch(rows, cols, df, bits=16)
    meta = (16 + bits) / g
    layer = Layer("w", "linear", "gemm", M=m, K=k, N=n, ifmap_elements=m * k,
                  filter_elements=k * n, ofmap_elements=m * n,
                  weight=Operand(bits=bits, scale_bits=meta, dequantize=True),
                  activation=Operand(bits=16))
    from simulator.workload.layer import Workload

    rep = simulate(arch, Workload("w", (layer,)))
    row = rep.layers.iloc[0]
    assert row.dram_filter_read_bytes == -(-(k * n * bits + (k // g) * n * (16 + bits)) // 8)
    deq = int(rep.actions[rep.actions.action == "dequantize"]["count"].sum())
    assert deq == row.sram_filter_reads > 0
    assert row.weight_bits == 16


def test_2of4_llm_weights_run_at_half_k_on_a_2of4_array() -> None:
    arch = load_arch(ROOT / "arch_configs" / "sparse_2of4_32x32_ws.yaml")
    base = parse_llm(tiny(d_model=64, heads=2, ffn_hidden=128, vocab=50))
    sparse = parse_llm(tiny(d_model=64, heads=2, ffn_hidden=128, vocab=50, quantisation={
        "weight_structure": {"structure": "2:4", "exclude": ["lm_head"]}}))
    a, b = simulate_llm(arch, base), simulate_llm(arch, sparse)
    q0 = a.layers[(a.layers.phase == "decode") & (a.layers.layer == "attn.q_proj")].iloc[0]
    q1 = b.layers[(b.layers.phase == "decode") & (b.layers.layer == "attn.q_proj")].iloc[0]
    # 64 x 64 weights, exactly 2 of every 4 along K kept: half the MACs are skipped
    assert q1.weight_density == 0.5 and q1.effectual_macs == q0.macs // 2
    assert q1.compute_cycles < q0.compute_cycles
    head = b.layers[(b.layers.phase == "decode") & (b.layers.layer == "lm_head")].iloc[0]
    assert head.weight_density == 1.0


def test_random_nm_mask_keeps_exactly_n_of_m() -> None:
    from simulator.mapping.masks import random_nm_mask

    mask = random_nm_mask((2, 10, 7), 2, 4, seed=3)
    assert mask.shape == (2, 10, 7)
    full = mask[:, :8, :].reshape(2, 2, 4, 7).sum(axis=2)
    assert (full == 2).all() and (mask[:, 8:, :].sum(axis=1) <= 2).all()
