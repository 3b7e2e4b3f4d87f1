"""Degree tables: the shared algebra of secure polynomial codes over GF(p).

A secure code for ``C = A @ B`` gives worker ``i`` the evaluations at a point ``x_i`` of

    p_A(x) = sum_j A_j x^alpha_j + sum_t R_t x^alpha_(K+t),
    p_B(x) = sum_l B_l x^beta_l  + sum_t S_t x^beta_(L+t),

with uniform random masks ``R_t`` and ``S_t``; the worker returns ``p_A(x_i) @ p_B(x_i)``.
The product is a polynomial whose exponents are the entries of the *degree table*
``alpha_i + beta_j`` (D'Oliveira, El Rouayheb and Karpuk, "GASP codes for secure
distributed matrix multiplication", IEEE T-IT 2020). Its recovery threshold is the number
``N`` of distinct entries: any ``N`` results give a generalized Vandermonde system in those
exponents, and the wanted coefficients are read off its inverse.

Two conditions make a table work, and :class:`DegreeTable` checks both:

* **decodable**: every wanted coefficient is one known combination of data products that no
  mask product touches (outer-product split: each ``A_k B_l`` alone on its own degree;
  inner-product split: ``sum_j A_j B_j`` alone on one degree);
* **T-private**: any ``T`` workers' mask matrix ``[x_i^alpha_(K+t)]`` is invertible, so
  the masks make their view of ``A`` uniform (likewise for ``B``). Consecutive mask
  exponents give ``diag(x^a)`` times a Vandermonde matrix, invertible for distinct nonzero
  points; a table with gaps is checked on every ``T``-subset of the points
  (:func:`all_nonsingular`).

Over GF(p) a generalized Vandermonde matrix with gaps in its exponents can be singular on
some point sets (``x^2 - y^2 = 0`` at ``y = -x``). :func:`all_nonsingular` checks all
subsets when there are at most :data:`MAX_SUBSETS` of them; the codes run that check at
construction for both conditions and refuse a point set that fails it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from .gfp import gfp_inv

__all__ = ["MAX_SUBSETS", "DegreeTable", "all_nonsingular", "consecutive", "decode_rows", "gfp_powers",
           "outer_ok"]

#: Most subsets :func:`all_nonsingular` enumerates (beyond that it samples).
MAX_SUBSETS = 20_000


def gfp_powers(points: np.ndarray, exponents: Sequence[int], p: int) -> np.ndarray:
    """``points[i] ** exponents[j] mod p`` as int64, shape (len(points), len(exponents))."""
    x = np.asarray(points, dtype=np.int64).reshape(-1, 1) % p
    e = np.asarray(exponents, dtype=np.int64).reshape(1, -1)
    out = np.ones((x.shape[0], e.shape[1]), dtype=np.int64)
    base = np.broadcast_to(x, out.shape).copy()
    e = np.broadcast_to(e, out.shape).copy()
    while np.any(e):  # square and multiply; int64 products stay below p^2 < 2^62
        odd = (e & 1).astype(bool)
        out[odd] = out[odd] * base[odd] % p
        base = base * base % p
        e >>= 1
    return out


def _batched_rank_full(M: np.ndarray, p: int) -> np.ndarray:
    """Whether each square matrix of the batch ``M`` (b, k, k) is nonsingular mod p."""
    W = np.array(M, dtype=np.int64) % p
    b, k, _ = W.shape
    ok = np.ones(b, dtype=bool)
    rows = np.arange(b)
    for c in range(k):
        col = W[:, c:, c]
        has = col != 0
        ok &= has.any(axis=1)
        piv = c + np.argmax(has, axis=1)
        pr = W[rows, piv].copy()
        W[rows, piv] = W[:, c]
        W[:, c] = pr
        inv = _pow_vec(W[:, c, c], p - 2, p)
        W[:, c] = W[:, c] * inv[:, None] % p
        f = W[:, c + 1 :, c].copy()
        W[:, c + 1 :] = (W[:, c + 1 :] - f[:, :, None] * W[:, c, None, :] % p) % p
    return ok


def _pow_vec(x: np.ndarray, e: int, p: int) -> np.ndarray:
    out = np.ones_like(x)
    base = x % p
    while e:
        if e & 1:
            out = out * base % p
        base = base * base % p
        e >>= 1
    return out


def all_nonsingular(points: np.ndarray, exponents: Sequence[int], p: int, *,
                    limit: int = MAX_SUBSETS, rng: np.random.Generator | None = None) -> bool:
    """Whether ``[x^e]`` over every ``len(exponents)``-subset of ``points`` is invertible mod p.

    All subsets are checked when there are at most ``limit``; otherwise ``limit`` random
    subsets (seeded) are, so a ``True`` is then evidence, not proof.
    """
    pts = np.asarray(points, dtype=np.int64)
    k = len(exponents)
    if k > pts.size:
        return True  # no subset of that size exists
    if math.comb(pts.size, k) <= limit:
        subsets = np.array(list(combinations(range(pts.size), k)), dtype=np.int64)
    else:
        rng = np.random.default_rng(0) if rng is None else rng
        subsets = np.argsort(rng.random((limit, pts.size)), axis=1)[:, :k]
    P = gfp_powers(pts, exponents, p)
    per = max(1, (1 << 22) // (k * k))  # ~32 MB of int64 per batch
    return all(bool(_batched_rank_full(P[subsets[i : i + per]], p).all())
               for i in range(0, subsets.shape[0], per))


@dataclass(frozen=True)
class DegreeTable:
    """Exponents of a secure code's two encoding polynomials and what decoding reads.

    Attributes
    ----------
    alpha : tuple of int
        Exponents of ``p_A``: the data blocks first, then the ``t`` masks.
    beta : tuple of int
        Exponents of ``p_B``, likewise.
    n_a, n_b : int
        Number of data blocks of ``A`` and ``B``.
    wanted : tuple of int
        The degrees decoding reads, in output order.
    name : str
        The construction's name (for reports).
    """

    alpha: tuple[int, ...]
    beta: tuple[int, ...]
    n_a: int
    n_b: int
    wanted: tuple[int, ...]
    name: str

    @property
    def degrees(self) -> tuple[int, ...]:
        """Sorted distinct exponents of the product ``p_A p_B``."""
        return tuple(sorted({a + b for a in self.alpha for b in self.beta}))

    @property
    def threshold(self) -> int:
        """Results needed to decode: the number of distinct product exponents."""
        return len(self.degrees)

    @property
    def t(self) -> int:
        return len(self.alpha) - self.n_a

    def mask_exponents(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.alpha[self.n_a :], self.beta[self.n_b :]

    def wanted_positions(self) -> tuple[int, ...]:
        """Positions of :attr:`wanted` in :attr:`degrees`."""
        pos = {d: i for i, d in enumerate(self.degrees)}
        return tuple(pos[d] for d in self.wanted)


def outer_ok(table: DegreeTable) -> bool:
    """Outer-product split: each ``alpha_k + beta_l`` (data) distinct and mask-free."""
    K, L = table.n_a, table.n_b
    a, b = table.alpha, table.beta
    want = [a[k] + b[c] for c in range(L) for k in range(K)]
    other = {a[i] + b[j] for i in range(len(a)) for j in range(len(b)) if i >= K or j >= L}
    return len(set(want)) == K * L and not set(want) & other


def consecutive(exps: Sequence[int]) -> bool:
    """Whether the exponents are ``e, e+1, ..., e+t-1`` (privacy then needs no check)."""
    return all(b - a == 1 for a, b in zip(exps, exps[1:], strict=False))


@lru_cache(maxsize=256)
def decode_rows(points: tuple[int, ...], degrees: tuple[int, ...], positions: tuple[int, ...],
                p: int) -> np.ndarray:
    """Rows ``positions`` of the inverse of ``[x^d]`` (x in points, d in degrees) mod p."""
    M = gfp_powers(np.array(points), degrees, p)
    return gfp_inv(M, p)[list(positions)]
