"""Validation: the functional cycle-stepped reference of the systolic array
(:mod:`.reference`, operands per PE kind in :mod:`.operands`) and the live cross-check against
the real SCALE-Sim 3.0.0 (:mod:`.scalesim`)."""
