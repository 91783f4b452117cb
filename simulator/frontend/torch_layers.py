"""Layers of a traced forward pass: which operator records fuse into one vector layer and
what each layer is called (rules in :mod:`simulator.frontend.torch`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from simulator.frontend.aten import group_label
from simulator.frontend.torch_ops import Found


@dataclass
class Rec:
    """One recorded layer candidate with the module call it came from."""

    found: Found
    module: str
    call: int
    leaf: bool
    param: str | None = None


def names(recs: list[Rec]) -> list[str]:
    """Unique layer names: weight GEMMs after their parameter, a leaf module's own layer (a
    norm, an activation, a quantised module's GEMM) after the module, the rest
    ``<module>.<op>``; repeats get ``#2``, ``#3``."""
    weighted = {(r.module, r.call) for r in recs if r.param is not None}
    gemms = Counter((r.module, r.call) for r in recs if r.found.kind == "gemm")
    seen: Counter[str] = Counter()
    out = []
    for r in recs:
        where = (r.module, r.call)
        if r.param is not None:
            base = r.param[:-len(".weight")] if r.param.endswith(".weight") else \
                r.param.removesuffix("_weight")
        elif r.module and where not in weighted and (
                (r.leaf and r.found.kind == "vector" and not gemms[where])
                or (r.found.kind == "gemm" and gemms[where] == 1
                    and r.found.spec["op"] != "matmul")):
            base = r.module
        else:
            base = f"{r.module}.{r.found.label}" if r.module else r.found.label
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return out


def fuse(recs: list[Rec]) -> list[Rec]:
    """Consecutive vector ops of one leaf-module call become one vector layer."""
    out: list[Rec] = []
    labels: list[list[str]] = []
    for r in recs:
        prev = out[-1] if out else None
        if (prev is not None and r.found.kind == "vector" and prev.found.kind == "vector"
                and r.leaf and prev.leaf and (r.module, r.call) == (prev.module, prev.call)
                and r.module):
            a, b = vector_counts(prev.found), vector_counts(r.found)
            labels[-1].append(r.found.label)
            prev.found = Found("vector", group_label(labels[-1]), {
                "op": "vector", "label": group_label(labels[-1]), "in_elements": a[0],
                "out_elements": b[1], "vector_ops": a[2] + b[2]})
            continue
        out.append(r)
        labels.append([r.found.label])
    return out


def vector_counts(f: Found) -> tuple[int, int, int]:
    """(in, out, ops) of a vector layer spec (pool specs lowered to their counts)."""
    if f.spec["op"] == "vector":
        return f.spec["in_elements"], f.spec["out_elements"], f.spec["vector_ops"]
    from simulator.workload.spec import parse_network

    low = parse_network({"name": "x", "layers": [{"name": "x", **f.spec}]}).layers[0]
    return low.ifmap_elements, low.ofmap_elements, low.vector_ops
