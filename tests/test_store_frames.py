"""The sweep store's layer frame (simulator/sweep/store.py ``layer_frame``) equals the long
way, one frame per point concatenated, in values, dtypes and Arrow schema, on random points
mixing Python ints, floats (NaN too), strings, bools, None and numpy scalars per column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.sweep.store import _layer_frame_long, layer_frame

VALUES = {
    "int": st.integers(-2**40, 2**40),
    "float": st.floats(allow_nan=True, allow_infinity=False, width=64),
    "str": st.text(max_size=4),
    "bool": st.booleans(),
    "none": st.none(),
    "np_int": st.integers(-100, 100).map(np.int64),
    "np_float": st.floats(-1e6, 1e6).map(np.float64),
}


@st.composite
def parts(draw):
    n_cols = draw(st.integers(1, 5))
    schemes = [draw(st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=2))
               for _ in range(n_cols)]
    keys = [f"c{i}" for i in range(n_cols)]
    out = []
    for _ in range(draw(st.integers(1, 5))):
        rows = draw(st.integers(0, 4))
        if draw(st.integers(0, 9)) == 0:  # a point with other columns: the long way
            cols = {k: [1] * rows for k in reversed(keys)}
        else:
            cols = {k: [draw(VALUES[draw(st.sampled_from(sch))]) for _ in range(rows)]
                    for k, sch in zip(keys, schemes, strict=True)}
        out.append(cols if draw(st.integers(0, 9)) else {})
    return out


@settings(max_examples=400, deadline=None)
@given(parts())
def test_layer_frame_equals_one_frame_per_point(layers):
    present = [c for c in layers if c]
    fast = layer_frame(layers)
    if not present:
        assert list(fast.columns) == ["point_hash"] and len(fast) == 0
        return
    slow = _layer_frame_long(present)
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    try:
        want = pa.Table.from_pandas(slow, preserve_index=False).schema
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # mixed bool/float objects: both fail
        with pytest.raises(type(exc)):
            pa.Table.from_pandas(fast, preserve_index=False)
        return
    assert pa.Table.from_pandas(fast, preserve_index=False).schema == want


def test_a_sweep_like_part():
    # 3 points x 2 layers: ints, floats, strings, a None-or-string notes column
    pts = [{"point_hash": ["a", "a"], "total_cycles": [10, 20], "energy_pj": [1.5, 2.0],
            "notes": [None, "x"]} for _ in range(3)]
    fast = layer_frame(pts)
    assert fast["total_cycles"].tolist() == [10, 20] * 3
    assert str(fast["total_cycles"].dtype) == "int64"
    pd.testing.assert_frame_equal(fast, _layer_frame_long(pts), check_exact=True)
