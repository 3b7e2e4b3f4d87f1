"""AOP: all offloading.

Every coded subtask goes to a worker (``m = m_min = max(0, N - W)``: only when ``N > W`` do
the subtasks that no worker can take run locally). AOP never computes locally to rescue the
deadline; it respects the budget only through its choice of workers. By default
(``budget="repair"``) it takes the cheapest workers and swaps in more reliable ones until the
budget holds (see :mod:`offload.policies.baseline`); when no all-offload placement meets
the budget, AOP is infeasible on that instance and says so. ``AOP(budget="blind")`` (the
registry's ``aop-blind``) is the earlier variant: the ``N`` workers picked by ``workers``
without regard to the budget.
"""

from __future__ import annotations

from offload.model import Instance, check_instance
from offload.placement import Placement
from offload.policies.baseline import baseline, check_budget, check_rule
from offload.policies.rng import as_rng

__all__ = ["AOP"]


class AOP:
    """All-offloading policy.

    Parameters
    ----------
    workers : {"cheapest", "reliable"}
        Which workers are taken first.
    budget : {"repair", "blind"}
        ``repair``: swap workers until the budget holds; ``blind``: keep the first pick.
    """

    def __init__(self, workers: str = "cheapest", budget: str = "repair"):
        self.workers = check_rule(workers)
        self.budget = check_budget(budget)
        self.name = "aop" if budget == "repair" else "aop-blind"

    def plan(self, instance: Instance, *, rng=None) -> Placement:
        """Offload all subtasks (``rng`` is unused; the policy is deterministic)."""
        check_instance(instance)
        as_rng(rng)
        return baseline(instance, instance.m_min, self.workers, self.budget, self.name)
