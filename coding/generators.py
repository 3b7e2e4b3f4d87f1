"""Generator matrices for systematic MDS codes, and the measurement that ranks them.

A systematic generator is an ``n x k`` matrix whose first ``k`` rows are the identity and
whose last ``n - k`` rows (the *parity block*) mix the message rows. Decoding from a set of
``k`` surviving rows inverts the ``k x k`` submatrix on those rows, so a real code is only
as good as its worst-conditioned ``k x k`` submatrix: decoding multiplies the rounding
error of the stored shards by up to that condition number.

Over the reals the textbook choices (Vandermonde on equally spaced or integer points,
Cauchy matrices) are MDS in exact arithmetic but lose 5 to 27 digits at ``n = 32``.
``scripts/choose_generator.py`` measures the candidates below on every ``(n, k)`` with
``n <= 32``; :func:`real_generator` returns the winner, a seeded random orthogonal parity
block with unit rows (:data:`REAL_KIND`). Random codes have a heavy tail: a few of the
sampled patterns reach a condition number of 1e6 to 1e7 (a 1/t tail: near-singular random
minors of every size, not only small entries).

The ``"harmonic"`` candidate (a real harmonic frame, :func:`_harmonic`) has no random tail:
its bad patterns are the ones that leave a long arc of angles empty. Measured worst
conditions: every pattern, n <= 12: 423 (orthogonal: 4.5e4); 500 sampled patterns per
``(n, k)``, n <= 32, on three independent sample sets: 1.95e6 / 2.23e6 / 3.2e6 (2000
patterns) against 7.5e6 / 1.43e6 / 3.0e7 for orthogonal. Its bulk is worse, though (median
and 99th-percentile conditions 5 to 20 times higher at mid k, n >= 26), so a pair's worst
sampled case can be up to ~100 times the orthogonal code's; ``choose_generator.py`` ranks it
second on its own sample set, and :data:`REAL_KIND` stays ``"orthogonal"``.

Over GF(p) the generator is the systematic Reed--Solomon matrix: a Vandermonde matrix on
``n`` distinct points times the inverse of its top ``k x k`` block.
"""

from __future__ import annotations

from math import gcd

import numpy as np

from .validate import check_int

__all__ = [
    "CANDIDATES",
    "REAL_KIND",
    "erasure_patterns",
    "gfp_generator",
    "real_generator",
    "submatrix_conditions",
    "worst_condition",
]

#: The real generator kind that ``scripts/choose_generator.py`` selected.
REAL_KIND = "orthogonal"

#: How many seeds the ``*-best`` kinds try; each seed is scored on :data:`_SELECT_PATTERNS`.
BEST_OF = 4
_SELECT_PATTERNS = 200


def _systematic(G: np.ndarray, k: int) -> np.ndarray:
    """Return ``G @ inv(G[:k])`` so the first k rows are the identity."""
    top = G[:k]
    out = np.linalg.solve(top.T, G.T).T
    out[:k] = np.eye(k)
    return out


def _unit_rows(P: np.ndarray) -> np.ndarray:
    # Scaling a parity row scales its shard and its rounding error alike, so it cannot
    # change the decoded error; unit rows just make the condition number measure it.
    return P / np.linalg.norm(P, axis=1, keepdims=True)


def _vander_equi(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    x = np.linspace(-1.0, 1.0, n)
    return _systematic(np.vander(x, k, increasing=True), k)


def _vander_int(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    x = np.arange(1, n + 1, dtype=np.float64)
    return _systematic(np.vander(x, k, increasing=True), k)


def _cauchy(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    # Parity rows 1/(x_i - y_j) on interleaved points, so every square minor is nonzero.
    y = np.arange(k, dtype=np.float64)
    x = np.arange(n - k, dtype=np.float64) + 0.5
    return np.vstack([np.eye(k), 1.0 / (x[:, None] - y[None, :])])


def _cheb_vander(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    # Chebyshev polynomials T_0..T_{k-1} on the n Chebyshev points (Fahim and Cadambe,
    # "Numerically stable polynomially coded computing", 2019).
    x = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    return _systematic(np.polynomial.chebyshev.chebvander(x, k - 1), k)


def _gaussian(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    P = rng.standard_normal((n - k, k))
    return np.vstack([np.eye(k), _unit_rows(P)])


def _orthogonal(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    # Parity block cut from a Haar-random orthogonal matrix: rows (or columns) orthonormal,
    # so losing all k systematic rows leaves a perfectly conditioned block.
    m = max(n - k, k)
    Q, R = np.linalg.qr(rng.standard_normal((m, m)))
    Q *= np.sign(np.diag(R))
    return np.vstack([np.eye(k), _unit_rows(Q[: n - k, :k])])


def _golden_order(m: int) -> np.ndarray:
    # Visit 0..m-1 with the stride coprime to m nearest to m / phi**2: by the three-distance
    # theorem every run of consecutive labels is then spread around the circle, so losing a
    # contiguous window of shards does not lose an arc of angles.
    if m <= 2:
        return np.arange(m)
    strides = [s for s in range(1, m) if gcd(s, m) == 1]
    stride = min(strides, key=lambda s: abs(s / m - 0.3819660112501051))
    return (np.arange(m) * stride) % m


def _trig_basis(theta: np.ndarray, k: int) -> np.ndarray:
    # k real trigonometric functions any k distinct angles of which give a nonsingular
    # matrix: odd k, 1 and cos/sin(j t) for j < k/2 (at most k - 1 roots on the circle);
    # even k, cos/sin((j + 1/2) t), antiperiodic, so again at most k - 1 roots in [0, 2 pi).
    if k % 2:
        cols = [np.full(theta.shape, np.sqrt(0.5))]
        freqs = np.arange(1, (k - 1) // 2 + 1, dtype=np.float64)
    else:
        cols = []
        freqs = np.arange(k // 2) + 0.5
    for f in freqs:
        cols += [np.cos(f * theta), np.sin(f * theta)]
    return np.stack(cols, axis=1)


def _harmonic(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    # Real harmonic frame (the real form of the unit-circle Vandermonde code of Ramamoorthy
    # and Tang, "Numerically stable coded matrix computations via circulant and rotation
    # matrix embeddings", 2022). Systematic shards sit on k equally spaced angles, where the
    # basis is orthogonal (so making the code systematic costs no conditioning and every
    # row has unit norm); parity shards on n - k equally spaced angles offset by half the
    # finest spacing of the two grids, so no angle repeats and the code is MDS.
    m = n - k
    g = gcd(k, m)
    sys_theta = 2 * np.pi * np.arange(k) / k
    par_theta = 2 * np.pi * (np.arange(m) / m + g / (2 * k * m))
    theta = np.concatenate([sys_theta[_golden_order(k)], par_theta[_golden_order(m)]])
    F = _trig_basis(theta, k)
    G = F @ F[:k].T * (2.0 / k)  # F[:k] is sqrt(k/2) times an orthogonal matrix
    G[:k] = np.eye(k)
    return np.vstack([G[:k], _unit_rows(G[k:])])


_BASE = {
    "vander-equi": _vander_equi,
    "vander-int": _vander_int,
    "cauchy": _cauchy,
    "cheb-vander": _cheb_vander,
    "gaussian": _gaussian,
    "orthogonal": _orthogonal,
    "harmonic": _harmonic,
}

#: Every candidate kind that :func:`real_generator` can build.
CANDIDATES = (*_BASE, "gaussian-best", "orthogonal-best")


def erasure_patterns(
    n: int, k: int, *, count: int = 500, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Return surviving-index patterns: every contiguous window plus random k-subsets.

    Parameters
    ----------
    n, k : int
        Code length and dimension.
    count : int
        Minimum number of patterns. When ``C(n, k) <= count`` every k-subset is returned.
    rng : numpy.random.Generator, optional
        Source of the random subsets (default: seeded with 0).

    Returns
    -------
    numpy.ndarray
        ``(m, k)`` int array of sorted distinct indices; ``m >= min(count, C(n, k))``. It
        always holds the ``n`` cyclic windows and the all-parity pattern (last ``k`` rows).
    """
    from itertools import combinations
    from math import comb

    n = check_int("n", n, low=1)
    k = check_int("k", k, low=1, high=n, high_name="n")
    if comb(n, k) <= count:
        return np.array(list(combinations(range(n), k)), dtype=np.int64).reshape(-1, k)
    rng = np.random.default_rng(0) if rng is None else rng
    windows = np.sort((np.arange(n)[:, None] + np.arange(k)[None, :]) % n, axis=1)
    pats = np.unique(np.vstack([windows, np.arange(n - k, n)[None, :]]), axis=0)
    while len(pats) < count:  # top up with distinct random k-subsets
        rand = np.sort(np.argsort(rng.random((count - len(pats), n)), axis=1)[:, :k], axis=1)
        pats = np.unique(np.vstack([pats, rand]), axis=0)
    return pats


def submatrix_conditions(G: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """2-norm condition number of ``G[pattern]`` for every row of ``patterns`` (vectorized)."""
    with np.errstate(all="ignore"):
        c = np.linalg.cond(G[patterns])
    return np.where(np.isfinite(c), c, np.inf)


def worst_condition(G: np.ndarray, patterns: np.ndarray) -> float:
    """Largest condition number over the given surviving-index patterns."""
    return float(submatrix_conditions(G, patterns).max())


def real_generator(n: int, k: int, *, seed: int = 0, kind: str = REAL_KIND) -> np.ndarray:
    """Systematic real generator ``(n, k)`` float64, first k rows the identity.

    Parameters
    ----------
    n, k : int
        Code length and dimension, ``1 <= k <= n``.
    seed : int
        Seed of the random kinds.
    kind : str
        One of :data:`CANDIDATES`. ``"<base>-best"`` draws :data:`BEST_OF` seeded parity
        blocks and keeps the one with the smallest worst condition number over
        :func:`erasure_patterns` (200 patterns, every contiguous window included).

    Returns
    -------
    numpy.ndarray
        The ``(n, k)`` generator.
    """
    n = check_int("n", n, low=1)
    k = check_int("k", k, low=1, high=n, high_name="n")
    seed = check_int("seed", seed)
    if kind not in CANDIDATES:
        raise ValueError(f"Argument 'kind' must be one of {CANDIDATES}, not {kind!r}.")
    if n == k:
        return np.eye(k)
    rng = np.random.default_rng(seed)
    if not kind.endswith("-best"):
        return _BASE[kind](n, k, rng)
    base = _BASE[kind.removesuffix("-best")]
    pats = erasure_patterns(n, k, count=_SELECT_PATTERNS, rng=np.random.default_rng(seed))
    best, best_c = None, np.inf
    for _ in range(BEST_OF):
        G = base(n, k, rng)
        c = worst_condition(G, pats)
        if best is None or c < best_c:
            best, best_c = G, c
    return best


def gfp_generator(n: int, k: int, field: type) -> np.ndarray:
    """Systematic Reed--Solomon generator over a prime field, as an int64 array.

    The Vandermonde matrix ``V[i, j] = a_i ** j`` on the ``n`` distinct points
    ``a_i = i`` (``0 <= i < n``) is MDS: any ``k`` of its rows are a nonsingular Vandermonde
    matrix. Multiplying by ``inv(V[:k])`` (computed with galois) makes it systematic and
    keeps that property.

    Parameters
    ----------
    n, k : int
        Code length and dimension, ``1 <= k <= n <= p``.
    field : type
        A ``galois.GF(p)`` prime field class.

    Returns
    -------
    numpy.ndarray
        ``(n, k)`` int64 matrix with entries in ``[0, p)``.
    """
    p = int(field.characteristic)
    n = check_int("n", n, low=1, high=p, high_name="p")
    k = check_int("k", k, low=1, high=n, high_name="n")
    points = field(np.arange(n, dtype=np.int64))
    V = _gf_vander(field, points, k)
    G = V @ np.linalg.inv(V[:k])
    return np.asarray(G, dtype=np.int64)


def _gf_vander(field: type, points, k: int):
    V = field.Ones((points.size, k))
    for j in range(1, k):
        V[:, j] = V[:, j - 1] * points
    return V
