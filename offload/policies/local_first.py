"""LCP: local computing first.

The master keeps as many coded subtasks as it can finish by the deadline
(``m = m_max = floor(T f_m / C)``) and offloads only the ``N - m_max`` that the deadline
forces out. By default (``budget="repair"``) those go to the cheapest workers, swapped for
more reliable ones until the budget holds (see :mod:`offload.policies.baseline`). No
placement is more reliable than ``m_max`` local subtasks plus the most reliable workers, so
LCP is feasible on every feasible instance. ``LCP(budget="blind")`` (the registry's
``lcp-blind``) is the earlier variant: the forced offloads go to the workers picked by
``workers`` without regard to the budget.
"""

from __future__ import annotations

from offload.model import Instance, check_instance
from offload.placement import Placement
from offload.policies.baseline import baseline, check_budget, check_rule
from offload.policies.rng import as_rng

__all__ = ["LCP"]


class LCP:
    """Local-computing-first policy.

    Parameters
    ----------
    workers : {"cheapest", "reliable"}
        Which workers are taken first for the forced offloads.
    budget : {"repair", "blind"}
        ``repair``: swap workers until the budget holds; ``blind``: keep the first pick.
    """

    def __init__(self, workers: str = "cheapest", budget: str = "repair"):
        self.workers = check_rule(workers)
        self.budget = check_budget(budget)
        self.name = "lcp" if budget == "repair" else "lcp-blind"

    def plan(self, instance: Instance, *, rng=None) -> Placement:
        """Run ``m_max`` subtasks locally, offload the rest (``rng`` is unused)."""
        check_instance(instance)
        as_rng(rng)
        return baseline(instance, instance.m_max, self.workers, self.budget, self.name)
