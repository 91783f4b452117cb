"""Architectures: validated, frozen descriptions of the hardware (:mod:`.config`), read from
YAML or imported from SCALE-Sim ``.cfg`` files (:mod:`.loader`, :mod:`.scalesim`), and built
into component instances (:mod:`.accelerator`)."""

from simulator.arch.accelerator import Accelerator, build
from simulator.arch.config import ArchConfig, parse_arch
from simulator.arch.loader import load_arch

__all__ = ["Accelerator", "ArchConfig", "build", "load_arch", "parse_arch"]
