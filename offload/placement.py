"""Placements and their evaluation under the model.

A placement runs ``m`` coded subtasks locally and one coded subtask on each worker of a set
``S`` with ``|S| = N - m``. Its energy is ``m * E_loc + sum_{i in S} cost_i`` and it meets the
latency budget when ``P(m + X_S >= K) >= 1 - eps`` (or the deterministic variant, see
:class:`offload.model.Budget`). ``cost_i`` and ``p_i`` are those of the per-worker model at
``n = N - m`` parallel uploads, :meth:`offload.model.Instance.model_at` (the same for every
``n`` unless the instance has a shared bandwidth / power budget); every policy evaluates
its placements here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coding.validate import check_int
from offload import pb
from offload.errors import InstanceError
from offload.model import Instance

__all__ = ["Placement", "evaluate", "search_view", "most_reliable"]


@dataclass(frozen=True)
class Placement:
    """Where the ``N`` coded subtasks run, with the model's predictions.

    Attributes
    ----------
    m : int
        Coded subtasks run locally on the master, one after another (subtask ``j`` of them
        finishes at ``j * C / f_m``).
    workers : tuple of int
        Ids (indices into the instance's workers) of the ``N - m`` chosen workers, one coded
        subtask each, in increasing order.
    energy : float
        Predicted energy ``m * E_loc + sum of the chosen workers' cost`` (J).
    success : float
        Predicted ``P(m + X_S >= K)``: probability that ``K`` results are in by ``T``.
    feasible : bool
        Whether the placement meets the latency budget. A policy returns ``feasible=False``
        (with its most reliable attempt) when the instance itself is infeasible.
    policy : str
        Name of the policy that produced it ("" when built by hand).
    """

    m: int
    workers: tuple[int, ...]
    energy: float
    success: float
    feasible: bool
    policy: str = ""

    @property
    def n_offloaded(self) -> int:
        """Number of offloaded subtasks, ``N - m``."""
        return len(self.workers)

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return {"policy": self.policy, "m": self.m, "workers": list(self.workers),
                "energy_J": self.energy, "success": self.success, "feasible": self.feasible}

    def with_policy(self, name: str) -> Placement:
        """Return a copy labelled with policy ``name``."""
        return Placement(self.m, self.workers, self.energy, self.success, self.feasible, name)


def search_view(instance: Instance, n: int | None = None) -> tuple[np.ndarray, int]:
    """Per-worker probabilities and threshold offset used to test feasibility.

    Returns ``(q, s)`` such that a placement ``(m, S)`` with ``|S| = n = N - m`` meets the
    budget exactly when ``P(sum_{i in S} Bernoulli(q_i) >= K - m + s) >= 1 - eps``. For the
    probabilistic budget ``q = p`` and ``s = 0``; for the deterministic budget ``q`` is 1 for
    workers whose mean completion time meets ``T`` (0 otherwise) and ``s`` is the number of
    tolerated stragglers. ``q`` is taken from :meth:`~offload.model.Instance.model_at`
    ``(n)``, or from the unshared :attr:`~offload.model.Instance.model` when ``n`` is
    ``None`` (the same arrays without a shared budget).
    """
    mod = instance.model if n is None else instance.model_at(n)
    if instance.budget.stragglers is None:
        return mod.p, 0
    ok = mod.mean_time <= instance.results_by * (1 + 1e-12)
    return ok.astype(float), int(instance.budget.stragglers)


def evaluate(instance: Instance, m: int, workers, policy: str = "") -> Placement:
    """Evaluate the placement of ``m`` local subtasks and the given workers.

    Parameters
    ----------
    instance : Instance
        The problem.
    m : int
        Local subtasks, ``m_min <= m <= m_max``.
    workers : iterable of int
        Distinct worker ids, ``N - m`` of them.
    policy : str
        Label stored in the result.

    Returns
    -------
    Placement
    """
    m = check_int("m", m, low=instance.m_min, high=instance.m_max, low_name="m_min",
                  high_name="m_max")
    ids = sorted(int(check_int("workers[]", w, low=0, high=instance.W - 1)) for w in workers)
    if len(set(ids)) != len(ids):
        raise InstanceError("Argument 'workers' must list distinct worker ids.")
    if len(ids) != instance.N - m:
        raise InstanceError(
            f"Argument 'workers' must list N - m={instance.N - m} workers, not {len(ids)}."
        )
    return _evaluate(instance, m, np.array(ids, dtype=int), policy)


def _evaluate(instance: Instance, m: int, ids: np.ndarray, policy: str) -> Placement:
    ids = np.sort(np.asarray(ids, dtype=int))
    mod = instance.model_at(ids.size)
    energy = m * instance.e_loc + float(mod.cost[ids].sum())
    success = pb.tail(mod.p[ids], instance.K - m)
    q, s = search_view(instance, ids.size)
    feasible = bool(pb.meets(pb.tail(q[ids], instance.K - m + s), instance.budget.eps))
    return Placement(int(m), tuple(int(i) for i in ids), energy, success, feasible, policy)


def most_reliable(instance: Instance, policy: str = "") -> Placement:
    """The placement with the highest success probability.

    It runs ``m_max`` subtasks locally (a local subtask always meets ``T``) and sends the rest
    to the most reliable workers. The Poisson-binomial tail increases in every ``p_i``, so no
    placement is more reliable: the instance is feasible exactly when this one is. (With a
    shared budget, fewer uploads get larger shares, so every ``p_i`` is largest at
    ``n = N - m_max`` too.)
    """
    m = instance.m_max
    n = instance.N - m
    q, _ = search_view(instance, n)
    order = np.lexsort((instance.model_at(n).cost, -q))  # most reliable first, then cheapest
    return _evaluate(instance, m, order[: instance.N - m], policy)
