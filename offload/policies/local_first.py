"""LCP: local computing first.

The master keeps as many coded subtasks as it can finish by the deadline (``m = m_max``) and
offloads the remaining ``N - m_max``, which the deadline forces out, to workers picked by a
fixed rule (the cheapest by default) without regard to the budget.
"""

from __future__ import annotations

from offload.model import Instance, check_instance
from offload.placement import Placement
from offload.policies._baseline import check_rule, fixed_m
from offload.policies._rng import as_rng

__all__ = ["LCP"]


class LCP:
    """Local-computing-first policy.

    Parameters
    ----------
    workers : {"cheapest", "reliable"}
        Which ``N - m_max`` workers receive the forced offloads.
    """

    name = "lcp"

    def __init__(self, workers: str = "cheapest"):
        self.workers = check_rule(workers)

    def plan(self, instance: Instance, *, rng=None) -> Placement:
        """Run ``m_max`` subtasks locally, offload the rest (``rng`` is unused)."""
        check_instance(instance)
        as_rng(rng)
        return fixed_m(instance, instance.m_max, self.workers, self.name)
