"""A sample-average lower bound on the optimal energy, by mixed-integer programming.

Where :class:`~offload.policies.Exact` runs out of time, this gives a bound to measure a
heuristic against. Draw ``S`` scenarios ``b_s`` of which workers return by ``T``
(``b_si ~ Bernoulli(p_i)``) and solve the chance-constrained sample-average problem
(Luedtke and Ahmed, "A sample approximation approach for optimization with probabilistic
constraints", SIAM J. Optim. 2008) with ``scipy.optimize.milp``::

    minimise    m E_loc + sum_i c_i x_i
    subject to  m + sum_i x_i = N,                 m_min <= m <= m_max integer, x binary
                m + sum_i b_si x_i >= K z_s        for every scenario s, z binary
                sum_s z_s >= S - k

A scenario with ``z_s = 0`` may miss. The optimal placement ``x*`` misses in each scenario
with probability at most ``eps``, so it is feasible here whenever it misses in at most ``k``
scenarios; with ``k`` the least integer with ``BinomCDF(k; S, eps) >= confidence`` this
holds with probability at least ``confidence``, and then the sample-average optimum (and
the solver's dual bound, if it stops early) is at most the true optimum. The bound is
statistical: it holds with probability ``confidence`` over the scenario draw.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from coding.validate import check_int, check_real
from offload.model import Instance, check_instance
from offload.placement import most_reliable
from offload.policies._rng import as_rng

__all__ = ["SAABound", "saa_bound"]


@dataclass(frozen=True)
class SAABound:
    """Outcome of :func:`saa_bound`.

    Attributes
    ----------
    value : float
        Lower bound on the optimal energy (J), valid with probability ``confidence``;
        ``nan`` when the instance is infeasible or the solver found no bound.
    confidence : float
        Probability over the scenario draw that ``value`` is a lower bound.
    scenarios, allowed_misses : int
        ``S`` and ``k`` of the module docstring.
    solved : bool
        Whether the MILP was solved to optimality (else ``value`` is its dual bound).
    elapsed_s : float
        Wall time, scenario draw included (s).
    """

    value: float
    confidence: float
    scenarios: int
    allowed_misses: int
    solved: bool
    elapsed_s: float


def allowed_misses(scenarios: int, eps: float, confidence: float) -> int:
    """Least ``k`` with ``P(Binomial(scenarios, eps) <= k) >= confidence``."""
    from scipy.stats import binom

    return int(binom.ppf(confidence, scenarios, eps))


def saa_bound(instance: Instance, *, scenarios: int = 500, confidence: float = 0.99,
              time_limit: float = 30.0, rng=None) -> SAABound:
    """Lower-bound the optimal energy of ``instance`` (see module docstring).

    Parameters
    ----------
    instance : Instance
        The problem (probabilistic budget; with ``stragglers`` set the scenarios are
        deterministic and the bound is exact).
    scenarios : int
        Number ``S`` of sampled scenarios.
    confidence : float
        Probability that the bound holds, in ``(0, 1)``.
    time_limit : float
        Seconds for the MILP solver; after it the solver's dual bound is returned.
    rng : numpy.random.Generator or int or None
        Source of the scenarios.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, hstack, vstack

    check_instance(instance)
    S = check_int("scenarios", scenarios, low=1)
    confidence = check_real("confidence", confidence, low=0.0, high=1.0, low_open=True,
                            high_open=True)
    check_real("time_limit", time_limit, low=0.0, low_open=True)
    rng = as_rng(rng)
    t0 = time.perf_counter()
    if not most_reliable(instance).feasible:
        return SAABound(float("nan"), 1.0, S, 0, True, time.perf_counter() - t0)
    W, N, K = instance.W, instance.N, instance.K
    if instance.budget.stragglers is None:
        b = (rng.random((S, W)) < instance.model.p[None, :]).astype(float)
        k = allowed_misses(S, instance.budget.eps, confidence)
        need = K
    else:  # mean-time view: every scenario is the same, the MILP is the exact problem
        b = np.tile(instance.worker_meets_deadline().astype(float), (S, 1))
        k, confidence, need = 0, 1.0, K + int(instance.budget.stragglers)
    # Variables: x (W), m (1), z (S).
    c = np.concatenate([instance.model.cost, [instance.e_loc], np.zeros(S)])
    ones_m = csr_matrix(np.ones((S, 1)))
    rows = hstack([csr_matrix(b), ones_m, csr_matrix(np.diag(np.full(S, -float(need))))])
    count = csr_matrix(np.concatenate([np.ones(W + 1), np.zeros(S)])[None, :])
    cover = csr_matrix(np.concatenate([np.zeros(W + 1), np.ones(S)])[None, :])
    A = vstack([count, rows, cover]).tocsr()
    lo = np.concatenate([[N], np.zeros(S), [S - k]])
    hi = np.concatenate([[N], np.full(S, np.inf), [S]])
    lb = np.concatenate([np.zeros(W), [instance.m_min], np.zeros(S)])
    ub = np.concatenate([np.ones(W), [instance.m_max], np.ones(S)])
    res = milp(c, constraints=LinearConstraint(A, lo, hi), integrality=np.ones(c.size),
               bounds=Bounds(lb, ub), options={"time_limit": float(time_limit)})
    solved = res.status == 0
    value = float(res.fun) if solved else float(getattr(res, "mip_dual_bound", math.nan))
    if value is None or not math.isfinite(value):
        value = float("nan")
    return SAABound(value, float(confidence), S, int(k), bool(solved), time.perf_counter() - t0)
