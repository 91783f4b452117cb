"""Cost: what happened, priced. Action counts (:mod:`.actions`), energy tables as data
(:mod:`.table`) produced from YAML files (:mod:`.table_file`) by energy models
(:mod:`.models`, with curves through published points in :mod:`.curves` and node scaling in
:mod:`.technology`), silicon area (:mod:`.area`) and the figures of merit (:mod:`.metrics`)."""

from simulator.cost.table import EnergyTable, Entry
from simulator.cost.table_file import load_energy_table, table_for

__all__ = ["EnergyTable", "Entry", "load_energy_table", "table_for"]
