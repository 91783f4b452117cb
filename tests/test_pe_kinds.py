"""PE kinds: precision checks, the array's view of a GEMM, rates and action counts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.errors import ConfigError, MappingError
from simulator.hardware.pe import PE_KINDS
from simulator.hardware.pe_kinds import pe_kind

KINDS = ["mac", "shift", "xnor", "ternary", "bitserial", "bitfusion", "bfp"]


def test_all_kinds_registered_with_citations():
    assert sorted(KINDS) == PE_KINDS.names
    for name in KINDS:
        kind = pe_kind(name)
        assert kind.kind == name
        assert kind.citation, name


# (kind, params, layer precision) that must be rejected, and a word the message must hold.
UNSUPPORTED = [
    ("xnor", {}, dict(weight_bits=8, act_bits=8, weight_scheme="int"), "1-bit"),
    ("xnor", {}, dict(weight_bits=1, act_bits=8, weight_scheme="binary"), "act_bits=8"),
    ("shift", {}, dict(weight_bits=8, act_bits=8, weight_scheme="int"), "pow2"),
    ("shift", {}, dict(weight_bits=12, act_bits=8, weight_scheme="pow2"), "2..8"),
    ("ternary", {}, dict(weight_bits=8, act_bits=8, weight_scheme="int"), "ternary"),
    ("ternary", {}, dict(weight_bits=4, act_bits=8, weight_scheme="ternary"), "at most 2"),
    ("bitfusion", {}, dict(weight_bits=16, act_bits=8, weight_scheme="int"), "at most 8"),
    ("bitserial", {}, dict(weight_bits=8, act_bits=20, weight_scheme="int"), "act_bits"),
    ("bitserial", {"max_act_bits": 8}, dict(weight_bits=8, act_bits=9), "at most 8"),
    ("bfp", {}, dict(weight_bits=1, act_bits=8, weight_scheme="bfp"), "2..16"),
    ("mac", {"number_format": "fp"}, dict(weight_bits=12, act_bits=8, weight_scheme="fp"),
     "8, 16 or 32"),
    ("mac", {}, dict(weight_bits=16, act_bits=16, weight_scheme="fp"), "number_format"),
    ("mac", {}, dict(weight_bits=8, act_bits=8, weight_scheme="bfp"), "scheme"),
    ("mac", {}, dict(weight_bits=8, act_bits=8, weight_scheme="int", act_scheme="pow2"),
     "activation scheme"),
]


@pytest.mark.parametrize(("name", "params", "prec", "word"), UNSUPPORTED)
def test_unsupported_precision_names_layer_and_pe(name, params, prec, word):
    with pytest.raises(MappingError, match=rf"layer 'conv1'.*pe '{name}'") as err:
        pe_kind(name, **params).check("conv1", **prec)
    assert word in str(err.value)


SUPPORTED = [
    ("mac", dict(weight_bits=8, act_bits=8)),
    ("mac", dict(weight_bits=16, act_bits=16)),
    ("mac", dict(weight_bits=4, act_bits=8, weight_scheme="pow2")),
    ("shift", dict(weight_bits=4, act_bits=8, weight_scheme="pow2")),
    ("xnor", dict(weight_bits=1, act_bits=1, weight_scheme="binary", act_scheme="binary")),
    ("ternary", dict(weight_bits=2, act_bits=8, weight_scheme="ternary")),
    ("bitserial", dict(weight_bits=8, act_bits=3)),
    ("bitfusion", dict(weight_bits=2, act_bits=8)),
    ("bfp", dict(weight_bits=8, act_bits=8, weight_scheme="bfp", act_scheme="bfp")),
]


@pytest.mark.parametrize(("name", "prec"), SUPPORTED)
def test_supported_precision_passes(name, prec):
    pe_kind(name).check("conv1", **prec)


def test_fp_pe_runs_fp_and_int_layers():
    fp = pe_kind("mac", number_format="fp")
    assert fp.number_format == "fp" and pe_kind("mac").number_format == "int"
    fp.check("conv1", 16, 16, "fp", "fp")
    fp.check("conv1", 8, 8)


def test_bad_pe_config_is_a_config_error_with_path():
    with pytest.raises(ConfigError, match=r"pe\.impl.*unknown pe_kind impl 'nope'"):
        pe_kind("nope")
    with pytest.raises(ConfigError, match=r"pe\.word_bits"):
        pe_kind("xnor", word_bits=0)
    with pytest.raises(ConfigError, match=r"pe\.lanes: unknown key"):
        pe_kind({"impl": "mac", "lanes": 4})
    assert pe_kind({"impl": "bfp", "block": 8}).params.block == 8


@pytest.mark.parametrize(("w", "a", "rate"), [(8, 8, 1), (8, 4, 2), (4, 8, 2), (4, 4, 4),
                                              (8, 2, 4), (2, 8, 4), (4, 2, 8), (2, 2, 16),
                                              (1, 1, 16), (3, 5, 2), (6, 7, 1)])
def test_bitfusion_rate_is_64_over_fused_widths(w, a, rate):
    """Sharma et al. 2018: 16 2-bit bricks, a w x a product takes (w/2)(a/2) of them."""
    kind = pe_kind("bitfusion")
    assert kind.macs_per_pe_per_cycle(w, a) == rate
    assert kind.gemm_view(7, 33, 5, w, a) == (7, math.ceil(33 / rate), 5, 1)
    assert kind.actions(2, 3, 4, w, a)["bitbrick"] == 24 * 16 // rate


def test_rates_and_views_per_kind():
    assert pe_kind("mac").gemm_view(5, 9, 6, 8, 8) == (5, 9, 6, 1)
    assert pe_kind("shift").gemm_view(5, 9, 6, 4, 8) == (5, 9, 6, 1)
    assert pe_kind("ternary").gemm_view(5, 9, 6, 2, 8) == (5, 9, 6, 1)
    assert pe_kind("bfp").gemm_view(5, 9, 6, 8, 8) == (5, 9, 6, 1)
    assert pe_kind("xnor", word_bits=4).gemm_view(5, 9, 6, 1, 1) == (5, 3, 6, 1)
    assert pe_kind("xnor").macs_per_pe_per_cycle(1, 1) == 64
    assert pe_kind("bitserial").gemm_view(5, 9, 6, 8, 5) == (5, 9, 6, 5)
    assert pe_kind("bitserial", lanes=4).gemm_view(5, 9, 6, 8, 5) == (5, 3, 6, 5)
    assert pe_kind("bitserial", lanes=8).macs_per_pe_per_cycle(8, 4) == 2


def test_actions_per_kind():
    M, K, N = 3, 10, 4
    macs = M * K * N
    assert pe_kind("mac").actions(M, K, N, 8, 8) == {"mac": macs}
    assert pe_kind("shift").actions(M, K, N, 4, 8) == {"shift_add": macs}
    assert pe_kind("ternary").actions(M, K, N, 2, 8) == {"add_sub": macs}
    assert pe_kind("xnor", word_bits=4).actions(M, K, N, 1, 1) == {"xnor_popcount": M * N * 3}
    assert pe_kind("bitserial").actions(M, K, N, 8, 6) == {"bit_serial_step": macs * 6}
    assert pe_kind("bfp", block=4).actions(M, K, N, 8, 8) == {"mantissa_mac": macs,
                                                              "exponent_align": M * N * 3}
    assert pe_kind("mac").actions(M, K, N, 8, 8, codebook_size=16) == {"mac": macs,
                                                                       "codebook_read": macs}
    assert pe_kind("bfp").weight_storage_bits(8) == 8.5
    assert pe_kind("shift").weight_storage_bits(4) == 4


def per_fold(dataflow: str, R: int, C: int, view) -> tuple[int, int]:
    """(folds, cycles per fold) of SCALE-Sim's closed form on the array's view of a GEMM."""
    M, K, N, s = view
    if dataflow == "os":
        return math.ceil(M / R) * math.ceil(N / C), K * s + R + C - 2
    other = N if dataflow == "ws" else M
    stream = M if dataflow == "ws" else N
    return math.ceil(K / R) * math.ceil(other / C), 2 * R + C + stream * s - 2


@settings(max_examples=50, deadline=None)
@given(M=st.integers(1, 300), K=st.integers(1, 300), N=st.integers(1, 300),
       R=st.integers(1, 64), C=st.integers(1, 64), lanes=st.integers(1, 16),
       dataflow=st.sampled_from(["os", "ws", "is"]))
def test_bitserial_stream_halves_from_8_to_4_bit_activations(M, K, N, R, C, lanes, dataflow):
    kind = pe_kind("bitserial", lanes=lanes)
    f8, c8 = per_fold(dataflow, R, C, kind.gemm_view(M, K, N, 8, 8))
    f4, c4 = per_fold(dataflow, R, C, kind.gemm_view(M, K, N, 8, 4))
    fill = R + C - 2 + (0 if dataflow == "os" else R)
    assert f8 == f4
    assert c8 - fill == 2 * (c4 - fill)
    assert f8 * c8 - 1 > f4 * c4 - 1


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(PE_KINDS.names)), st.integers(1, 9), st.integers(1, 300),
       st.integers(1, 9), st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4, 8]),
       st.sampled_from([None, 2, 16]))
def test_declared_action_names_are_what_each_kind_counts(impl, M, K, N, w, a, codebook):
    """The names the energy table's check reads without building a kind
    (``PEKind.action_names``) are exactly those its ``actions`` count, whatever the GEMM,
    widths and codebook."""
    kind = pe_kind(impl)
    try:
        counted = set(kind.actions(M, K, N, w, a, codebook))
    except (ConfigError, MappingError):  # widths the kind does not run
        return
    assert counted <= PE_KINDS.get(impl).action_names()
    assert counted | {"codebook_read"} == PE_KINDS.get(impl).action_names()
