"""Differential report of two points: per-layer deltas of cycles and energy, and why.

``diff_points(results, a, b)`` matches the layers of points A and B by name (A's order,
then B's layers A has not: a low-rank split or a removed layer shows as present on one side
only, with zeros on the other) and gives, per layer and for the whole network, ``B - A`` of

* cycles: ``compute_cycles``, ``stall_cycles``, ``total_cycles``;
* energy (pJ), attributed: ``compute`` (PE arithmetic + PE registers and network + vector
  unit), ``sram`` (the three buffers), ``dram``, ``metadata`` (compressed-format metadata in
  SRAM and DRAM), ``leakage`` and ``other``; they sum to the delta of ``energy_pj``
  (:mod:`simulator.sweep.breakdown`).

:func:`explain` turns the totals into one sentence: which share of the change each part is.
"""

from __future__ import annotations

import pandas as pd

from simulator.reporting.results import ReportError, Results

GROUPS = {"compute": ("arith", "pe_local", "vector"), "sram": ("ifmap", "filter", "ofmap"),
          "dram": ("dram",), "metadata": ("metadata",), "leakage": ("leakage",),
          "other": ("other",)}
CYCLES = ("compute_cycles", "stall_cycles", "total_cycles")


def _side(results: Results, ref: str) -> tuple[pd.Series, pd.DataFrame]:
    point = results.point(ref)
    if pd.notna(point["error"]):
        raise ReportError(f"point {ref!r} failed ({point['error']}); nothing to compare")
    lay = results.layers[results.layers["point_hash"] == point["point_hash"]]
    df = pd.DataFrame({"layer": lay["layer"].to_numpy(), "op": lay["op"].to_numpy()})
    for c in CYCLES:
        df[c] = lay[c].to_numpy(dtype=float)
    df["energy_pj"] = lay["energy_pj"].to_numpy(dtype=float)
    for g, cats in GROUPS.items():
        df[f"{g}_pj"] = sum(lay[f"energy_{c}_pj"].to_numpy(dtype=float) for c in cats)
    return point, df


def diff_points(results: Results, a: str, b: str) -> pd.DataFrame:
    """Per-layer ``A``, ``B`` and ``B - A`` (module docstring), then a ``total`` row."""
    pa, da = _side(results, a)
    pb, db = _side(results, b)
    m = da.merge(db, on="layer", how="outer", suffixes=("_a", "_b"), sort=False,
                 indicator=True)
    order = {name: i for i, name in enumerate([*da["layer"], *db["layer"]])}
    m = m.assign(_o=m["layer"].map(order)).sort_values("_o", kind="stable").drop(columns="_o")
    out = pd.DataFrame({"layer": m["layer"],
                        "op": m["op_a"].fillna(m["op_b"]),
                        "present": m["_merge"].map({"both": "both", "left_only": "A only",
                                                    "right_only": "B only"}).astype(str)})
    values = ["energy_pj", *CYCLES, *(f"{g}_pj" for g in GROUPS)]
    for v in values:
        va, vb = m[f"{v}_a"].fillna(0.0), m[f"{v}_b"].fillna(0.0)
        if v in ("energy_pj", "total_cycles"):
            out[f"{v}_a"], out[f"{v}_b"] = va, vb
        out[f"delta_{v}"] = vb - va
    first = ["layer", "op", "present", "delta_energy_pj", *(f"delta_{g}_pj" for g in GROUPS),
             "delta_total_cycles", "delta_compute_cycles", "delta_stall_cycles"]
    out = out[[*first, *(c for c in out.columns if c not in first)]]  # terminal priority
    total = {c: out[c].sum() for c in out.columns if c not in ("layer", "op", "present")}
    out = pd.concat([out, pd.DataFrame([{"layer": "total", "op": "", "present": "",
                                         **total}])], ignore_index=True)
    out.attrs.update(a=str(pa["point_hash"]), b=str(pb["point_hash"]),
                     a_label=f"{pa['workload']} on {pa['arch_label']}",
                     b_label=f"{pb['workload']} on {pb['arch_label']}")
    return out


def explain(diff: pd.DataFrame) -> str:
    """One sentence: how much B saves (or costs) over A, and where it comes from."""
    t = diff.iloc[-1]
    ea, eb = float(t["energy_pj_a"]), float(t["energy_pj_b"])
    ca, cb = float(t["total_cycles_a"]), float(t["total_cycles_b"])
    d = eb - ea

    def pct(x: float, base: float) -> str:
        return f"{100 * x / base:+.1f} %" if base else "n/a"

    parts = sorted(((float(t[f"delta_{g}_pj"]), g) for g in GROUPS), key=lambda p: -abs(p[0]))
    why = ", ".join(f"{g} {v / 1e6:+.4g} µJ" for v, g in parts if abs(v) > 1e-9 * max(ea, 1))
    return (f"B ({diff.attrs.get('b_label')}) vs A ({diff.attrs.get('a_label')}): energy "
            f"{pct(d, ea)} ({d / 1e6:+.4g} µJ: {why or 'no change'}); cycles "
            f"{pct(cb - ca, ca)} (compute {float(t['delta_compute_cycles']):+,.0f}, stall "
            f"{float(t['delta_stall_cycles']):+,.0f}).")
