"""Import SCALE-Sim 3.0.0 topology CSVs (conv and GEMM forms) as workloads.

Conv form ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num
Filter, Strides,``; GEMM form ``Layer, M, N, K,`` (reference/scalesim.md).
"""

from __future__ import annotations

import csv
from pathlib import Path

from simulator.errors import WorkloadError
from simulator.files import check_file
from simulator.workload.geometry import touched
from simulator.workload.layer import Layer, Workload

_CONV = ["layer name", "ifmap height", "ifmap width", "filter height", "filter width",
         "channels", "num filter", "strides"]
_GEMM = ["layer", "m", "n", "k"]


def load_topology(path: str | Path, *, ofmap_rounding: str = "scalesim") -> Workload:
    """Read a SCALE-Sim topology CSV (conv or GEMM form) as a workload.

    Conv form IFMAP sizes already include padding (SCALE-Sim has no padding field). The output
    size is SCALE-Sim's ``ceil((H - F + S) / S)`` with ``ofmap_rounding="scalesim"`` or the
    correct ``floor((H - F) / S) + 1`` with ``"floor"``. Layers whose name contains ``DP`` are
    depthwise as in SCALE-Sim: one single-channel GEMM per input channel. An optional
    sparsity-ratio column must be ``1:1`` (dense); sparse workloads come from network specs.
    """
    p = Path(path)
    if ofmap_rounding not in ("scalesim", "floor"):
        raise ValueError(f"ofmap_rounding must be 'scalesim' or 'floor' (got {ofmap_rounding!r})")
    check_file(p, WorkloadError, "a SCALE-Sim topology .csv")
    try:  # utf-8-sig: spreadsheet programs (Excel) start CSVs with a byte-order mark
        rows = [r for r in csv.reader(p.read_text(encoding="utf-8-sig").splitlines())
                if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise WorkloadError(str(p), [("", f"not a readable CSV: {exc}")]) from None
    if not rows:
        raise WorkloadError(str(p), [("", "empty topology file")])
    header = [c.strip().lower() for c in rows[0] if c.strip()]
    if header[:8] == _CONV:
        form, width = "conv", 8
    elif header[:4] == _GEMM:
        form, width = "gemm", 4
    else:
        raise WorkloadError(str(p), [("line 1", f"unknown header {rows[0]!r}; expected "
                                                f"SCALE-Sim's conv form ({', '.join(_CONV)}) "
                                                f"or GEMM form ({', '.join(_GEMM)})")])
    errors: list[tuple[str, str]] = []
    layers: list[Layer] = []
    for lineno, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        while cells and cells[-1] == "":
            cells.pop()
        where = f"line {lineno}"
        if len(cells) not in (width, width + 1):
            errors.append((where, f"expected {width} values (+ optional sparsity ratio), "
                                  f"got {len(cells)}"))
            continue
        if len(cells) == width + 1 and cells[-1].replace(" ", "") != "1:1":
            errors.append((f"{where}.sparsity", f"only dense '1:1' is imported (got "
                                                f"{cells[-1]!r})"))
            continue
        name = cells[0]
        try:
            vals = [int(c) for c in cells[1:width]]
        except ValueError:
            errors.append((where, f"values must be integers (got {cells[1:width]})"))
            continue
        if min(vals) <= 0:
            errors.append((where, f"values must be positive (got {vals})"))
            continue
        try:
            layers.append(_topology_layer(name, form, vals, ofmap_rounding))
        except ValueError as exc:
            errors.append((f"{where} ({name})", str(exc)))
    names = [layer.name for layer in layers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        errors.append(("", f"duplicate layer names: {dupes} (every layer needs its own name)"))
    if errors:
        raise WorkloadError(str(p), errors)
    if not layers:
        raise WorkloadError(str(p), [("", "no layers")])
    return Workload(p.stem, tuple(layers), source=f"SCALE-Sim topology {p.name}", path=str(p))


def _topology_layer(name: str, form: str, vals: list[int], rounding: str) -> Layer:
    if form == "gemm":
        m, n, k = vals
        return Layer(name, "gemm", "gemm", M=m, K=k, N=n, ifmap_elements=m * k,
                     filter_elements=k * n, ofmap_elements=m * n,
                     dims={"M": m, "N": n, "K": k})
    h, w, fh, fw, ch, nf, s = vals
    if fh > h or fw > w:
        raise ValueError(f"filter {fh}x{fw} is larger than the ifmap {h}x{w}")
    if rounding == "scalesim":
        oh, ow = -(-(h - fh + s) // s), -(-(w - fw + s) // s)
    else:
        oh, ow = (h - fh) // s + 1, (w - fw) // s + 1
    groups, k_ch = (ch, 1) if "DP" in name else (1, ch)
    return Layer(name, "conv2d", "gemm", M=oh * ow, K=fh * fw * k_ch, N=nf, count=groups,
                 ifmap_elements=touched(h, oh, fh, s) * touched(w, ow, fw, s) * ch,
                 filter_elements=fh * fw * ch * nf,
                 ofmap_elements=oh * ow * nf * groups,
                 dims={"ifmap_h": h, "ifmap_w": w, "filter_h": fh, "filter_w": fw,
                       "channels": ch, "num_filter": nf, "stride": s})
