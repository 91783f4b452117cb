"""Hardware description of the systolic array, simulated and synthesised (extra ``[rtl]``).

:mod:`.pe` (the PE variants) and :mod:`.array` (the parameterised array with its feeders and
drain) are Amaranth HDL; :mod:`.sim` runs GEMMs through them in Amaranth's simulator;
:mod:`.synth` synthesises them with Yosys. Amaranth and Yosys are optional: importing this
package without them raises a :class:`~simulator.frontend._deps.MissingExtraError` naming the
extra.
"""

from simulator.frontend._deps import require

require("amaranth")
