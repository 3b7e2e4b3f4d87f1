"""Checks that what colluding workers see is independent of the secret.

A scheme is ``t``-private when the joint distribution of any ``t`` workers' inputs is the
same for every secret. Two checks, both on small primes and small shapes:

* :func:`exact_independence` enumerates every value of the scheme's randomness (``p**r``
  cases) and compares the two view distributions exactly; the total-variation distance is
  0 exactly when the views are identically distributed.
* :func:`independence_test` samples views for two secrets and runs a chi-squared test of
  homogeneity on the joint view (each view vector is one cell of ``p**V``). Under
  independence the false-alarm rate is ``alpha``; a leak of the kind linear schemes have
  (``t + 1`` shares pin the secret to a coset) moves almost all mass between cells and is
  found with a few hundred draws per cell.

Both take a *view function* so the same tests serve the codes here, the exchange layer and
the secure matmul issues.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .validate import check_int, check_prime, check_real

__all__ = ["IndependenceResult", "exact_independence", "independence_test"]

#: Largest joint view alphabet ``p**V`` the tests accept.
MAX_CELLS = 1 << 16


@dataclass(frozen=True)
class IndependenceResult:
    """Outcome of an independence check.

    Attributes
    ----------
    statistic : float
        Chi-squared statistic (sampled test) or total-variation distance (exact).
    p_value : float
        Probability of a statistic at least this large if the views are independent of the
        secret (1.0 or 0.0 for the exact check).
    tv_distance : float
        Total-variation distance between the two (empirical or exact) view distributions.
    passed : bool
        True when no dependence was detected.
    method : str
        ``"chi2"`` or ``"exact"``.
    cells : int
        Size of the joint view alphabet, ``p**V``.
    """

    statistic: float
    p_value: float
    tv_distance: float
    passed: bool
    method: str
    cells: int


def _cell_codes(views: np.ndarray, p: int, name: str) -> tuple[np.ndarray, int]:
    """Encode each row of ``views`` (draws, V) in base p as one integer cell."""
    views = np.asarray(views)
    if views.ndim != 2:
        raise ValueError(f"The views from {name!r} must be 2-D (draws, V), not {views.shape}.")
    if not np.issubdtype(views.dtype, np.integer) or (
        views.size and (views.min() < 0 or views.max() >= p)
    ):
        raise ValueError(f"The views from {name!r} must be integers in [0, p={p}).")
    cells = p ** views.shape[1]
    if cells > MAX_CELLS:
        raise ValueError(
            f"The joint view has p**V = {p}**{views.shape[1]} cells, more than {MAX_CELLS}: "
            "use a smaller prime, shape or t."
        )
    weights = p ** np.arange(views.shape[1], dtype=np.int64)
    return views.astype(np.int64) @ weights, cells


def _chi2_sf(x: float, dof: int) -> float:
    """Chi-squared survival function, ``Q(dof/2, x/2)`` (regularized upper gamma).

    Series below ``a + 1``, Lentz continued fraction above (Numerical Recipes, 6.2); kept
    here so ``coding/`` needs only numpy and galois.
    """
    a, z = dof / 2.0, x / 2.0
    if z <= 0:
        return 1.0
    log_pre = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= z / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_pre))
    tiny = 1e-300
    b = z + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_pre) * h)


def independence_test(
    sample_fn: Callable[[object, np.random.Generator, int], np.ndarray],
    secret_a: object,
    secret_b: object,
    *,
    p: int,
    draws: int,
    rng: np.random.Generator,
    alpha: float = 1e-3,
) -> IndependenceResult:
    """Two-sample chi-squared test that the colluders' view does not depend on the secret.

    Parameters
    ----------
    sample_fn : callable
        ``sample_fn(secret, rng, draws) -> (draws, V)`` integer array: ``draws`` independent
        views (the ``V`` field elements the colluders hold) for one secret.
    secret_a, secret_b : object
        Two secrets to compare; passed to ``sample_fn`` unchanged.
    p : int
        The prime; views have entries in ``[0, p)`` and ``p**V <= 65536``.
    draws : int
        Views per secret, at least 10. Use ``draws >= 5 * p**V`` so the chi-squared
        approximation holds.
    rng : numpy.random.Generator
        Source of the scheme's randomness, for reproducibility.
    alpha : float
        False-alarm rate: the test fails a truly private scheme with probability ``alpha``.

    Returns
    -------
    IndependenceResult
        ``passed`` is ``p_value >= alpha``.
    """
    p = check_prime("p", p)
    draws = check_int("draws", draws, low=10)
    alpha = check_real("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"Argument 'rng' must be a numpy Generator, not {rng!r}.")
    ca, cells = _cell_codes(sample_fn(secret_a, rng, draws), p, "sample_fn")
    cb, _ = _cell_codes(sample_fn(secret_b, rng, draws), p, "sample_fn")
    na = np.bincount(ca, minlength=cells).astype(np.float64)
    nb = np.bincount(cb, minlength=cells).astype(np.float64)
    keep = (na + nb) > 0
    na, nb = na[keep], nb[keep]
    total = na + nb
    ea = total * (na.sum() / total.sum())
    eb = total * (nb.sum() / total.sum())
    stat = float(np.sum((na - ea) ** 2 / ea) + np.sum((nb - eb) ** 2 / eb))
    dof = max(1, int(keep.sum()) - 1)
    p_value = _chi2_sf(stat, dof) if keep.sum() > 1 else 1.0
    tv = 0.5 * float(np.abs(na / na.sum() - nb / nb.sum()).sum())
    return IndependenceResult(stat, p_value, tv, p_value >= alpha, "chi2", cells)


def exact_independence(
    view_fn: Callable[[object, np.ndarray], np.ndarray],
    secret_a: object,
    secret_b: object,
    *,
    p: int,
    n_random: int,
) -> IndependenceResult:
    """Compare the colluders' view distributions exactly by enumerating all randomness.

    Parameters
    ----------
    view_fn : callable
        ``view_fn(secret, randomness) -> (cases, V)``: the deterministic views for each row
        of ``randomness``, a ``(cases, n_random)`` int64 array over GF(p) holding every
        randomness vector once (all equally likely). Vectorized so codes can encode all
        cases in one call (for example, one column per case).
    secret_a, secret_b : object
        The two secrets.
    p : int
        The prime.
    n_random : int
        Number of random field elements; ``p**n_random <= 65536`` cases are enumerated.

    Returns
    -------
    IndependenceResult
        ``statistic`` and ``tv_distance`` are the exact total-variation distance;
        ``passed`` is ``tv_distance == 0``.
    """
    p = check_prime("p", p)
    n_random = check_int("n_random", n_random, low=0)
    if p**n_random > MAX_CELLS:
        raise ValueError(
            f"Argument 'n_random' makes p**n_random = {p}**{n_random} cases, more than {MAX_CELLS}."
        )

    randomness = np.array(list(itertools.product(range(p), repeat=n_random)), dtype=np.int64)
    randomness = randomness.reshape(p**n_random, n_random)

    def distribution(secret):
        views = np.asarray(view_fn(secret, randomness.copy()))
        if views.ndim != 2 or views.shape[0] != randomness.shape[0]:
            raise ValueError(
                f"The views from 'view_fn' must have shape ({randomness.shape[0]}, V), "
                f"not {views.shape}."
            )
        codes, cells = _cell_codes(views, p, "view_fn")
        return np.bincount(codes, minlength=cells), cells

    da, cells = distribution(secret_a)
    db, _ = distribution(secret_b)
    tv = 0.5 * float(np.abs(da - db).sum()) / float(da.sum())
    return IndependenceResult(tv, 1.0 if tv == 0 else 0.0, tv, tv == 0, "exact", cells)
