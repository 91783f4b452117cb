"""Hardware: the components an architecture is built from, registered by name on import
(no file scanning, no plug-in paths). Compute units (:mod:`.unit`): the systolic array with
its PE kinds (:mod:`.systolic`, :mod:`.pe`, :mod:`.pe_kinds`), the EIE- and SCNN-like sparse
engines (:mod:`.eie`, :mod:`.scnn`), the FINN-style FPGA dataflow (:mod:`.fpga`), the FFT unit
for block-circulant layers (:mod:`.fft`) and the SIMD vector unit (:mod:`.vector`); memories
(:mod:`.memory`); synthesised PE figures (:mod:`.synthesis`)."""

from simulator.hardware import eie, fft, fpga, memory, pe_kinds, scnn, systolic, vector
from simulator.hardware.registries import BUFFERS, DRAMS, PE_ARRAYS, VECTOR_UNITS

__all__ = ["BUFFERS", "DRAMS", "PE_ARRAYS", "VECTOR_UNITS", "eie", "fft", "fpga", "memory",
           "pe_kinds", "scnn", "systolic", "vector"]
