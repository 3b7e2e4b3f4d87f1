"""IGP: the iterated greedy policy.

1. Start from the most reliable placement (``m_max`` local subtasks, the most reliable
   workers). If it misses the budget, no placement meets it: report the instance infeasible.
   A second start is the cheapest all-offload placement repaired to the budget (AOP's), when
   it is feasible; the optimum often sits at one end of ``m``. With a shared bandwidth /
   power budget each ``m`` prices the workers differently, and every ``m`` (``m_max``
   included) gets such a repaired start.
2. Best-improvement local search from each start over the moves of
   :class:`offload.policies.search.Neighbourhood` (swap, local -> worker, worker -> local
   and the combined merge, split and double-swap moves), accepting only feasible, strictly
   cheaper moves. The combined moves cost a factor ``n`` more, so they are tried only when
   no simple move improves (variable neighbourhood descent).
3. Iterated-greedy rounds (Ruiz and Stuetzle, "A simple and effective iterated greedy
   algorithm for the permutation flowshop scheduling problem", 2007): destroy a few of the
   current choices, refill the freed slots with the cheapest options (the destroyed workers
   are tabu for the refill), repair feasibility, search locally again. A round's result
   replaces the current solution when it is no worse; the best one is kept.
"""

from __future__ import annotations

import numpy as np

from coding.validate import check_int
from offload.model import Instance, check_instance
from offload.placement import Placement, most_reliable
from offload.policies.baseline import repaired_at
from offload.policies.rng import as_rng
from offload.policies.search import TOL, Neighbourhood

__all__ = ["IGP"]


class IGP:
    """Iterated greedy policy.

    Parameters
    ----------
    rounds : int
        Iterated-greedy rounds after the first local search.
    destroy : int
        At most this many choices (local slots or workers) are removed per round; each round
        draws the number uniformly from ``1..destroy``.
    patience : int or None
        Stop early after this many rounds without a new best (``None``: run all rounds).
    pool : int
        Unchosen-worker cap for the pairwise ``split`` move, see ``Neighbourhood``.
    multistart : bool
        Also start a local search from the repaired all-offload placement (step 2).
    """

    name = "igp"

    def __init__(self, rounds: int = 30, destroy: int = 3, patience: int | None = 8,
                 pool: int = 40, multistart: bool = True):
        self.rounds = check_int("rounds", rounds, low=0)
        self.destroy = check_int("destroy", destroy, low=1)
        self.patience = None if patience is None else check_int("patience", patience, low=1)
        self.pool = check_int("pool", pool, low=2)
        if not isinstance(multistart, bool):
            raise TypeError(f"Argument 'multistart' must be a bool, not {multistart!r}.")
        self.multistart = multistart

    def plan(self, instance: Instance, *, rng=None) -> Placement:
        """Return the cheapest placement found that meets the budget (see module docstring).

        Parameters
        ----------
        instance : Instance
            The problem.
        rng : numpy.random.Generator or int or None
            Randomness of the destroy steps; the result is a pure function of it.
        """
        check_instance(instance)
        rng = as_rng(rng)
        start = most_reliable(instance, self.name)
        if not start.feasible:
            return start
        nb = Neighbourhood(instance, pool=self.pool)
        m, S = self._start(nb, instance, start)
        cur_e = best_e = nb.energy(m, S)
        cur, best, stale = (m, S), (m, S), 0
        for _ in range(self.rounds):
            state = self._destroy_refill(nb, *cur, rng)
            state = self._repair(nb, *state)
            if state is None:
                continue
            state = self._local_search(nb, *state)
            e = nb.energy(*state)
            if e <= cur_e + TOL:
                cur, cur_e = state, e
            if e < best_e - TOL * max(1.0, best_e):
                best, best_e, stale = state, e, 0
            else:
                stale += 1
                if self.patience is not None and stale >= self.patience:
                    break
        return nb.placement(*best, self.name)

    def _start(self, nb: Neighbourhood, instance: Instance, start: Placement):
        """Local search from both ends of ``m``: the most reliable placement (``m_max``) and
        the cheapest all-offload placement repaired to the budget (``m_min``); the cheaper
        local optimum is the starting point of the rounds. With a shared budget every ``m``
        prices the workers differently, so each ``m`` in between gets its repaired start."""
        states = [self._local_search(nb, start.m, np.array(start.workers, dtype=int))]
        if self.multistart:
            ms = [instance.m_min]
            if instance.share.active:
                ms = range(instance.m_min, instance.m_max + 1)
            for m in ms:
                pl = repaired_at(instance, m, "cheapest", self.name)
                if pl.feasible:
                    states.append(self._local_search(nb, pl.m, np.array(pl.workers, dtype=int)))
        return min(states, key=lambda st: nb.energy(*st))

    @staticmethod
    def _local_search(nb: Neighbourhood, m: int, S: np.ndarray):
        # Variable neighbourhood descent: the O(n W) simple moves first, the combined moves
        # (O(n^2 W) and more) only once no simple move improves. (Splitting the combined
        # moves into two further tiers was slower, measured side by side at W=200, N=40.)
        while True:
            move = nb.best_improvement(m, S, levels=(0,))
            if move is None:
                move = nb.best_improvement(m, S, levels=(1, 2))
            if move is None:
                return m, S
            m, S = move.m, move.S

    def _destroy_refill(self, nb: Neighbourhood, m: int, S: np.ndarray, rng):
        slots = m + S.size  # == N: indices < m are local slots
        d = int(rng.integers(1, min(self.destroy, slots) + 1))
        gone = rng.choice(slots, size=d, replace=False)
        n_local_gone = int(np.count_nonzero(gone < m))
        removed = S[gone[gone >= m] - m]
        m2, S2 = m - n_local_gone, np.setdiff1d(S, removed)
        free = nb.unchosen(S2)
        options = np.setdiff1d(free, removed)
        if options.size + (nb.m_max - m2) < d:
            options = free  # too few workers: the tabu is lifted
        # Local slots and workers, cheapest first; local slots carry worker id -1.
        ids = np.concatenate([options, np.full(nb.m_max - m2, -1)])
        cost = nb.view(S.size)[1]  # the current share's prices (all of them when unshared)
        costs = np.concatenate([cost[options], np.full(nb.m_max - m2, nb.e_loc)])
        take = ids[np.argsort(costs, kind="stable")[:d]]
        return m2 + int(np.count_nonzero(take < 0)), np.sort(np.append(S2, take[take >= 0]))

    @staticmethod
    def _repair(nb: Neighbourhood, m: int, S: np.ndarray):
        succ = nb.success(m, S)
        for _ in range(4 * nb.N + 4):
            if succ >= nb.target:
                return m, S
            move = nb.best_repair(m, S, succ)
            if move is None:
                return None
            m, S, succ = move.m, move.S, move.success
        return (m, S) if succ >= nb.target else None
