"""Exact: the optimal placement by enumeration with branch-and-bound, under a time limit.

For every ``m`` in ``m_min..m_max`` the chosen set ``S`` (``|S| = N - m``) is enumerated by
depth-first search over the workers sorted by cost. A node is pruned when

* its cost plus the cheapest possible completion (the next workers in cost order) cannot beat
  the incumbent (energy lower bound), or
* even the most reliable completion (the best remaining ``p``'s) misses the budget
  (feasibility upper bound: the Poisson-binomial tail increases in every ``p``).

When the cheapest completion is itself feasible it is the best leaf below the node, so the
node is closed at once. Both bounds are valid, so a finished search is a proven optimum.
Each ``m`` is searched with the workers' costs and ``p``'s at ``n = N - m`` parallel uploads
(:meth:`offload.model.Instance.model_at`; the same arrays for every ``m`` unless the
instance has a shared bandwidth / power budget), so the bounds hold per ``m`` and the
optimum over all ``m`` is still proven.

The search stops at ``time_limit`` seconds. It then returns the incumbent (a feasible
placement, at worst the most reliable one) and a valid lower bound on the optimum: the least
energy bound among the nodes still open (the pending siblings on the current path and the
roots of the ``m`` values not yet searched). :meth:`Exact.solve` reports both; ``plan``
returns the placement only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from coding.validate import check_int, check_real
from offload import pb
from offload.model import Instance, check_instance
from offload.placement import Placement, _evaluate, most_reliable, search_view
from offload.policies.rng import as_rng

__all__ = ["Exact", "ExactResult"]


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


@dataclass(frozen=True)
class ExactResult:
    """Outcome of :meth:`Exact.solve`.

    Attributes
    ----------
    placement : Placement
        The best placement found (the optimum when ``optimal``).
    optimal : bool
        Whether the search finished, so that ``placement`` is a proven optimum (or the
        instance is proven infeasible).
    lower_bound : float
        A valid lower bound on the optimal energy (J); equals ``placement.energy`` when
        ``optimal`` and ``nan`` for an infeasible instance.
    nodes : int
        Search nodes visited.
    elapsed_s : float
        Wall time of the search (s).
    """

    placement: Placement
    optimal: bool
    lower_bound: float
    nodes: int
    elapsed_s: float

    @property
    def gap(self) -> float:
        """Relative gap ``(energy - lower_bound) / lower_bound`` (0 when optimal)."""
        if not self.placement.feasible:
            return float("nan")
        lb = self.lower_bound
        return (self.placement.energy - lb) / lb if lb > 0 else float("inf")


class _Timeout(Exception):
    def __init__(self, bound: float):
        super().__init__(bound)
        self.bound = bound


class Exact:
    """Optimal placement by branch-and-bound (see module docstring).

    Parameters
    ----------
    time_limit : float or None
        Seconds before the search stops with the incumbent and a lower bound (``None``:
        no limit).
    max_workers : int or None
        Refuse instances with more workers than this (``None``: no cap).
    """

    name = "exact"

    def __init__(self, time_limit: float | None = 10.0, max_workers: int | None = None):
        self.time_limit = (None if time_limit is None
                           else check_real("time_limit", time_limit, low=0.0, low_open=True))
        self.max_workers = None if max_workers is None else check_int(
            "max_workers", max_workers, low=1)

    def plan(self, instance: Instance, *, rng=None) -> Placement:
        """Return a minimum-energy placement that meets the budget (``rng`` is unused); after
        a time-out, the best placement found (see :meth:`solve`)."""
        return self.solve(instance, rng=rng).placement

    def solve(self, instance: Instance, *, rng=None) -> ExactResult:
        """Search for the optimum and report whether it is proven (see :class:`ExactResult`)."""
        check_instance(instance)
        as_rng(rng)
        if self.max_workers is not None:
            check_int("W", instance.W, high=self.max_workers, high_name="Exact max_workers")
        t0 = time.perf_counter()
        start = most_reliable(instance, self.name)
        if not start.feasible:
            return ExactResult(start, True, float("nan"), 0, time.perf_counter() - t0)
        _, s = search_view(instance)
        deadline = None if self.time_limit is None else t0 + self.time_limit
        bb = _BranchAndBound(instance, start, deadline)
        ms = list(range(instance.m_min, instance.m_max + 1))
        optimal, bound = True, float("inf")
        for j, m in enumerate(ms):
            try:
                bb.use(instance.N - m)
                bb.search(m, instance.N - m, instance.K - m + s)
            except _Timeout as out:
                optimal = False
                bound = min([out.bound, bb.open_bound()]
                            + [bb.root_bound(r, instance.N - r) for r in ms[j + 1:]])
                break
        pl = _evaluate(instance, bb.best_m, bb.best_ids, self.name)
        lb = pl.energy if optimal else min(bound, pl.energy)
        return ExactResult(pl, optimal, lb, bb.nodes, time.perf_counter() - t0)


class _BranchAndBound:
    """Search state of one :meth:`Exact.solve` call (kept off the policy object)."""

    def __init__(self, instance: Instance, start: Placement, deadline):
        self.inst = instance
        self._views: dict = {}
        self.target = 1.0 - instance.budget.eps - pb.PROB_TOL
        self.e_loc = instance.e_loc
        self.best_e = start.energy
        self.best_m, self.best_ids = start.m, np.array(start.workers, dtype=int)
        self.deadline, self.nodes = deadline, 0
        self._pending: list[float] = []  # energy bounds of the open siblings on the path
        self.use(instance.N - instance.m_min)

    def _view(self, n: int):
        """Workers in cost order at ``n`` uploads: ``(order, q, c, prefix, suffix cache)``
        (one view for every ``n`` without a shared budget)."""
        share = self.inst.share.active
        key = self.inst.link_at(n) if share else None
        if key not in self._views:
            q, _ = search_view(self.inst, n if share else None)
            cost = np.asarray((self.inst.model_at(n) if share else self.inst.model).cost,
                              dtype=float)
            order = np.lexsort((-q, cost))  # cheapest first, the more reliable among equals
            c = cost[order]
            self._views[key] = (order, q[order], c, np.concatenate([[0.0], np.cumsum(c)]), {})
        return self._views[key]

    def use(self, n: int) -> None:
        """Search with the workers' model at ``n`` parallel uploads."""
        self.order, self.q, self.c, self.prefix, self._suffix = self._view(n)

    def suffix_best(self, i: int) -> np.ndarray:
        """The ``p``'s of workers ``i..`` (cost order), most reliable first (cached)."""
        if i not in self._suffix:
            self._suffix[i] = np.sort(self.q[i:])[::-1]
        return self._suffix[i]

    def root_bound(self, m: int, n: int) -> float:
        return m * self.e_loc + float(self._view(n)[3][n])

    def open_bound(self) -> float:
        return min(self._pending, default=float("inf"))

    def search(self, m: int, n: int, need: int) -> None:
        self._m, self._n, self._need = m, n, need
        self._pending = []
        self._dfs(0, [], np.ones(1), m * self.e_loc)
        self._pending = []

    def _record(self, energy: float, positions: list[int]) -> None:
        self.best_e, self.best_m = energy, self._m
        self.best_ids = self.order[positions]

    def _dfs(self, i: int, chosen: list[int], f: np.ndarray, cost: float) -> None:
        self.nodes += 1
        r, need = self._n - len(chosen), self._need
        if self.deadline is not None and not self.nodes & 255 and (
                time.perf_counter() > self.deadline):
            # This node's subtree is still open: its cheapest completion bounds it.
            raise _Timeout(cost + self.prefix[i + r] - self.prefix[i]
                           if self.q.size - i >= r else float("inf"))
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
        if _tail_with(f, self.suffix_best(i)[:r], need) < self.target:
            return
        if _tail_with(f, self.q[i : i + r], need) >= self.target:
            self._record(cheapest, chosen + list(range(i, i + r)))
            return
        # While the left branch runs, the right sibling is open; its bound is its cheapest
        # completion (workers i+1.. in cost order).
        self._pending.append(cost + self.prefix[i + 1 + r] - self.prefix[i + 1]
                             if self.q.size - i - 1 >= r else float("inf"))
        self._dfs(i + 1, chosen + [i], _add(f, self.q[i]), cost + self.c[i])
        self._pending.pop()
        self._dfs(i + 1, chosen, f, cost)
