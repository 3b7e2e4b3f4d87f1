"""AOP: all offloading.

Every coded subtask goes to a worker (``m = 0``), one per worker; only when ``N > W`` are the
``N - W`` subtasks that no worker can take run locally. The workers are picked by a fixed
rule (the cheapest by default) without regard to the budget, as in the study: AOP shows what
offloading everything costs, and its ``feasible`` flag shows whether that meets the deadline.
"""

from __future__ import annotations

from offload.model import Instance, check_instance
from offload.placement import Placement
from offload.policies._baseline import check_rule, fixed_m
from offload.policies._rng import as_rng

__all__ = ["AOP"]


class AOP:
    """All-offloading policy.

    Parameters
    ----------
    workers : {"cheapest", "reliable"}
        Which ``N`` workers receive the subtasks.
    """

    name = "aop"

    def __init__(self, workers: str = "cheapest"):
        self.workers = check_rule(workers)

    def plan(self, instance: Instance, *, rng=None) -> Placement:
        """Offload all subtasks (``rng`` is unused; the policy is deterministic)."""
        check_instance(instance)
        as_rng(rng)
        return fixed_m(instance, instance.m_min, self.workers, self.name)
