"""The measured gaps of issue 10 ("What moves where"), each a regression test with the values
worked by hand in its comments. Unless a test says otherwise the architecture is the
``tiny_arch`` of conftest: 1000 MHz (1 GB/s = 1 byte/cycle, 1 ns = 1 cycle), 8-bit operands,
32-bit partial sums, SRAM words of 8 bits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import REPO, arch_dict, make_layer
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import load_arch, load_workload, parse_arch, parse_network, simulate
from simulator.arch.accelerator import build
from simulator.engine import run_tiles
from simulator.simulation import map_layer
from simulator.workload.layer import Operand, Workload

FIXED = {"mapping": {"search": False}}


def run(arch: dict, *layers):
    return simulate(parse_arch(arch), Workload("w", tuple(layers))).layers.set_index("layer")


def _one_kb_single(**kw):
    """4x4 ws, unlimited bandwidth, 0.5 KB single-buffered ofmap SRAM (the 2-fold case)."""
    return arch_dict(4, 4, "ws", buffers={"ofmap": {"size_kb": 0.5, "double_buffered": False}},
                     **kw)


# -- gap 1: the streamed dimension is tiled, so partial sums stay on chip -------------------

def test_two_fold_layer_keeps_partial_sums_on_chip_only_when_m_is_tiled():
    # ws on 4x4, GEMM M=64, K=8, N=4: K takes 2 row folds (8/4), N one column fold. The
    # partial sums of the column slice are M x 4 x 4 B = 1024 B; the ofmap SRAM holds 512 B.
    # Whole M streamed (SCALE-Sim's order), fold k=1 cannot accumulate on fold k=0's slice.
    # Tiled M = 32 (order M outside K): each tile's slice is 32 x 4 x 4 = 512 B and fits, so
    #   DRAM: ifmap 64*8 = 512 B, filter 8*4 = 32 B once, no partial sums, outputs 64*4 = 256 B;
    #   compute: 2 M-tiles x 2 K-folds of 2R + C + 32 - 2 = 42 cycles, minus 1 = 167
    #   (SCALE-Sim's whole-stream mapping: 2 x (8 + 4 + 62) - 1 = 147).
    r = run(_one_kb_single(), make_layer(64, 8, 4)).loc["g"]
    assert r["tile_M"] == 32
    assert r["loop_order"].index("M") < r["loop_order"].index("K")
    assert r["dram_psum_read_bytes"] == 0
    assert (r["dram_ifmap_read_bytes"], r["dram_filter_read_bytes"]) == (512, 32)
    assert r["dram_write_bytes"] == 256
    assert r["compute_cycles"] == 167
    assert "ofmap" in r["resident"].split(",")


def test_fixed_order_spills_only_what_does_not_fit():
    # Gap 8: spills were all-or-nothing per layer. Same layer, search off (SCALE-Sim's order,
    # whole M): half of the 1024-byte slice (512 B, the first 32 rows) accumulates in the
    # buffer; the other half goes out after fold k=0 and comes back for k=1:
    #   psum reads 0.5 * 1024 = 512 B; writes 512 (spilled) + 256 (outputs) = 768 B
    #   (all-or-nothing: 1024 read, 1280 written). Compute stays SCALE-Sim's 147.
    r = run(_one_kb_single(**FIXED), make_layer(64, 8, 4)).loc["g"]
    assert r["tile_M"] == 64
    assert r["dram_psum_read_bytes"] == 512
    assert r["dram_write_bytes"] == 768
    assert r["compute_cycles"] == 147


def test_bundled_architectures_keep_most_partial_sums_on_chip():
    # Gap 1 as measured: on the bundled SCALE-Sim 32x32 (64 KB) and Eyeriss 12x14 ws-like
    # buffers, 94-99 % of the DRAM reads of ResNet-18's large layers were partial sums. With
    # the search they are a small share of the network's reads.
    wl = load_workload(REPO / "workloads" / "networks" / "resnet18.yaml")
    for name in ("scalesim_32x32_ws", "scalesim_32x32_is"):
        t = simulate(load_arch(REPO / "arch_configs" / f"{name}.yaml"), wl).totals
        assert t["dram_psum_read_bytes"] < 0.05 * t["dram_read_bytes"], name


# -- gap 2: data streams inside tiles; tiles are sound ---------------------------------------

@pytest.mark.parametrize("search", [False, True])
def test_bigger_buffers_are_not_slower_at_equal_traffic(search):
    # GEMM 4096 x 256 x 256 on os 32x32 at 8 GB/s: 160 KB SRAMs took 352,255 cycles, 10 MB
    # SRAMs 595,967 with the same DRAM bytes (the whole layer loaded before the first MAC).
    layer = make_layer(4096, 256, 256)
    over = {} if search else FIXED
    small = run(arch_dict(32, 32, "os", size_kb=160, dram_bandwidth=8.0, **over), layer).loc["g"]
    big = run(arch_dict(32, 32, "os", size_kb=10240, dram_bandwidth=8.0, **over), layer).loc["g"]
    if small["dram_read_bytes"] == big["dram_read_bytes"]:
        assert big["total_cycles"] <= small["total_cycles"]
    # Whatever the mapping, the layer must move its 4096*256 + 256*256 = 1,114,112 input bytes
    # at 8 B/cycle: 139,264 cycles, and compute (os: 128*8 folds of 256 + 62, minus 1 =
    # 325,631) overlaps them: the 10 MB run is within 2 % of the larger of the two.
    assert big["total_cycles"] <= 1.02 * max(big["compute_cycles"],
                                             big["dram_read_bytes"] / 8)


def test_first_compute_waits_for_the_first_fold_only():
    # Same layer, 10 MB SRAMs, search off: the first fold (os: 32 rows of the ifmap and 32
    # filter columns, K = 256 each, 16,384 bytes) streams K, so it starts on its first step,
    # one ifmap column and one weight row: 32 + 32 = 64 bytes = 8 cycles at 8 B/cycle (the
    # whole fold would be 2,048 cycles, the whole layer's 1,114,112 bytes 139,264).
    acc = build(parse_arch(arch_dict(32, 32, "os", size_kb=10240, dram_bandwidth=8.0,
                                     **FIXED)))
    m = map_layer(make_layer(4096, 256, 256), acc)
    log: list = []
    run_tiles(m.tiles, acc.dram, log=log)
    start = min(c for t, e, c in log if e == "compute_start")
    assert start == 8


def test_tile_boundaries_never_exceed_capacity():
    # Folds loading 90, 20, 85 bytes into 100-byte halves gave tiles of 90 and 105 bytes (a
    # new tile only when the running sum crossed a multiple of 100). Grouped soundly:
    # 90 + 20 > 100, so three tiles of 90, 20 and 85.
    from simulator.mapping.tiles import build_tiles

    zeros = np.zeros(3)
    t = build_tiles(np.array([5, 5, 5]), {"ifmap": np.array([90.0, 20.0, 85.0]),
                                          "filter": zeros, "psum": zeros},
                    zeros, np.full(3, -1), {"ifmap": 100.0, "filter": 100.0, "ofmap": 100.0})
    assert t.ifmap_load_bytes.tolist() == [90, 20, 85]
    # A fold whose streamed data alone exceeds the half is cut into pieces: 250 bytes, of
    # which 10 are needed to start (head), into 100-byte halves (99 usable: a byte of
    # rounding) -> 240 / (99 - 10) -> 3 pieces: 10 + 80, 80, 80 -> tiles of 90, 80, 80 bytes;
    # 10 cycles of which the last 1 needs all data (tail): 9 shared 3, 3, 3, the tail in the
    # last piece -> 3, 3, 4.
    t = build_tiles(np.array([10]), {"ifmap": np.array([250.0]), "filter": np.zeros(1),
                                     "psum": np.zeros(1)}, np.zeros(1), np.full(1, -1),
                    {"ifmap": 100.0, "filter": 100.0, "ofmap": 100.0},
                    head={"ifmap": np.array([10.0]), "filter": np.zeros(1),
                          "psum": np.zeros(1)}, tail=np.array([1]))
    assert t.ifmap_load_bytes.tolist() == [90, 80, 80]
    assert t.busy_cycles.tolist() == [3, 3, 4]
    assert t.head_load_bytes.tolist() == [10, 0, 0]
    assert t.tail_cycles.tolist() == [0, 0, 1]


SYSTOLIC = ["cnvlutin_like_16x16_os", "edge_8x8", "eyeriss_12x14", "scalesim_32x32_is",
            "scalesim_32x32_os", "scalesim_32x32_ws", "sparse_2of4_32x32_ws",
            "tpu_like_128x128_ws"]


@pytest.mark.parametrize("arch", SYSTOLIC)
def test_no_bundled_tile_exceeds_its_buffer_half(arch):
    # Gap 2 as measured: 366 bundled layer/operand cases had a tile whose new bytes exceeded
    # the buffer half (up to 24.5x). Every tile of every GEMM of ResNet-18, MobileNetV2 and
    # the BERT layer now fits: ifmap and filter loads in their halves, partial sums read back
    # plus outputs in the ofmap half.
    acc = build(load_arch(REPO / "arch_configs" / f"{arch}.yaml"))
    half = {b: acc.buffers[b].tile_bytes for b in ("ifmap", "filter", "ofmap")}
    for net in ("resnet18", "mobilenetv2", "bert_base_layer"):
        for layer in load_workload(REPO / "workloads" / "networks" / f"{net}.yaml").layers:
            if layer.kind != "gemm":
                continue
            t = map_layer(layer, acc).tiles
            assert t.ifmap_load_bytes.max() <= half["ifmap"], (net, layer.name)
            assert t.filter_load_bytes.max() <= half["filter"], (net, layer.name)
            assert (t.psum_load_bytes + t.store_bytes).max() <= half["ofmap"], (net, layer.name)


# -- gap 3: DRAM channels in parallel --------------------------------------------------------

def test_more_channels_are_not_slower():
    # 16 x 256 x 256 ws at 1 GB/s in total took 75,199 cycles on 1 channel and 290,239 on 4
    # (each transfer held one channel at a quarter of the bandwidth).
    layer = make_layer(16, 256, 256)
    totals = [run(arch_dict(32, 32, "ws", size_kb=64, dram_bandwidth=1.0, channels=c),
                  layer).loc["g", "total_cycles"] for c in (1, 2, 4)]
    assert totals[1] <= totals[0] and totals[2] <= totals[1]


def test_spilled_partial_sums_wait_for_their_write():
    # The fixed-order 2-fold layer above spills half its partial sums after fold k=0 and
    # reads them back for fold k=1: at 1 B/cycle the engine's timeline must show that read
    # start only after the spill has drained (read after write).
    acc = build(parse_arch(_one_kb_single(dram_bandwidth=1.0, **FIXED)))
    m = map_layer(make_layer(64, 8, 4), acc)
    t = m.tiles
    reader = int(np.flatnonzero(t.psum_load_bytes > 0)[0])
    writer = int(t.psum_after[reader])
    assert 0 <= writer < reader and t.store_bytes[writer] > 0
    log: list = []
    run_tiles(t, acc.dram, log=log)
    ev = {(tile, name): c for tile, name, c in log}
    assert ev[(reader, "load_start")] >= ev[(writer, "drain_end")]


# -- gap 4 and 5: skipping keeps the SRAM-port limit; packed kinds skip on packed K -----------

def test_skipping_keeps_the_sram_port_limit():
    # 64 x 64 x 64 on 8x8 ws, SRAM ports of one 8-bit word per cycle, 99 %-dense activations.
    # Per fold the ofmap port moves 64 x 8 partial sums of 32 bits = 2,048 cycles, and twice
    # that after the first K fold (read-modify-write): per column 2,048 + 7 x 4,096 = 30,720,
    # 8 columns -> 245,760 - 1 = 245,759. Skipping only the 1 % zeros cannot beat the port:
    # it took 5,503 cycles (the lane work alone).
    layer = make_layer(64, 64, 64, activation=Operand(density=0.99))
    dense = run(arch_dict(8, 8, "ws", sram_bandwidth=1.0, **FIXED), layer).loc["g"]
    skip = run(arch_dict(8, 8, "ws", sram_bandwidth=1.0, **FIXED,
                         pe_array={"sparsity": {"activations": "skip"}}), layer).loc["g"]
    assert dense["total_cycles"] == 245_759
    assert skip["total_cycles"] == 245_759


def test_packed_kinds_skip_on_packed_k():
    # Bit Fusion at 4x4 bits fuses F = 64 / (4*4) = 4 MACs per PE: M=64, K=256, N=32 on 8x8 ws
    # sees K' = 64: 8 x 4 = 32 folds of 2*8 + 8 + 64 - 2 = 86 cycles, 2,751 in all. With 99 %
    # dense activations a 4-value word is zero with probability 1e-8: skipping saves nothing,
    # and was 4,863 (lane work counted on the unpacked K: 128 folds' worth in 32 folds).
    arch = arch_dict(8, 8, "ws", bits=4, **FIXED, pe_array={"pe": "bitfusion"})
    skip_arch = arch_dict(8, 8, "ws", bits=4, **FIXED,
                          pe_array={"pe": "bitfusion", "sparsity": {"activations": "skip"}})
    dense = run(arch, make_layer(64, 256, 32)).loc["g"]
    skip = run(skip_arch, make_layer(64, 256, 32, activation=Operand(density=0.99))).loc["g"]
    assert dense["folds"] == skip["folds"] == 32
    assert dense["compute_cycles"] == skip["compute_cycles"] == 2751


# -- gap 6: SRAM reads of packed kinds ---------------------------------------------------------

def test_packed_kinds_read_every_stored_bit():
    # 1-bit 64 x 1024 x 64 on 8x8 ws, 8-bit SRAM words: 1024 * 64 one-bit weights = 8,192
    # bytes are written into the filter buffer, and the array reads each once per fold
    # (stationary): 8,192 words on a mac PE and on an xnor PE (16 words of 64 bits per
    # column), where it was 128.
    layer = make_layer(64, 1024, 64, weight=Operand(bits=1, scheme="binary"),
                       activation=Operand(bits=1))
    words = {}
    for pe in ("mac", "xnor"):
        arch = arch_dict(8, 8, "ws", **FIXED, pe_array={"pe": pe, "weight_bits": 1,
                                                         "act_bits": 1})
        rep = simulate(parse_arch(arch), Workload("w", (layer,)))
        a = rep.actions.set_index(["component", "action"])["count"]
        words[pe] = (int(a[("filter", "read")]), int(a[("filter", "write")]))
    assert words["mac"] == words["xnor"] == (8192, 8192)


# -- gap 7: state survives a layer -------------------------------------------------------------

def test_eie_weights_are_preloaded_once():
    # The EIE-like array keeps the whole compressed model in its PE SRAMs (Han et al., ISCA
    # 2016); streaming them instead, AlexNet's fc7 (EIE Table III) spends over 10x its compute
    # time loading weights over DRAM. With residency weights: preload they are a one-off
    # preload (at 12.8 GB/s and 800 MHz, 16 bytes/cycle) and the layer runs at its compute time.
    wl = load_workload(REPO / "workloads" / "profiles" / "eie_layers.yaml")
    fc7 = Workload("fc7", tuple(x for x in wl.layers if x.name == "Alex-7"))
    arch = load_arch(REPO / "arch_configs" / "eie_like.yaml")
    assert arch.residency.weights == "preload"
    rep = simulate(arch, fc7)
    t, r = rep.totals, rep.layers.iloc[0]
    assert t["dram_filter_read_bytes"] == 0
    assert t["preload_dram_bytes"] == r["preload_bytes"] > 0
    assert t["preload_cycles"] == 100 * 800 // 1000 + math.ceil(r["preload_bytes"] / 16)
    assert r["total_cycles"] <= 1.05 * r["compute_cycles"] + 2 * 80
    raw = parse_arch({**_raw("eie_like"), "residency": {"weights": "stream"}})
    streamed = simulate(raw, fc7).layers.iloc[0]
    assert streamed["total_cycles"] > 10 * streamed["compute_cycles"]
    assert streamed["dram_filter_read_bytes"] == r["preload_bytes"]
    # The nine benchmark layers do not fit together in 8 MB: weights are pinned in layer
    # order until the first that does not fit beside them; that layer and all after stream.
    rows = simulate(arch, wl).layers
    pinned = (rows["preload_bytes"] > 0).tolist()
    first_out = pinned.index(False)
    assert first_out > 0 and not any(pinned[first_out:])
    assert (rows["dram_filter_read_bytes"][:first_out] == 0).all()
    assert rows["preload_bytes"].sum() <= 8192 * 1024


def _raw(name: str) -> dict:
    from simulator.files import read_yaml

    return read_yaml(REPO / "arch_configs" / f"{name}.yaml")


def _chain_arch(keep: str):
    return arch_dict(8, 8, "ws", size_kb=64, dram_bandwidth=4.0, residency={"activations": keep})


def test_outputs_that_fit_stay_on_chip_along_real_edges():
    # conv (8 -> 8 channels, 3x3 pad 1 on 8x8) -> conv -> add(first conv, second conv), all
    # 8x8x8 = 512-byte tensors in a 64 KB ifmap buffer. Kept on chip: conv0's output feeds
    # conv1 and the residual add (its last consumer), conv1's the add; the add is the
    # network's output and goes to DRAM. So conv1 and the add read no activations from DRAM,
    # conv0 and conv1 write none; only the add writes its 512 bytes.
    net = parse_network({"name": "res", "layers": [
        {"name": "c0", "op": "conv2d", "in_channels": 8, "out_channels": 8, "in_h": 8,
         "in_w": 8, "kernel": 3, "padding": 1},
        {"name": "c1", "op": "conv2d", "in_channels": 8, "out_channels": 8, "in_h": 8,
         "in_w": 8, "kernel": 3, "padding": 1},
        {"name": "add", "op": "add", "shape": [8, 8, 8], "inputs": ["c0", "c1"]}]})
    kept = simulate(parse_arch(_chain_arch("keep")), net).layers.set_index("layer")
    dram = simulate(parse_arch(_chain_arch("dram")), net).layers.set_index("layer")
    assert kept.loc["c0", "dram_write_bytes"] == kept.loc["c1", "dram_write_bytes"] == 0
    assert kept.loc["c1", "dram_ifmap_read_bytes"] == 0
    assert kept.loc["add", "dram_read_bytes"] == 0
    assert kept.loc["add", "dram_write_bytes"] == 512
    assert dram.loc["c0", "dram_write_bytes"] == dram.loc["c1", "dram_write_bytes"] == 512
    assert dram.loc["add", "dram_read_bytes"] == 1024
    # the inputs came from chip: conv0's output is written into the ifmap buffer instead
    words = simulate(parse_arch(_chain_arch("keep")), net).actions
    w = words[(words.layer == "c0") & (words.component == "ifmap")
              & (words.action == "write")]["count"].sum()
    assert w >= 512 + 8 * 8 * 8  # its own input from DRAM, its output kept


def test_a_kept_tensor_leaves_after_its_last_consumer():
    # Four 4x4x16-channel (256-byte) layers c0 -> c1 -> c2 -> add(c0, c2) in a 1 KB ifmap
    # buffer (double buffered, so a layer tiles in what is left): c0's output must stay
    # until the add, beside c1's and c2's; all fit (256 * 3 = 768 <= 1024).
    layers = [{"name": f"c{i}", "op": "conv2d", "in_channels": 16, "out_channels": 16,
               "in_h": 4, "in_w": 4, "kernel": 1} for i in range(3)]
    layers.append({"name": "add", "op": "add", "shape": [16, 4, 4], "inputs": ["c0", "c2"]})
    net = parse_network({"name": "skip", "layers": layers})
    arch = arch_dict(4, 4, "os", size_kb=1.0, residency={"activations": "keep"})
    r = simulate(parse_arch(arch), net).layers.set_index("layer")
    assert r.loc["add", "dram_read_bytes"] == 0
    assert r.loc[["c0", "c1", "c2"], "dram_write_bytes"].sum() == 0


# -- gap 8: formats on the real tensor ----------------------------------------------------------

def test_bitmask_on_dense_activations_costs_one_bit_per_unique_element():
    # A 3x3 pad-1 conv of 4 channels on 6x6, dense activations, bitmask format: the stored
    # input is the 4*6*6 = 144 unique values plus 144 mask bits = 18 bytes of metadata, so the
    # ifmap moves 144 + 18 = 162 bytes (on the im2col view the padding zeros made a "bitmask
    # on dense activations" smaller than dense).
    net = parse_network({"name": "n", "layers": [
        {"name": "c", "op": "conv2d", "in_channels": 4, "out_channels": 4, "in_h": 6,
         "in_w": 6, "kernel": 3, "padding": 1}]})
    arch = arch_dict(4, 4, "os", pe_array={"sparsity": {"act_format": "bitmask"}})
    r = simulate(parse_arch(arch), net).layers.iloc[0]
    assert r["act_metadata_bytes"] == 18
    assert r["dram_ifmap_read_bytes"] == 162
    assert r["act_density"] == 1.0


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 12), st.integers(1, 12),
       st.integers(1, 5), st.integers(1, 3), st.integers(0, 3), st.integers(1, 2),
       st.integers(1, 3))
def test_padding_tap_total_is_the_sum_of_the_per_tap_counts(cin, groups, h, w, k, s, p, dil,
                                                            batch):
    """The dense path's padding MACs (a closed-form total) equal the per-tap array summed
    (the long way the sparse path uses), on random padded, strided, dilated, grouped convs."""
    from hypothesis import assume

    from simulator.mapping.masks import padding_tap_total, padding_taps

    assume(h + 2 * p >= dil * (k - 1) + 1 and w + 2 * p >= dil * (k - 1) + 1)
    net = parse_network({"name": "n", "batch_size": batch, "layers": [
        {"name": "c", "op": "conv2d", "in_channels": cin * groups, "out_channels": groups,
         "groups": groups, "in_h": h, "in_w": w, "kernel": k, "stride": s, "padding": p,
         "dilation": dil}]})
    layer = net.layers[0]
    taps = padding_taps(layer)
    assert padding_tap_total(layer) == (0 if taps is None else int(taps.sum()))


def test_effectual_macs_with_and_without_padding_zeros():
    # 3x3 pad-1 conv, 1 -> 1 channel on 4x4, dense: 16 outputs x 9 taps = 144 MACs. A corner
    # tap reads padding for 7 of the 16 outputs (16 - 3*3), an edge tap for 4 (16 - 3*4), the
    # centre for none: 4*7 + 4*4 + 0 = 44 padding MACs. Hardware that skips zeros sees
    # 144 - 44 = 100 effectual MACs; weight-pruning papers' FLOP counts keep all 144.
    net = parse_network({"name": "n", "layers": [
        {"name": "c", "op": "conv2d", "in_channels": 1, "out_channels": 1, "in_h": 4,
         "in_w": 4, "kernel": 3, "padding": 1}]})
    r = simulate(parse_arch(arch_dict(4, 4, "os")), net).layers.iloc[0]
    assert r["macs"] == 144
    assert r["effectual_macs"] == 100
    assert r["effectual_macs_ignoring_padding"] == 144
    # with half the weights pruned (a real mask: the 4 corners and the centre kept), the same
    # per-tap counts: corners 4 x (16 - 7) + centre 16 = 52 effectual; ignoring padding 5 x 16.
    mask = np.zeros((1, 1, 3, 3), dtype=bool)
    mask[0, 0, ::2, ::2] = True
    mask[0, 0, 1, 1] = True
    layer = net.layers[0]
    pruned = Workload("p", (layer.__class__(**{**{f: getattr(layer, f) for f in
                                                 layer.__dataclass_fields__},
                                              "weight": Operand(mask=mask)}),))
    r = simulate(parse_arch(arch_dict(4, 4, "os")), pruned).layers.iloc[0]
    assert r["effectual_macs"] == 52
    assert r["effectual_macs_ignoring_padding"] == 80


def test_preload_and_keep_are_validated(arch_spec):
    from simulator import ConfigError

    bad = arch_spec(residency={"weights": "sometimes"}, mapping={"objective": "speed",
                                                                 "extra": 1})
    with pytest.raises(ConfigError) as err:
        parse_arch(bad)
    paths = {p for p, _ in err.value.errors}
    assert {"residency.weights", "mapping.objective", "mapping.extra"} <= paths
    assert math.isfinite(1.0)
