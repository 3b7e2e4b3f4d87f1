"""Poisson-binomial distribution by an exact dynamic program.

``X = B_1 + ... + B_n`` with independent ``B_i ~ Bernoulli(p_i)``. The pmf follows from the
recurrence ``f_j(k) = f_{j-1}(k) (1 - p_j) + f_{j-1}(k - 1) p_j`` in ``O(n^2)`` operations
(see e.g. Chen and Liu, "Statistical applications of the Poisson-binomial and conditional
Bernoulli distributions", 1997). :func:`batch_pmf` runs the same recurrence on many
probability vectors at once; a zero entry acts as "absent", which gives leave-one-out and
leave-two-out distributions without deconvolution (numerically unstable when p is near 1).
"""

from __future__ import annotations

import numpy as np

__all__ = ["pmf", "batch_pmf", "tail", "batch_tail", "meets"]

# Feasibility tolerance on probabilities: sums of many float products differ in the last
# bits depending on the order of the workers, and a placement must not flip between
# feasible and infeasible because of that.
PROB_TOL = 1e-12


def pmf(p) -> np.ndarray:
    """Return the pmf of ``X`` (length ``n + 1``) for success probabilities ``p``.

    Parameters
    ----------
    p : array_like
        Probabilities in ``[0, 1]``, shape ``(n,)``.
    """
    p = np.asarray(p, dtype=float).reshape(-1)
    return batch_pmf(p[None, :])[0]


def batch_pmf(P) -> np.ndarray:
    """Return the pmfs for each row of ``P`` (shape ``(b, n)``) as an array ``(b, n + 1)``."""
    P = np.asarray(P, dtype=float)
    if P.ndim != 2:
        raise ValueError(f"Argument 'P' must have 2 dimensions, not shape {P.shape}.")
    if P.size and (np.any(P < 0) or np.any(P > 1)):
        raise ValueError("Argument 'P' must hold probabilities in [0, 1].")
    return _batch_pmf(P)


def _batch_pmf(P: np.ndarray) -> np.ndarray:
    """:func:`batch_pmf` without argument checks, for the policies' inner loops."""
    b, n = P.shape
    f = np.zeros((b, n + 1))
    f[:, 0] = 1.0
    Q = np.ascontiguousarray(P.T[:, :, None])
    R = 1.0 - Q
    for j in range(n):
        moved = f[:, : j + 1] * Q[j]  # mass that gains one success, taken before scaling
        f[:, : j + 2] *= R[j]
        f[:, 1 : j + 2] += moved
    return f


def tail(p, k: int) -> float:
    """Return ``P(X >= k)`` for success probabilities ``p`` (1 when ``k <= 0``)."""
    k = int(k)
    if k <= 0:
        return 1.0
    f = pmf(p)
    if k >= f.size:
        return 0.0
    return float(min(1.0, f[k:].sum()))


def batch_tail(F: np.ndarray, k: int) -> np.ndarray:
    """Return ``P(X >= k)`` for each row pmf of ``F`` (shape ``(b, n + 1)``)."""
    F = np.asarray(F, dtype=float)
    if k <= 0:
        return np.ones(F.shape[:-1])
    if k >= F.shape[-1]:
        return np.zeros(F.shape[:-1])
    return np.minimum(1.0, F[..., k:].sum(axis=-1))


def batch_at(F: np.ndarray, k: int) -> np.ndarray:
    """Return ``P(X = k)`` for each row pmf of ``F`` (0 outside the support)."""
    F = np.asarray(F, dtype=float)
    if k < 0 or k >= F.shape[-1]:
        return np.zeros(F.shape[:-1])
    return F[..., k]


def meets(prob, eps: float):
    """Whether success probability ``prob`` meets the budget ``prob >= 1 - eps``."""
    return np.asarray(prob) >= 1.0 - eps - PROB_TOL
