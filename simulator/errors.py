"""Typed errors of the simulator.

Every error the library raises on bad input is a :class:`SimulatorError`; the CLI turns it
into a short message and exit status 2. :class:`ConfigError` carries *all* the problems found
in one file at once, each as a ``(path, message)`` pair, so a user fixes a file in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable


class SimulatorError(Exception):
    """Base class of every error caused by user input (never by a bug)."""


class ConfigError(SimulatorError):
    """One or more problems in a configuration file or object.

    ``errors`` lists ``(dotted_path, message)`` pairs; ``source`` names the file (or ``<dict>``).
    """

    def __init__(self, source: str, errors: Iterable[tuple[str, str]]) -> None:
        self.source = source
        self.errors = list(errors)
        lines = [f"{source}: {len(self.errors)} error(s)"]
        lines += [f"  {path or '<root>'}: {msg}" for path, msg in self.errors]
        super().__init__("\n".join(lines))


class WorkloadError(ConfigError):
    """A network spec or topology file is wrong (same shape as :class:`ConfigError`)."""


class TraceError(SimulatorError):
    """A compressed workload trace is missing, corrupt, truncated or of the wrong version."""


class MappingError(SimulatorError):
    """A layer cannot be mapped onto the configured hardware."""


class EnergyError(SimulatorError):
    """An energy table cannot price the counts (missing entries) or cannot be built."""


class OutputError(SimulatorError):
    """Results cannot be written where the user asked (not a directory, not writable, taken
    by something that is not a result set of the same inputs)."""
