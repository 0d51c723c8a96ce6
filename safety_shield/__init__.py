"""Safety shield: the last, deterministic step between any decision-maker and execution.

STRATEGY.md §11–§16 and SIMULATION.md §6.6. Rules are listed in :mod:`safety_shield.types`
(stable index → name); :mod:`safety_shield.rules` holds one NumPy function per rule,
:mod:`safety_shield.reference` composes them (the float64 authority), :mod:`safety_shield.twin`
is the JAX twin used inside the episode, :mod:`safety_shield.audit` checks recorded telemetry.
"""

from safety_shield.types import N_RULES, RULE_NAMES, ShieldRecord

__all__ = ["N_RULES", "RULE_NAMES", "ShieldRecord"]
