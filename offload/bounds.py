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

With a shared bandwidth / power budget ``c_i`` and ``p_i`` depend on ``n = N - m``: one MILP
per ``m`` (``m`` fixed, ``c_i`` and ``b_si`` from the model at ``N - m``, the scenarios drawn
from one set of uniforms) and the least of their values is the bound. The optimum sits at
one ``m``, whose MILP it is feasible for with probability ``confidence``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from coding.validate import check_int, check_real
from offload.model import Instance, check_instance
from offload.placement import most_reliable
from offload.policies.rng import as_rng

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
    u = rng.random((S, W)) if instance.budget.stragglers is None else None
    if u is not None:
        k = allowed_misses(S, instance.budget.eps, confidence)
        need = K
    else:  # mean-time view: every scenario is the same, the MILP is the exact problem
        k, confidence, need = 0, 1.0, K + int(instance.budget.stragglers)
    if not instance.share.active:
        b = (u < instance.model.p[None, :]) if u is not None else np.tile(
            instance.worker_meets_deadline(), (S, 1))
        value, solved = _milp(instance, instance.model.cost, b.astype(float), need, k,
                              (instance.m_min, instance.m_max), time_limit)
        if math.isinf(value):  # an infeasible sample: no bound
            value, solved = float("nan"), False
        return SAABound(value, float(confidence), S, int(k), solved, time.perf_counter() - t0)
    value, solved = math.inf, True
    for m in range(instance.m_min, instance.m_max + 1):
        mod = instance.model_at(N - m)
        b = (u < mod.p[None, :]) if u is not None else np.tile(
            instance.worker_meets_deadline(N - m), (S, 1))
        left = max(time_limit - (time.perf_counter() - t0), 1e-3)
        v, ok = _milp(instance, mod.cost, b.astype(float), need, k, (m, m), left)
        if math.isnan(v):  # this m has no bound, so neither has the instance
            value, solved = math.nan, False
            break
        value, solved = min(value, v), solved and ok
    if not math.isfinite(value):
        value, solved = float("nan"), False
    return SAABound(value, float(confidence), S, int(k), solved, time.perf_counter() - t0)


def _milp(instance: Instance, cost: np.ndarray, b: np.ndarray, need: int, k: int,
          m_range: tuple[int, int], time_limit: float) -> tuple[float, bool]:
    """Value (or dual bound) of the sample-average MILP and whether it was solved; ``inf``
    when the MILP is infeasible, ``nan`` when the solver found no bound."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, hstack, vstack

    W, N = instance.W, instance.N
    S = b.shape[0]
    # Variables: x (W), m (1), z (S).
    c = np.concatenate([cost, [instance.e_loc], np.zeros(S)])
    ones_m = csr_matrix(np.ones((S, 1)))
    rows = hstack([csr_matrix(b), ones_m, csr_matrix(np.diag(np.full(S, -float(need))))])
    count = csr_matrix(np.concatenate([np.ones(W + 1), np.zeros(S)])[None, :])
    cover = csr_matrix(np.concatenate([np.zeros(W + 1), np.ones(S)])[None, :])
    A = vstack([count, rows, cover]).tocsr()
    lo = np.concatenate([[N], np.zeros(S), [S - k]])
    hi = np.concatenate([[N], np.full(S, np.inf), [S]])
    lb = np.concatenate([np.zeros(W), [m_range[0]], np.zeros(S)])
    ub = np.concatenate([np.ones(W), [m_range[1]], np.ones(S)])
    res = milp(c, constraints=LinearConstraint(A, lo, hi), integrality=np.ones(c.size),
               bounds=Bounds(lb, ub), options={"time_limit": float(time_limit)})
    if res.status == 2:  # infeasible: no placement at these m meets the sample
        return math.inf, True
    solved = res.status == 0
    value = res.fun if solved else getattr(res, "mip_dual_bound", math.nan)
    if value is None or not math.isfinite(value):
        value = float("nan")
    return float(value), bool(solved)
