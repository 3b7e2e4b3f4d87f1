"""Neighbourhood of a placement, evaluated in bulk with the Poisson-binomial DP.

A state is ``(m, S)``: ``m`` local subtasks and the sorted array ``S`` of chosen workers,
``|S| = N - m``. The moves are

* ``swap``: replace chosen worker ``j`` by unchosen worker ``i``;
* ``to_worker``: move one local subtask to unchosen worker ``i`` (``m - 1``);
* ``to_local``: move chosen worker ``j``'s subtask to the master (``m + 1``);
* ``merge`` (combined): drop chosen ``j1, j2``, add unchosen ``i`` and one local subtask;
* ``split`` (combined): drop chosen ``j`` and one local subtask, add unchosen ``i1, i2``;
* ``swap2`` (combined): replace chosen ``j1, j2`` by unchosen ``i1, i2`` (pairs drawn from
  a pool of half the ``split`` pool's size).

Every candidate's success probability comes from leave-one-out (and leave-two-out) pmfs of
``S``, obtained by zeroing entries (a Bernoulli(0) is an absent worker), plus one or two
Bernoulli terms: ``P(X + B_i >= t) = P(X >= t) + p_i P(X = t - 1)``. So a whole neighbourhood
costs ``O(n^3 + n^2 W)`` vectorized work instead of one DP per candidate.

With a shared bandwidth / power budget (:class:`offload.world.LinkShare`) every worker's
cost and ``p`` depend on ``n = |S|``: a move that changes ``m`` is scored with the arrays at
its new ``n`` (:meth:`Neighbourhood.view`), its own pmfs, and its energy change includes the
re-pricing of the workers that stay. Without one every ``n`` has the same arrays and the
moves are scored exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from offload import pb
from offload.model import Instance
from offload.placement import Placement, _evaluate, search_view

__all__ = ["TOL", "Move", "Neighbourhood"]

TOL = 1e-12


@lru_cache(maxsize=256)
def _pairs(n: int) -> np.ndarray:
    """All index pairs ``i < j < n`` as an ``(n*(n-1)/2, 2)`` array (read-only, cached)."""
    a = np.stack(np.triu_indices(n, k=1), axis=1)
    a.setflags(write=False)
    return a


def _rows(qS: np.ndarray, jj: np.ndarray) -> np.ndarray:
    """Rows for one batched DP: row 0 is ``qS``, rows ``1..n`` leave one worker out (a
    zero), the rest leave out the pairs ``jj``."""
    n = qS.size
    rows = np.tile(qS, (1 + n + len(jj), 1))
    rows[1 + np.arange(n), np.arange(n)] = 0.0
    rows[1 + n + np.arange(len(jj)), jj[:, 0]] = 0.0
    rows[1 + n + np.arange(len(jj)), jj[:, 1]] = 0.0
    return rows


@dataclass
class Move:
    """The chosen move: energy change, new success probability and the resulting state."""

    delta: float
    success: float
    m: int
    S: np.ndarray


class Neighbourhood:
    """Evaluate and pick moves for one instance.

    Parameters
    ----------
    instance : Instance
        The problem.
    pool : int
        Cap on the unchosen workers considered for the ``split`` move (pairs of them); the
        pool keeps the cheapest and the most reliable halves. All are used when fewer.
    """

    def __init__(self, instance: Instance, pool: int = 40):
        self.inst = instance
        self.q, self.s = search_view(instance)
        self.cost = np.asarray(instance.model.cost, dtype=float)
        self.shared = instance.share.active
        self._views: dict = {}
        self.e_loc = instance.e_loc
        self.K, self.N, self.W = instance.K, instance.N, instance.W
        self.m_min, self.m_max = instance.m_min, instance.m_max
        self.target = 1.0 - instance.budget.eps - pb.PROB_TOL
        self.pool = pool

    # -- state helpers ------------------------------------------------------------
    def view(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(q, cost)`` of every worker at ``n`` parallel uploads (``self.q, self.cost``
        without a shared budget)."""
        if not self.shared:
            return self.q, self.cost
        key = self.inst.link_at(n)
        if key not in self._views:
            q, _ = search_view(self.inst, n)
            self._views[key] = (q, np.asarray(self.inst.model_at(n).cost, dtype=float))
        return self._views[key]

    def need(self, m: int) -> int:
        return self.K - m + self.s

    def success(self, m: int, S: np.ndarray) -> float:
        return pb.tail(self.view(S.size)[0][S], self.need(m))

    def energy(self, m: int, S: np.ndarray) -> float:
        return m * self.e_loc + float(self.view(S.size)[1][S].sum())

    def unchosen(self, S: np.ndarray) -> np.ndarray:
        mask = np.ones(self.W, dtype=bool)
        mask[S] = False
        return np.flatnonzero(mask)

    def placement(self, m: int, S: np.ndarray, name: str) -> Placement:
        return _evaluate(self.inst, m, S, name)

    # -- neighbourhood ------------------------------------------------------------
    def swap_block(self, m: int, S: np.ndarray):
        """``(delta, success, make_state)`` of the swaps ``j -> i`` only (``m`` fixed), or
        ``None`` when there is no swap."""
        U = self.unchosen(S)
        if not (S.size and U.size):
            return None
        need = self.need(m)
        q, c = self.view(S.size)
        rows = np.tile(q[S], (S.size, 1))
        rows[np.arange(S.size), np.arange(S.size)] = 0.0
        loo = pb._batch_pmf(rows)
        succ = (pb.batch_tail(loo, need)[:, None]
                + pb.batch_at(loo, need - 1)[:, None] * q[U][None, :])
        delta = c[U][None, :] - c[S][:, None]
        return delta, succ, lambda ix: (m, np.append(np.delete(S, ix[0]), U[ix[1]]))

    def blocks(self, m: int, S: np.ndarray, *, levels=(0, 1, 2)):
        """Yield ``(delta, success, make_state)`` arrays for the move types of ``levels``:
        0 the simple moves, 1 ``merge`` and ``split``, 2 ``swap2``."""
        simple, combined = 0 in levels, 1 in levels
        U = self.unchosen(S)
        n, need = S.size, self.need(m)
        q, c = self.view(n)
        qS, cS, qU, cU = q[S], c[S], q[U], c[U]
        do_merge = combined and m < self.m_max and n >= 2 and U.size
        two_out = (combined or 2 in levels) and n >= 2 and U.size
        jj = _pairs(n) if two_out else np.zeros((0, 2), dtype=int)
        # One batched DP: row 0 is S, rows 1..n leave one out, the rest leave two out.
        F = pb._batch_pmf(_rows(qS, jj))
        full, loo, l2 = F[0], F[1 : 1 + n], F[1 + n :]
        # Moves to n + 1 uploads (local -> worker, split) and to n - 1 (worker -> local,
        # merge): their arrays, pmfs and the re-pricing d_up, d_dn of the workers kept.
        qu, cu, full_up, loo_up, d_up = q, c, full, loo, 0.0
        qd, cd, loo_dn, l2_dn, d_dn = q, c, loo, l2, 0.0
        if self.shared:
            if m >= 1 and U.size and (simple or combined):
                qu, cu = self.view(n + 1)
                Fu = pb._batch_pmf(_rows(qu[S], np.zeros((0, 2), dtype=int)))
                full_up, loo_up = Fu[0], Fu[1 : 1 + n]
                d_up = float(cu[S].sum()) - float(cS.sum())
            if n and m < self.m_max and (simple or do_merge):
                qd, cd = self.view(n - 1)
                Fd = pb._batch_pmf(_rows(qd[S], jj if do_merge else np.zeros((0, 2), int)))
                loo_dn, l2_dn = Fd[1 : 1 + n], Fd[1 + n :]
                d_dn = float(cd[S].sum()) - float(cS.sum())
        if simple and n and U.size:  # swap j -> i
            succ = (pb.batch_tail(loo, need)[:, None]
                    + pb.batch_at(loo, need - 1)[:, None] * qU[None, :])
            delta = cU[None, :] - cS[:, None]
            yield delta, succ, lambda ix: (m, np.append(np.delete(S, ix[0]), U[ix[1]]))
        if simple and m >= 1 and U.size:  # local -> worker i
            succ = pb.batch_tail(full_up, need + 1) + pb.batch_at(full_up, need) * qu[U]
            yield (cu[U] - self.e_loc) + d_up, succ, lambda ix: (m - 1, np.append(S, U[ix[0]]))
        if simple and m < self.m_max and n:  # worker j -> local
            succ = pb.batch_tail(loo_dn, need - 1)
            yield (self.e_loc - cd[S]) + d_dn, succ, lambda ix: (m + 1, np.delete(S, ix[0]))
        if do_merge:  # merge: drop j1, j2; add i and a local
            succ = (pb.batch_tail(l2_dn, need - 1)[:, None]
                    + pb.batch_at(l2_dn, need - 2)[:, None] * qd[U][None, :])
            delta = (self.e_loc + cd[U][None, :] - cd[S][jj].sum(axis=1)[:, None]) + d_dn
            yield delta, succ, lambda ix: (
                m + 1, np.append(np.delete(S, jj[ix[0]]), U[ix[1]]))
        if combined and m >= 1 and n and U.size >= 2:  # split: drop j and a local; add i1, i2
            P = self._pool(U, q=qu, c=cu)
            ii = P[_pairs(P.size)]
            q1, q2 = qu[ii[:, 0]], qu[ii[:, 1]]
            y1, y2 = 1.0 - (1.0 - q1) * (1.0 - q2), q1 * q2
            succ = (pb.batch_tail(loo_up, need + 1)[:, None]
                    + pb.batch_at(loo_up, need)[:, None] * y1[None, :]
                    + pb.batch_at(loo_up, need - 1)[:, None] * y2[None, :])
            delta = (cu[ii].sum(axis=1)[None, :] - cu[S][:, None] - self.e_loc) + d_up
            yield delta, succ, lambda ix: (
                m - 1, np.append(np.delete(S, ix[0]), ii[ix[1]]))
        if 2 in levels and n >= 2 and U.size >= 2:  # double swap: drop j1, j2; add i1, i2
            P = self._pool(U, self.pool // 2, q=q, c=c)
            ii = P[_pairs(P.size)]
            q1, q2 = q[ii[:, 0]], q[ii[:, 1]]
            y1, y2 = 1.0 - (1.0 - q1) * (1.0 - q2), q1 * q2  # P(at least one), P(both)
            succ = (pb.batch_tail(l2, need)[:, None]
                    + pb.batch_at(l2, need - 1)[:, None] * y1[None, :]
                    + pb.batch_at(l2, need - 2)[:, None] * y2[None, :])
            delta = c[ii].sum(axis=1)[None, :] - cS[jj].sum(axis=1)[:, None]
            yield delta, succ, lambda ix: (
                m, np.append(np.delete(S, jj[ix[0]]), ii[ix[1]]))

    def _pool(self, U: np.ndarray, size: int | None = None, *, q=None, c=None) -> np.ndarray:
        size = self.pool if size is None else size
        if U.size <= size:
            return U
        q = self.q if q is None else q
        c = self.cost if c is None else c
        half = size // 2
        cheap = U[np.argsort(c[U], kind="stable")[:half]]
        reliable = U[np.argsort(-q[U], kind="stable")[:half]]
        return np.union1d(cheap, reliable)

    def best_improvement(self, m: int, S: np.ndarray, *, levels=(0, 1, 2)) -> Move | None:
        """The feasible move of ``levels`` (see :meth:`blocks`) with the largest strict
        energy decrease, or ``None``."""
        best = None
        for delta, succ, make in self.blocks(m, S, levels=levels):
            ok = (succ >= self.target) & (delta < -TOL * max(1.0, abs(self.e_loc)))
            if not ok.any():
                continue
            masked = np.where(ok, delta, np.inf)
            ix = np.unravel_index(int(np.argmin(masked)), masked.shape)
            if best is None or masked[ix] < best.delta:
                nm, nS = make(ix)
                best = Move(float(masked[ix]), float(succ[ix]), nm, np.sort(nS))
        return best

    def best_repair(self, m: int, S: np.ndarray, current: float, *,
                    swaps_only: bool = False) -> Move | None:
        """A move towards feasibility: the cheapest feasible one if any exists, else the one
        with the best success gain per joule (free gains first). ``swaps_only`` keeps ``m``."""
        feas, gain_best, score_best = None, None, -np.inf
        if swaps_only:
            block = self.swap_block(m, S)
            moves = [] if block is None else [block]
        else:
            moves = self.blocks(m, S, levels=(0, 1))
        for delta, succ, make in moves:
            ok = succ >= self.target
            if ok.any():
                masked = np.where(ok, delta, np.inf)
                ix = np.unravel_index(int(np.argmin(masked)), masked.shape)
                if feas is None or masked[ix] < feas.delta:
                    nm, nS = make(ix)
                    feas = Move(float(masked[ix]), float(succ[ix]), nm, np.sort(nS))
            gain = succ - current
            score = np.where(gain > TOL, gain / np.maximum(delta, 1e-9), -np.inf)
            # Free gains (no extra energy) come first, the largest gain among them.
            score = np.where((gain > TOL) & (delta <= 0), 1e12 + gain, score)
            ix = np.unravel_index(int(np.argmax(score)), score.shape)
            if score[ix] > score_best:
                score_best = score[ix]
                nm, nS = make(ix)
                gain_best = Move(float(delta[ix]), float(succ[ix]), nm, np.sort(nS))
        return feas if feas is not None else gain_best
