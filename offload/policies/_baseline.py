"""Shared pieces of the baseline policies (AOP, LCP)."""

from __future__ import annotations

import numpy as np

from offload.model import Instance
from offload.placement import Placement, _evaluate, search_view

RULES = ("cheapest", "reliable")


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"Argument 'workers' must be one of {', '.join(RULES)}, not {rule!r}.")
    return rule


def fixed_m(instance: Instance, m: int, rule: str, name: str) -> Placement:
    """Place ``m`` subtasks locally and the rest on workers picked by ``rule``.

    ``"cheapest"`` takes the workers with the lowest energy cost (ties: more reliable first);
    ``"reliable"`` takes the most reliable (ties: cheaper first). Neither looks at the budget;
    the returned ``feasible`` flag says whether the result meets it.
    """
    q, _ = search_view(instance)
    cost = instance.model.cost
    order = np.lexsort((-q, cost)) if rule == "cheapest" else np.lexsort((cost, -q))
    return _evaluate(instance, m, order[: instance.N - m], name)
