"""Online re-planning: when a worker dies mid-job, re-offload its coded subtask.

The simulator of :mod:`offload.simulate` lets a dead worker's result go missing. Here the
master notices a death ``detect_s`` seconds after it happens and, at that moment ``t``,
re-offloads the lost coded subtask to the option most likely to deliver it by
``T - decode_s``: one more local subtask, if the master's queue finishes it in time (it
then surely does), else the unused worker ``j`` with the largest
``(1 - fail_j) P(t + delay_j + X_j <= T - decode_s)``, ties to the cheaper. A replacement
can die too and is then replaced in turn. Each re-offload costs its energy (``E_loc`` or the
worker's cost); nothing is re-offloaded once no option has a positive chance.

A worker that dies does so at a time uniform over ``[0, its completion time]`` (it would
have returned at the end of that interval), independently of everything else. With
``replan=False`` the draws are those of :func:`offload.simulate.simulate`, so the two
hit rates differ by the re-planning alone. With a shared bandwidth / power budget every
upload, a replacement's included, is timed and charged at the placement's share
(``n = N - m`` links; a replacement is taken not to re-split the band).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coding.validate import check_int, check_real
from offload.model import Instance, check_instance
from offload.placement import Placement
from offload.policies.rng import as_rng

__all__ = ["ReplanResult", "simulate_replan"]


@dataclass(frozen=True)
class ReplanResult:
    """Outcome of :func:`simulate_replan`.

    Attributes
    ----------
    draws : int
        Monte-Carlo draws.
    hit_rate, hit_stderr : float
        Share of draws with ``K`` results in by ``T - decode_s``, and its standard error.
    energy : float
        Mean energy per draw, re-offloads included (J).
    mean_finish : float
        Mean time of the ``K``-th result over the draws that hit (s).
    replans : float
        Mean number of re-offloads per draw.
    """

    draws: int
    hit_rate: float
    hit_stderr: float
    energy: float
    mean_finish: float
    replans: float

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return dict(self.__dict__)


def _draw_worker(instance: Instance, j: int, start: float, rng,
                 n: int) -> tuple[float, float | None]:
    """Completion time of worker ``j`` started at ``start``, and its death time (or None)."""
    delay, rate, _ = instance.completion_params(n)
    done = start + delay[j] + float(instance.straggler.sample(rng, rate[j], (1,))[0])
    if rng.random() < instance.workers.fail[j]:
        return math.inf, start + rng.random() * (done - start)
    return done, None


def _replacement(instance: Instance, t: float, used: set, local_next: float, n: int):
    """The option to re-offload to at time ``t``: ``("local", finish)``, ``("worker", j)``
    or ``None``."""
    T = instance.results_by
    finish = max(t, local_next) + instance.t_loc
    if finish <= T * (1 + 1e-12):
        return "local", finish
    delay, rate, _ = instance.completion_params(n)
    free = np.array([j for j in range(instance.W) if j not in used], dtype=int)
    if not free.size:
        return None
    slack = np.maximum(T - t - delay[free], 0.0)
    p = instance.straggler.cdf(slack, rate[free]) * (1.0 - instance.workers.fail[free])
    if p.max() <= 0:
        return None
    best = free[np.lexsort((instance.model_at(n).cost[free], -p))[0]]
    return "worker", int(best)


def _one_draw(instance: Instance, placement: Placement, rng, replan: bool, detect: float):
    n = len(placement.workers)
    K, mod = instance.K, instance.model_at(n)
    times = list(instance.t_loc * np.arange(1, placement.m + 1))
    local_next = placement.m * instance.t_loc
    energy, replans, used = placement.energy, 0, set(placement.workers)
    deaths = []  # (detected at, ...)
    for j in placement.workers:
        done, died = _draw_worker(instance, j, 0.0, rng, n)
        times.append(done)
        if died is not None:
            deaths.append(died + detect)
    while replan and deaths:
        deaths.sort()
        t = deaths.pop(0)
        if sum(x <= t for x in times) >= K:  # already decodable: nothing to rescue
            break
        choice = _replacement(instance, t, used, local_next, n)
        if choice is None:
            break
        replans += 1
        if choice[0] == "local":
            local_next = choice[1]
            times.append(choice[1])
            energy += instance.e_loc
            continue
        j = choice[1]
        used.add(j)
        energy += float(mod.cost[j])
        done, died = _draw_worker(instance, j, t, rng, n)
        times.append(done)
        if died is not None:
            deaths.append(died + detect)
    kth = sorted(times)[K - 1] if len(times) >= K else math.inf
    return kth, energy, replans


def simulate_replan(instance: Instance, placement: Placement, *, draws: int = 10_000,
                    replan: bool = True, detect_s: float = 0.0, rng=None) -> ReplanResult:
    """Simulate ``placement`` with worker deaths, re-planning them when ``replan``.

    Parameters
    ----------
    instance : Instance
        The problem (its ``workers.fail`` are the death probabilities).
    placement : Placement
        The initial placement (from any policy).
    draws : int
        Monte-Carlo draws.
    replan : bool
        Re-offload a dead worker's subtask (see module docstring); ``False`` lets it go.
    detect_s : float
        Delay between a death and the master noticing it (s).
    rng : numpy.random.Generator or int or None
        Source of randomness.
    """
    check_instance(instance)
    if not isinstance(placement, Placement):
        raise TypeError(
            f"Argument 'placement' must be a Placement, not {type(placement).__name__}.")
    draws = check_int("draws", draws, low=1)
    detect = check_real("detect_s", detect_s, low=0.0)
    rng = as_rng(rng)
    T = instance.results_by
    out = np.array([_one_draw(instance, placement, rng, replan, detect) for _ in range(draws)])
    hit = out[:, 0] <= T * (1 + 1e-12)
    rate = float(hit.mean())
    return ReplanResult(
        draws=draws, hit_rate=rate,
        hit_stderr=math.sqrt(max(rate * (1 - rate), 1e-300) / draws),
        energy=float(out[:, 1].mean()),
        mean_finish=float(out[hit, 0].mean()) if hit.any() else float("nan"),
        replans=float(out[:, 2].mean()))
