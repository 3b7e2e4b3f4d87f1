"""Monte-Carlo simulator of a placement.

Each draw samples the completion time of every offloaded subtask as
``t_i + C/f_i + t_ret_i + X_i`` (transmission over the worker's own link, the compute shift,
the result return, and a straggling tail ``X_i`` drawn from the instance's law, by default
``Exp(rate = mu_i f_i / C)``); a worker dies with probability ``fail_i`` and never returns.
The ``j``-th local subtask finishes at ``j * C / f_m``. The round meets the deadline when at
least ``K`` subtasks finish by ``T - decode_s``, with "by" inclusive in the model and here
alike.
With a shared bandwidth / power budget the ``n = N - m`` uploads each get ``b_n`` and
``P_n`` (:mod:`offload.world`), so ``t_i`` is the transmit time at that share.
Energy is charged per event: ``E_loc`` for each local subtask, ``P_n * t_i`` for each
transmission, plus ``kappa_i f_i**2 C`` per worker when worker energy is on. Energy depends on
cycles and bits, not on the random waiting, so the realized energy equals the model's; the
simulator sums it event by event so that a mismatch with the model shows up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coding.validate import check_int
from offload.model import Instance, check_instance
from offload.placement import Placement
from offload.policies.rng import as_rng

__all__ = ["SimResult", "simulate"]


@dataclass(frozen=True)
class SimResult:
    """Outcome of :func:`simulate`.

    Attributes
    ----------
    draws : int
        Number of Monte-Carlo draws.
    hit_rate : float
        Share of draws in which ``K`` results were in by the deadline.
    hit_stderr : float
        Binomial standard error of ``hit_rate``.
    energy : float
        Mean realized energy per draw (J).
    model_success : float
        The model's ``P(m + X_S >= K)``.
    model_energy : float
        The model's energy (J).
    mean_finish : float
        Mean time at which the ``K``-th result arrived, over the draws that met ``T`` (s);
        ``nan`` when none did.
    """

    draws: int
    hit_rate: float
    hit_stderr: float
    energy: float
    model_success: float
    model_energy: float
    mean_finish: float

    def agrees(self, points: float = 0.02) -> bool:
        """Whether the hit rate is within ``points`` of the model and the energy matches."""
        return (abs(self.hit_rate - self.model_success) <= points
                and math.isclose(self.energy, self.model_energy, rel_tol=1e-9))

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return dict(self.__dict__)


def simulate(instance: Instance, placement: Placement, *, draws: int = 10_000,
             rng=None) -> SimResult:
    """Simulate ``placement`` on ``instance`` ``draws`` times.

    Parameters
    ----------
    instance : Instance
        The problem.
    placement : Placement
        A placement of this instance (from any policy).
    draws : int
        Monte-Carlo draws.
    rng : numpy.random.Generator or int or None
        Source of randomness.
    """
    check_instance(instance)
    if not isinstance(placement, Placement):
        raise TypeError(
            f"Argument 'placement' must be a Placement, not {type(placement).__name__}."
        )
    draws = check_int("draws", draws, low=1)
    check_int("placement.m", placement.m, low=instance.m_min, high=instance.m_max,
              low_name="m_min", high_name="m_max")
    ids = np.asarray(placement.workers, dtype=int)
    check_int("len(placement.workers)", ids.size, low=instance.N - placement.m,
              high=instance.N - placement.m, low_name="N - m", high_name="N - m")
    rng = as_rng(rng)
    mod, T, K = instance.model_at(ids.size), instance.results_by, instance.K
    delay, rate, _ = instance.completion_params(ids.size)
    size = (draws, ids.size)
    times = delay[ids][None, :] + instance.straggler.sample(rng, rate[ids], size)
    fail = instance.workers.fail[ids]
    if fail.any():
        times = np.where(rng.random(size) < fail[None, :], np.inf, times)
    local = instance.t_loc * np.arange(1, placement.m + 1)
    all_t = np.concatenate([np.broadcast_to(local, (draws, placement.m)), times], axis=1)
    all_t.sort(axis=1)
    kth = all_t[:, K - 1]
    hit = kth <= T
    energy = placement.m * instance.e_loc + mod.e_tx[ids].sum()
    if instance.worker_energy:
        energy += mod.e_work[ids].sum() + mod.e_ret[ids].sum()
    rate_hit = float(hit.mean())
    return SimResult(
        draws=draws,
        hit_rate=rate_hit,
        hit_stderr=math.sqrt(max(rate_hit * (1 - rate_hit), 1e-300) / draws),
        energy=float(energy),
        model_success=placement.success,
        model_energy=placement.energy,
        mean_finish=float(kth[hit].mean()) if hit.any() else float("nan"),
    )
