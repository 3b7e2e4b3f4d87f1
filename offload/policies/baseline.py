"""Shared pieces of the baseline policies (AOP, LCP).

Both fix the number ``m`` of local subtasks by their rule and differ only in how they pick
the ``N - m`` workers:

* ``budget="repair"`` (the default): take the cheapest workers, then, while the placement
  misses the budget, swap one chosen worker for an unchosen one: the cheapest swap that
  meets the budget if there is one, else the swap with the largest gain in success
  probability per extra joule. Every swap raises the success probability, so the loop ends
  at a feasible set or at the most reliable set for this ``m``; if even that misses, the
  baseline is infeasible at its ``m`` and reports the most reliable attempt.
* ``budget="blind"``: the workers picked by ``workers`` (cheapest or most reliable) without
  looking at the budget; the ``feasible`` flag only reports the outcome.
"""

from __future__ import annotations

import numpy as np

from offload.model import Instance
from offload.placement import Placement, _evaluate, search_view
from offload.policies.search import Neighbourhood

__all__ = ["BUDGETS", "RULES", "baseline", "check_budget", "check_rule", "fixed_m", "repaired_at"]

RULES = ("cheapest", "reliable")
BUDGETS = ("repair", "blind")


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"Argument 'workers' must be one of {', '.join(RULES)}, not {rule!r}.")
    return rule


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise ValueError(
            f"Argument 'budget' must be one of {', '.join(BUDGETS)}, not {budget!r}."
        )
    return budget


def _order(instance: Instance, rule: str, n: int) -> np.ndarray:
    """Workers by ``rule``, with their cost and reliability at ``n`` parallel uploads."""
    q, _ = search_view(instance, n)
    cost = instance.model_at(n).cost
    return np.lexsort((-q, cost)) if rule == "cheapest" else np.lexsort((cost, -q))


def fixed_m(instance: Instance, m: int, rule: str, name: str) -> Placement:
    """Place ``m`` subtasks locally and the rest on workers picked by ``rule``.

    ``"cheapest"`` takes the workers with the lowest energy cost (ties: more reliable first);
    ``"reliable"`` takes the most reliable (ties: cheaper first). Neither looks at the budget;
    the returned ``feasible`` flag says whether the result meets it.
    """
    n = instance.N - m
    return _evaluate(instance, m, _order(instance, rule, n)[:n], name)


def repaired_at(instance: Instance, m: int, rule: str, name: str) -> Placement:
    """Place ``m`` subtasks locally; workers by ``rule``, then swapped until the budget holds
    (see the module docstring). Returns an infeasible placement only when no worker set
    meets the budget at this ``m``."""
    nb = Neighbourhood(instance)
    S = np.sort(_order(instance, rule, instance.N - m)[: instance.N - m])
    succ = nb.success(m, S)
    for _ in range(instance.W * (instance.N - m) + 1):
        if succ >= nb.target:
            return nb.placement(m, S, name)
        move = nb.best_repair(m, S, succ, swaps_only=True)
        if move is None or move.success <= succ:
            break
        S, succ = move.S, move.success
    return fixed_m(instance, m, "reliable", name)


def baseline(instance: Instance, m: int, rule: str, budget: str, name: str) -> Placement:
    """The baseline placement at ``m`` local subtasks under ``budget`` (repair or blind)."""
    if budget == "blind":
        return fixed_m(instance, m, rule, name)
    return repaired_at(instance, m, rule, name)
