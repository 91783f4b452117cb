"""Parsed energy-table files are reused only while their content is unchanged
(simulator/cost/table_file.py ``TableFiles``), and reusing them changes no result: every
table from the cache equals a fresh parse, a changed file is re-read, a file that fails to
validate is never kept, and ``simulate`` prices with exactly the table a fresh look-up
produces (with and without per-format ``mac@`` variants)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import arch_dict, make_layer

from simulator import parse_arch, simulate
from simulator.arch.accelerator import build
from simulator.cost.table_file import ARCH_CONFIGS, TableFiles, load_energy_table, table_for
from simulator.errors import ConfigError
from simulator.memo import LayerCache
from simulator.workload.layer import Operand, Workload


@pytest.fixture
def table_copy(tmp_path: Path) -> Path:
    """The default table and its area file, copied where a test may edit them."""
    for name in ("45nm.yaml", "area_45nm.yaml"):
        shutil.copy(ARCH_CONFIGS / "energy" / name, tmp_path / name)
    return tmp_path / "45nm.yaml"


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_a_cached_table_equals_a_fresh_parse(table_copy: Path, dataflow: str) -> None:
    files = TableFiles()
    for size_kb in (8.0, 64.0, 512.0):  # size-dependent SRAM entries, same files
        arch = parse_arch(arch_dict(8, 8, dataflow, size_kb=size_kb), source="<t>")
        cached = load_energy_table(table_copy, arch, files=files)
        assert cached == load_energy_table(table_copy, arch)
    assert files.hits == 2 * 2  # the energy file and its area file, on the 2nd and 3rd arch


def test_a_changed_file_is_re_read(table_copy: Path) -> None:
    arch = parse_arch(arch_dict(4, 4), source="<t>")
    files = TableFiles()
    before = load_energy_table(table_copy, arch, files=files)
    text = table_copy.read_text()
    assert text.count("pj: 0.021\n") == 1  # the shift-add entry (ISAAC, 32 nm), doubled
    table_copy.write_text(text.replace("pj: 0.021\n", "pj: 0.042\n"))
    after = load_energy_table(table_copy, arch, files=files)
    assert after.pj("pe_array", "shift_add") == pytest.approx(
        2 * before.pj("pe_array", "shift_add"), rel=1e-12)
    assert after == load_energy_table(table_copy, arch)
    # and the area file too: a larger SRAM area per KiB, a larger buffer area
    area = table_copy.parent / "area_45nm.yaml"
    old_area = area.read_text()
    assert old_area.count("value: 0.00367\n") == 1
    area.write_text(old_area.replace("value: 0.00367\n", "value: 0.00734\n"))
    bigger = load_energy_table(table_copy, arch, files=files)
    assert bigger.area_mm2["ifmap"] == pytest.approx(2 * after.area_mm2["ifmap"], rel=1e-12)
    assert bigger == load_energy_table(table_copy, arch)


def test_an_invalid_file_is_never_kept(table_copy: Path) -> None:
    arch = parse_arch(arch_dict(4, 4), source="<t>")
    files = TableFiles()
    good = table_copy.read_text()
    table_copy.write_text(good.replace("technology_nm: 45", "technology_nm: -45", 1))
    for _ in range(2):  # raised each time, from the file's own text
        with pytest.raises(ConfigError, match="technology_nm"):
            load_energy_table(table_copy, arch, files=files)
    table_copy.write_text(good)
    assert load_energy_table(table_copy, arch, files=files) == load_energy_table(table_copy,
                                                                                 arch)


def test_the_cache_is_bounded(table_copy: Path) -> None:
    arch = parse_arch(arch_dict(4, 4), source="<t>")
    files = TableFiles(max_entries=2)
    text = table_copy.read_text()
    for i in range(4):
        table_copy.write_text(text + f"\n# edit {i}\n")
        load_energy_table(table_copy, arch, files=files)
    assert len(files._entries) == 2


@pytest.mark.parametrize("weight_bits", [8, 4])  # 4: a mac@int4x8 variant is counted
def test_simulate_prices_with_the_table_a_fresh_look_up_gives(weight_bits: int) -> None:
    arch = parse_arch(arch_dict(4, 4, "ws"), source="<t>")
    net = Workload("n", (make_layer(8, 16, 8, name="a", weight=Operand(bits=weight_bits)),
                         make_layer(8, 16, 8, name="b")))
    cache = LayerCache()
    reports = [simulate(arch, net, cache=cache), simulate(arch, net, memo=False)]
    variants = {a for r in reports[0].results for (_, a) in r.actions if "@" in a}
    assert bool(variants) == (weight_bits != 8)
    fresh = table_for(arch, build(arch), variants)
    for r in reports:
        assert r.energy_table == fresh
    assert reports[0].totals == reports[1].totals
    assert cache.tables.hits >= (2 if variants else 0)  # the second look-up parsed nothing
