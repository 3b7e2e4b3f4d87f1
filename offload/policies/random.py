"""ROP: random offloading.

One draw takes the number of local subtasks ``m`` uniformly from ``m_min..m_max`` and the
``N - m`` workers uniformly without replacement, without looking at energy. ROP respects the
budget by redrawing: it returns the first draw that meets the budget, up to ``tries`` draws
(100 by default). When none of them does, it returns the most reliable draw, flagged
infeasible. ``ROP(tries=1)`` (the registry's ``rop-once``) is the earlier single-draw variant.
"""

from __future__ import annotations

import numpy as np

from coding.validate import check_int
from offload.model import Instance, check_instance
from offload.placement import Placement, _evaluate
from offload.policies.rng import as_rng

__all__ = ["ROP"]


class ROP:
    """Random offloading policy.

    Parameters
    ----------
    tries : int
        Most draws before giving up on the budget.
    """

    def __init__(self, tries: int = 100):
        self.tries = check_int("tries", tries, low=1)
        self.name = "rop" if tries != 1 else "rop-once"

    def plan(self, instance: Instance, *, rng=None) -> Placement:
        """Draw random placements from ``rng`` (a Generator, an int seed, or ``None``) until
        one meets the budget (see module docstring)."""
        check_instance(instance)
        rng = as_rng(rng)
        best = None
        for _ in range(self.tries):
            m = int(rng.integers(instance.m_min, instance.m_max + 1))
            ids = rng.choice(instance.W, size=instance.N - m, replace=False)
            pl = _evaluate(instance, m, np.sort(ids), self.name)
            if pl.feasible:
                return pl
            if best is None or pl.success > best.success:
                best = pl
        return best
