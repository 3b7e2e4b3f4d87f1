"""Exact: the optimal placement by enumeration with branch-and-bound.

For every ``m`` in ``m_min..m_max`` the chosen set ``S`` (``|S| = N - m``) is enumerated by
depth-first search over the workers sorted by cost. A node is pruned when

* its cost plus the cheapest possible completion (the next workers in cost order) cannot beat
  the incumbent (energy lower bound), or
* even the most reliable completion (the best remaining ``p``'s) misses the budget
  (feasibility upper bound: the Poisson-binomial tail increases in every ``p``).

When the cheapest completion is itself feasible it is the best leaf below the node, so the
node is closed at once. Both bounds are valid, so the result is exact. Practical up to about
``W = 20`` (and ``N`` near ``W / 2``, the worst case).
"""

from __future__ import annotations

import numpy as np

from coding._validate import check_int
from offload import pb
from offload.model import Instance, check_instance
from offload.placement import Placement, _evaluate, most_reliable, search_view
from offload.policies._rng import as_rng

__all__ = ["Exact"]


def _add(f: np.ndarray, q: float) -> np.ndarray:
    """pmf after adding one Bernoulli(q) (the array grows by one)."""
    g = np.empty(f.size + 1)
    g[:-1] = f * (1.0 - q)
    g[-1] = 0.0
    g[1:] += f * q
    return g


def _tail_with(f: np.ndarray, qs, need: int) -> float:
    for q in qs:
        f = _add(f, q)
    if need <= 0:
        return 1.0
    return float(f[need:].sum()) if need < f.size else 0.0


class Exact:
    """Optimal placement by branch-and-bound (see module docstring).

    Parameters
    ----------
    max_workers : int
        Refuse instances with more workers than this (the search is exponential).
    """

    name = "exact"

    def __init__(self, max_workers: int = 24):
        self.max_workers = check_int("max_workers", max_workers, low=1)

    def plan(self, instance: Instance, *, rng=None) -> Placement:
        """Return a minimum-energy placement that meets the budget (``rng`` is unused)."""
        check_instance(instance)
        as_rng(rng)
        check_int("W", instance.W, high=self.max_workers, high_name="Exact max_workers")
        start = most_reliable(instance, self.name)
        if not start.feasible:
            return start
        q, s = search_view(instance)
        bb = _BranchAndBound(instance, q, start)
        for m in range(instance.m_min, instance.m_max + 1):
            bb.search(m, instance.N - m, instance.K - m + s)
        return _evaluate(instance, bb.best_m, bb.best_ids, self.name)


class _BranchAndBound:
    """Search state of one :meth:`Exact.plan` call (kept off the policy object)."""

    def __init__(self, instance: Instance, q: np.ndarray, start: Placement):
        cost = np.asarray(instance.model.cost, dtype=float)
        self.order = np.lexsort((-q, cost))  # cheapest first, the more reliable among equals
        self.q, self.c = q[self.order], cost[self.order]
        self.prefix = np.concatenate([[0.0], np.cumsum(self.c)])
        # Best remaining p's from each position, sorted descending (feasibility bound).
        self.suffix_best = [np.sort(self.q[i:])[::-1] for i in range(instance.W + 1)]
        self.target = 1.0 - instance.budget.eps - pb.PROB_TOL
        self.e_loc = instance.e_loc
        self.best_e = start.energy
        self.best_m, self.best_ids = start.m, np.array(start.workers, dtype=int)

    def search(self, m: int, n: int, need: int) -> None:
        self._m, self._n, self._need = m, n, need
        self._dfs(0, [], np.ones(1), m * self.e_loc)

    def _record(self, energy: float, positions: list[int]) -> None:
        self.best_e, self.best_m = energy, self._m
        self.best_ids = self.order[positions]

    def _dfs(self, i: int, chosen: list[int], f: np.ndarray, cost: float) -> None:
        r, need = self._n - len(chosen), self._need
        if r == 0:
            ok = need <= 0 or (need < f.size and f[need:].sum() >= self.target)
            if ok and cost < self.best_e:
                self._record(cost, chosen)
            return
        if self.q.size - i < r:
            return
        cheapest = cost + self.prefix[i + r] - self.prefix[i]
        if cheapest >= self.best_e:
            return
        if _tail_with(f, self.suffix_best[i][:r], need) < self.target:
            return
        if _tail_with(f, self.q[i : i + r], need) >= self.target:
            self._record(cheapest, chosen + list(range(i, i + r)))
            return
        self._dfs(i + 1, chosen + [i], _add(f, self.q[i]), cost + self.c[i])
        self._dfs(i + 1, chosen, f, cost)
