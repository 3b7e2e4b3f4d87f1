"""ROP: random offloading.

The number of local subtasks ``m`` is drawn uniformly from ``m_min..m_max`` and the ``N - m``
workers uniformly without replacement, without regard to energy or the budget (one draw).
"""

from __future__ import annotations

import numpy as np

from offload.model import Instance, check_instance
from offload.placement import Placement, _evaluate
from offload.policies._rng import as_rng

__all__ = ["ROP"]


class ROP:
    """Random offloading policy (no parameters)."""

    name = "rop"

    def plan(self, instance: Instance, *, rng=None) -> Placement:
        """Draw a random placement from ``rng`` (a Generator, an int seed, or ``None``)."""
        check_instance(instance)
        rng = as_rng(rng)
        m = int(rng.integers(instance.m_min, instance.m_max + 1))
        ids = rng.choice(instance.W, size=instance.N - m, replace=False)
        return _evaluate(instance, m, np.sort(ids), self.name)
