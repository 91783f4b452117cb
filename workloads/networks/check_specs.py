#!/usr/bin/env python3
"""Standalone sanity check for the network spec YAMLs in this directory.

Uses only PyYAML and plain Python (deliberately does NOT import `simulator`), so it
independently cross-checks the specs the simulator loads:

  * schema: top-level keys, per-op required/optional layer fields, no unknown keys;
  * shape consistency: every layer's declared input matches the output of the layer
    that produces it (PyTorch formula  out = floor((H + 2p - d(k-1) - 1)/s) + 1);
    branches are resolved by name: `<block>.downsample.*` reads the block input, and
    `<block>.add` adds the main-branch output to the block input (or to the
    downsample output); BERT's attention wiring is given explicitly in WIRING;
  * totals: weights (params excluding biases/BN/LayerNorm) and MACs
    (conv: Ho*Wo*Cout*(Cin/groups)*kh*kw, linear: tokens*in*out, matmul: batch*M*K*N),
    printed next to the published numbers.  Published parameter counts are reconciled
    EXACTLY as weights + biases + BN/LayerNorm affine params.

Usage:  python3 check_specs.py [spec.yaml ...]     (default: all *.yaml next to this file)
Exit status is non-zero if any check fails.
"""
import glob
import math
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))

TOP_KEYS = {"name", "source", "batch_size", "layers"}
EW_OPS = {"add", "mul", "relu", "gelu", "softmax", "layernorm", "lrn"}
FIELDS = {  # op -> (required, optional)
    "conv2d": ({"in_channels", "out_channels", "in_h", "in_w", "kernel"},
               {"stride", "padding", "dilation", "groups"}),
    "linear": ({"in_features", "out_features"}, {"tokens"}),
    "matmul": ({"M", "K", "N", "batch"}, set()),
    "maxpool": ({"channels", "in_h", "in_w", "kernel"}, {"stride", "padding"}),
    "avgpool": ({"channels", "in_h", "in_w", "kernel"}, {"stride", "padding"}),
    "global_avgpool": ({"channels", "in_h", "in_w"}, set()),
}
for _op in EW_OPS:
    FIELDS[_op] = ({"shape"}, set())

# Explicit wiring for graphs that are not "sequential + residual blocks".
# layer name -> names of the layers whose outputs it reads ("@input" = network input).
WIRING = {
    "bert_base_layer": {
        "attention.self.query": ["@input"],
        "attention.self.key": ["@input"],
        "attention.self.value": ["@input"],
        "attention.self.scores": ["attention.self.query", "attention.self.key"],
        "attention.self.context": ["attention.self.softmax", "attention.self.value"],
        "attention.output.add": ["attention.output.dense", "@input"],
        "intermediate.dense": ["attention.output.LayerNorm"],
        "output.add": ["output.dense", "attention.output.LayerNorm"],
    },
}

# Published reference numbers.
#   params: exact published parameter count (incl. biases and BN/LN affine params);
#   conv_bias / bn: conventions needed to reconcile weights -> params;
#   weights: published weight count (excl. biases) where one is quoted;
#   macs: published MACs (multiply-accumulates) and where they come from.
PUBLISHED = {
    "lenet5": dict(conv_bias=True, bn=False, weights=430_500, params=431_080, macs=None,
                   ref="Han et al. ICLR'16 T1/T3: 431K params (430.5K weights); MACs not published"),
    "alexnet": dict(conv_bias=True, bn=False, weights=None, params=60_965_224, macs=724e6,
                    ref="Caffe bvlc_alexnet 60,965,224 params (Han T4: 61M); 724M MACs (Sze et al. Proc. IEEE'17 T4)"),
    "vgg16": dict(conv_bias=True, bn=False, weights=None, params=138_357_544, macs=15.47e9,
                  ref="torchvision vgg16 138,357,544 params, 15.47 GFLOPS(=GMACs); paper T2: 138M"),
    "resnet18": dict(conv_bias=False, bn=True, weights=None, params=11_689_512, macs=1.81e9,
                     ref="torchvision resnet18 11,689,512 params, 1.81 GFLOPS(=GMACs); paper T1: 1.8e9 FLOPs"),
    "resnet50": dict(conv_bias=False, bn=True, weights=None, params=25_557_032, macs=4.09e9,
                     ref="torchvision resnet50 (v1.5) 25,557,032 params, 4.09 GFLOPS(=GMACs); paper T1 (v1): 3.8e9"),
    "mobilenetv2": dict(conv_bias=False, bn=True, weights=None, params=3_504_872, macs=300e6,
                        ref="torchvision mobilenet_v2 3,504,872 params; paper T4: 3.4M params, 300M MAdds"),
    "bert_base_layer": dict(conv_bias=False, bn=False, weights=4 * 768 * 768 + 2 * 768 * 3072,
                            params=7_087_872,
                            macs=512 * (4 * 768 * 768 + 2 * 768 * 3072) + 2 * 12 * 512 * 512 * 64,
                            ref="BERT-base per layer 7,087,872 params (7,077,888 weights); "
                                "MACs = 512*7.08M + 2*12*512*512*64"),
}
MAC_TOL = 0.01  # relative tolerance against (rounded) published MACs


def pair(v, name):
    if isinstance(v, int):
        return v, v
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return tuple(v)
    raise ValueError(f"{name} must be an int or [int, int], got {v!r}")


def out_dim(h, k, s, p, d):
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


class SpecError(Exception):
    pass


def check_schema(spec, path):
    errs = []
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: top level is not a mapping")
    unknown = set(spec) - TOP_KEYS
    missing = TOP_KEYS - set(spec)
    if unknown:
        errs.append(f"unknown top-level keys {sorted(unknown)}")
    if missing:
        errs.append(f"missing top-level keys {sorted(missing)}")
    if spec.get("batch_size") != 1:
        errs.append(f"batch_size is {spec.get('batch_size')!r}, expected 1")
    names = set()
    for i, L in enumerate(spec.get("layers") or []):
        tag = f"layer {i} ({L.get('name')!r})" if isinstance(L, dict) else f"layer {i}"
        if not isinstance(L, dict):
            errs.append(f"{tag}: not a mapping")
            continue
        if not isinstance(L.get("name"), str):
            errs.append(f"{tag}: name must be a string")
        if L.get("name") in names:
            errs.append(f"{tag}: duplicate name")
        names.add(L.get("name"))
        op = L.get("op")
        if op not in FIELDS:
            errs.append(f"{tag}: unknown op {op!r}")
            continue
        req, opt = FIELDS[op]
        keys = set(L) - {"name", "op"}
        if req - keys:
            errs.append(f"{tag}: missing {sorted(req - keys)}")
        if keys - req - opt:
            errs.append(f"{tag}: unknown keys {sorted(keys - req - opt)}")
        for k in keys:
            v = L[k]
            vals = v if isinstance(v, list) else [v]
            if not vals or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in vals):
                errs.append(f"{tag}: {k}={v!r} is not a (list of) non-negative int(s)")
    return errs


def analyse(spec):
    """Return (errors, stats) for one loaded spec."""
    errs = []
    net = spec["name"]
    layers = spec["layers"]
    pub = PUBLISHED.get(net, dict(conv_bias=False, bn=False))
    wiring = WIRING.get(net, {})

    outputs = {}          # layer name -> output shape (tuple)
    main = None           # output shape of the last main-chain layer
    block_in = {}         # block prefix -> main-chain shape when the block started
    net_in = None
    st = dict(layers=len(layers), weights=0, biases=0, norm=0, macs=0, ops={}, depthwise=0)

    def first_input_shape(L):
        op = L["op"]
        if op in ("conv2d",):
            return (L["in_channels"], L["in_h"], L["in_w"])
        if op in ("maxpool", "avgpool", "global_avgpool"):
            return (L["channels"], L["in_h"], L["in_w"])
        if op == "linear":
            t = L.get("tokens", 1)
            return (t, L["in_features"]) if t > 1 else (L["in_features"],)
        if op in EW_OPS:
            return tuple(L["shape"])
        raise SpecError(f"cannot infer the network input from first layer op {op}")

    for i, L in enumerate(layers):
        name, op = L["name"], L["op"]
        st["ops"][op] = st["ops"].get(op, 0) + 1
        tag = f"{net}:{name}"
        if i == 0:
            net_in = first_input_shape(L)
            main = net_in
        # record block inputs for every dotted prefix first seen here
        parts = name.split(".")
        for j in range(1, len(parts)):
            block_in.setdefault(".".join(parts[:j]), main)

        # ---- resolve sources ----
        is_branch = ".downsample" in name
        if name in wiring:
            srcs = []
            for s in wiring[name]:
                if s == "@input":
                    srcs.append(("@input", net_in))
                elif s in outputs:
                    srcs.append((s, outputs[s]))
                else:
                    errs.append(f"{tag}: wired source {s!r} not produced before this layer")
        elif is_branch:
            blk = name.split(".downsample")[0]
            srcs = [(blk + " (block input)", block_in[blk])]
        elif op == "add" and name.endswith(".add"):
            blk = name[: -len(".add")]
            ds = [n for n in outputs if n.startswith(blk + ".downsample")]
            skip = (ds[-1], outputs[ds[-1]]) if ds else (blk + " (block input)", block_in.get(blk))
            srcs = [("main branch", main), skip]
        else:
            srcs = [("previous layer", main)]

        # ---- check inputs, compute output/weights/MACs ----
        def expect(src, shape):
            sname, sshape = src
            if tuple(sshape) != tuple(shape):
                errs.append(f"{tag}: input {tuple(shape)} != output {tuple(sshape)} of {sname}")

        if op == "conv2d":
            cin, cout, g = L["in_channels"], L["out_channels"], L.get("groups", 1)
            kh, kw = pair(L["kernel"], "kernel")
            sh, sw = pair(L.get("stride", 1), "stride")
            ph, pw = pair(L.get("padding", 0), "padding")
            dh, dw = pair(L.get("dilation", 1), "dilation")
            if g < 1 or cin % g or cout % g:
                errs.append(f"{tag}: groups={g} does not divide in={cin}/out={cout}")
                g = 1
            if g > 1 and g == cin == cout:
                st["depthwise"] += 1
            ho = out_dim(L["in_h"], kh, sh, ph, dh)
            wo = out_dim(L["in_w"], kw, sw, pw, dw)
            if ho < 1 or wo < 1:
                errs.append(f"{tag}: empty output {ho}x{wo}")
            expect(srcs[0], (cin, L["in_h"], L["in_w"]))
            out = (cout, ho, wo)
            w = cout * (cin // g) * kh * kw
            st["weights"] += w
            st["macs"] += ho * wo * w
            st["biases"] += cout if pub["conv_bias"] else 0
            st["norm"] += 2 * cout if pub["bn"] else 0
        elif op in ("maxpool", "avgpool"):
            k = pair(L["kernel"], "kernel")
            s = pair(L.get("stride", L["kernel"]), "stride")
            p = pair(L.get("padding", 0), "padding")
            expect(srcs[0], (L["channels"], L["in_h"], L["in_w"]))
            out = (L["channels"], out_dim(L["in_h"], k[0], s[0], p[0], 1),
                   out_dim(L["in_w"], k[1], s[1], p[1], 1))
        elif op == "global_avgpool":
            expect(srcs[0], (L["channels"], L["in_h"], L["in_w"]))
            out = (L["channels"],)
        elif op == "linear":
            t, fi, fo = L.get("tokens", 1), L["in_features"], L["out_features"]
            sname, sshape = srcs[0]
            ok = math.prod(sshape) == t * fi
            if t > 1:  # token-major input: (t, fi), or per-head (heads, t, fi/heads) to be merged
                ok = ok and (tuple(sshape) == (t, fi) or
                             (len(sshape) == 3 and sshape[1] == t and sshape[0] * sshape[2] == fi))
            if not ok:
                errs.append(f"{tag}: input tokens={t} x in_features={fi} incompatible with "
                            f"output {tuple(sshape)} of {sname}")
            out = (t, fo) if t > 1 else (fo,)
            st["weights"] += fi * fo
            st["macs"] += t * fi * fo
            st["biases"] += fo
        elif op == "matmul":
            b, M, K, N = L["batch"], L["M"], L["K"], L["N"]

            def heads(shape):  # view (T, D) as (b, T, D/b)
                if len(shape) == 2 and shape[1] % b == 0:
                    return (b, shape[0], shape[1] // b)
                return tuple(shape)
            if len(srcs) != 2:
                errs.append(f"{tag}: matmul needs two wired sources")
            else:
                (an, a), (bn, bb) = srcs
                if heads(a) != (b, M, K):
                    errs.append(f"{tag}: A operand {tuple(a)} of {an} is not [{b}, {M}, {K}]")
                if heads(bb) not in ((b, K, N), (b, N, K)):  # (b, N, K) = transposed operand (K^T)
                    errs.append(f"{tag}: B operand {tuple(bb)} of {bn} is not [{b}, {K}, {N}] (or its transpose)")
            out = (b, M, N)
            st["macs"] += b * M * K * N
        else:  # element-wise
            shape = tuple(L["shape"])
            n_in = 2 if op in ("add", "mul") else 1
            if len(srcs) != n_in:
                errs.append(f"{tag}: {op} expects {n_in} input(s), resolved {len(srcs)}")
            for s in srcs:
                if s[1] is None:
                    errs.append(f"{tag}: could not resolve input {s[0]}")
                else:
                    expect(s, shape)
            out = shape
            if op == "layernorm":
                st["norm"] += 2 * shape[-1]

        outputs[name] = out
        if not is_branch:
            main = out
    st["out"] = main
    return errs, st


def fmt(n):
    if n is None:
        return "-"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3f}{suf}"
    return str(int(n))


def main(argv):
    paths = argv[1:] or sorted(glob.glob(os.path.join(HERE, "*.yaml")))
    order = list(PUBLISHED)
    paths.sort(key=lambda p: order.index(os.path.basename(p)[:-5])
               if os.path.basename(p)[:-5] in order else len(order))
    failures = 0
    rows = []
    for path in paths:
        with open(path) as f:
            spec = yaml.safe_load(f)
        errs = check_schema(spec, path)
        st = None
        if not errs:
            try:
                errs, st = analyse(spec)
            except (SpecError, ValueError, KeyError) as e:
                errs = [str(e)]
        net = spec.get("name", os.path.basename(path)) if isinstance(spec, dict) else path
        if spec and os.path.basename(path)[:-5] != net:
            errs.append(f"file name {os.path.basename(path)} != name {net!r}")
        pub = PUBLISHED.get(net)
        notes = []
        if st and pub:
            total = st["weights"] + st["biases"] + st["norm"]
            if pub.get("weights") is not None and st["weights"] != pub["weights"]:
                errs.append(f"weights {st['weights']:,} != published {pub['weights']:,}")
            if total != pub["params"]:
                errs.append(f"weights+biases+BN/LN = {total:,} != published params {pub['params']:,}")
            if pub.get("macs"):
                rel = st["macs"] / pub["macs"] - 1
                notes.append(f"MACs {rel:+.2%} vs published")
                if abs(rel) > MAC_TOL:
                    errs.append(f"MACs {st['macs']:,} off published {pub['macs']:,.0f} by {rel:+.2%}")
            st["total"] = total
        rows.append((net, st, pub, errs, notes))
        failures += bool(errs)

    hdr = (f"{'network':<16} {'layers':>6} {'weights':>12} {'pub.weights':>11} "
           f"{'+bias+BN/LN':>12} {'pub.params':>11} {'MACs':>14} {'pub.MACs':>10}  status")
    print(hdr)
    print("-" * len(hdr))
    for net, st, pub, errs, notes in rows:
        if st is None:
            print(f"{net:<16} SCHEMA/LOAD ERROR")
        else:
            pub = pub or {}
            print(f"{net:<16} {st['layers']:>6} {st['weights']:>12,} {fmt(pub.get('weights')):>11} "
                  f"{st.get('total', 0):>12,} {pub.get('params', 0):>11,} {st['macs']:>14,} "
                  f"{fmt(pub.get('macs')):>10}  {'OK' if not errs else 'FAIL'}")
    print()
    for net, st, pub, errs, notes in rows:
        if st:
            ops = ", ".join(f"{k}={v}" for k, v in sorted(st["ops"].items()))
            print(f"{net}: ops[{ops}] depthwise={st['depthwise']} output={st['out']} "
                  f"biases={st['biases']:,} BN/LN={st['norm']:,} {'; '.join(notes)}")
            if pub:
                print(f"    ref: {pub['ref']}")
        for e in errs:
            print(f"    ERROR: {e}")
    print()
    print("ALL OK" if not failures else f"{failures} network(s) FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
