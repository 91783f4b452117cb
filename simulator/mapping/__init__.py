"""Mapping: how a layer is laid onto hardware, in closed form over numpy arrays.

Dataflows (:mod:`.dataflows`), masks and sparsity views (:mod:`.masks`, :mod:`.sparsity`,
:mod:`.formats`), the systolic fold/reuse/tile model (:mod:`.systolic`), vector layers
(:mod:`.vector`) and the result every compute unit returns (:mod:`.schedule`). Nothing here
imports the hardware: units are described to it by the small Protocols it declares.
"""
