"""MatDot codes: ``C = A @ B`` split along the inner dimension, plain and T-private.

Dutta, Fahim, Haddadpour, Jeong, Cadambe and Grover, "On the optimal recovery threshold of
coded matrix multiplication", IEEE T-IT 2020. ``A`` (r, d) is cut into ``m`` column blocks
and ``B`` (d, q) into ``m`` row blocks, so ``C = sum_j A_j B_j``. Worker ``i`` gets

    p_A(x_i) = sum_j A_j x_i^j,      p_B(x_i) = sum_l B_l x_i^(m-1-l),

and returns ``p_A(x_i) @ p_B(x_i)``, a polynomial of degree ``2m - 2`` whose coefficient of
``x^(m-1)`` is exactly ``C``. Any ``2m - 1`` results interpolate it: the **recovery
threshold is ``2m - 1``**, against ``m*m`` for a polynomial code with the same storage per
worker (``1/m`` of ``A`` and of ``B``, ``ka = kb = m``), at the price of ``1/m`` instead of
``1/m^2`` of the multiply-adds per worker and full-size ``r x q`` results.

**Over the reals** the monomial basis is ill-conditioned, so :class:`MatDotCode` uses the
orthonormal-Chebyshev construction of Fahim and Cadambe ("Numerically stable polynomially
coded computing", IEEE T-IT 2021, OrthoMatDot): with ``s_0 = 1`` and ``s_j = sqrt(2)``,

    p_A(x) = sum_j s_j A_j T_j(x),   p_B(x) = sum_l s_l B_l T_l(x),

at the ``n`` Chebyshev nodes. ``T_i T_j = (T_(i+j) + T_|i-j|) / 2``, so the ``T_0``
coefficient of the product (degree ``2m - 2`` in the Chebyshev basis) is
``sum_j s_j^2 / 2 A_j B_j`` for ``j > 0`` plus ``A_0 B_0``, which is ``C``. Decoding solves
one Chebyshev-Vandermonde system on the surviving nodes. It stays accurate while the
stragglers are few and degrades when many nodes are missing from one end of [-1, 1].
Measured worst relative error (float64; every pattern, or 2,000 including all windows;
``python -m benchmarks.coding``, MatDot table):

====  ======  ======  ======  ======
n     m=2     m=4     m=6     m=8
====  ======  ======  ======  ======
8     9e-15   9e-16
16    3e-13   5e-11   2e-11   2e-15
24    2e-12   1e-8    5e-7    4e-7
32    5e-12   5e-7    2e-4    7e-3
====  ======  ======  ======  ======

So real MatDot meets 1e-9 for ``n <= 16`` or ``m = 2``; beyond that use GF(p) (exact, with
:mod:`coding.quantize`).

**T-private** (:class:`SecureMatDotCode`, over GF(p)): Aliasgari, Simeone and Kliewer,
"Private and secure distributed matrix multiplication with flexible communication load",
IEEE TIFS 2020. Masks take the next ``t`` exponents of both polynomials,

    p_A(x) = sum_j A_j x^j + sum_t R_t x^(m+t),   p_B(x) = sum_l B_l x^(m-1-l) + sum_t S_t x^(m+t),

so every mask product lands at degree ``m`` or above, the ``x^(m-1)`` coefficient is
still ``C``, the top degree is ``2(m+t-1)``, and the **recovery threshold is
``2m + 2t - 1``**. Privacy: ``t`` workers see the masks through ``diag(x^m)`` times a
``t x t`` Vandermonde matrix, which is invertible, so their view is uniform.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .degree_table import decode_rows, gfp_powers
from .gfp import MAX_PRIME, as_gfp, gfp_matmul, gfp_random
from .polynomial import _check_indices, _field_prime
from .validate import check_int, check_prime

__all__ = ["MatDotCode", "SecureMatDotCode", "split_inner"]


def split_inner(A: np.ndarray, B: np.ndarray, m: int, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad the inner dimension and cut ``A`` (r, d) / ``B`` (d, q) into ``m`` blocks.

    Returns ``(m, r, ceil(d/m))`` and ``(m, ceil(d/m), q)``; the zero padding adds nothing
    to ``sum_j A_j B_j``.
    """
    if A.shape[1] != B.shape[0]:
        raise ValueError(
            f"Arguments 'A' and 'B' have shapes {A.shape} and {B.shape}, which do not multiply."
        )
    (r, d), q = A.shape, B.shape[1]
    w = -(-d // m)
    Ap = np.zeros((r, m * w), dtype=dtype or A.dtype)
    Ap[:, :d] = A
    Bp = np.zeros((m * w, q), dtype=dtype or B.dtype)
    Bp[:d] = B
    return Ap.reshape(r, m, w).transpose(1, 0, 2), Bp.reshape(m, w, q)


def _finite(name: str, X: np.ndarray) -> np.ndarray:
    if not np.isfinite(X).all():
        raise ValueError(f"Argument {name!r} must be finite; it holds NaN or inf.")
    return X


def _stack(results: object) -> np.ndarray:
    return np.stack([np.asarray(r) for r in results]) if isinstance(results, list) else results


@lru_cache(maxsize=256)
def _cheb_weights(nodes: tuple[float, ...]) -> np.ndarray:
    """Weights ``w`` with ``sum_r w_r f(x_r) = c_0`` for every Chebyshev series ``f`` of
    degree ``len(nodes) - 1`` (``c_0`` its ``T_0`` coefficient)."""
    V = np.polynomial.chebyshev.chebvander(np.asarray(nodes), len(nodes) - 1)
    e0 = np.zeros(len(nodes))
    e0[0] = 1.0
    return np.linalg.solve(V.T, e0)


class MatDotCode:
    """MatDot code for ``C = A @ B`` with recovery threshold ``2m - 1``.

    Parameters
    ----------
    n : int
        Number of workers, ``n >= 2m - 1`` (and ``n <= p - 1`` over GF(p)).
    m : int
        Inner-dimension blocks, at least 1.
    field : None, int or galois GF(p) class, optional
        ``None`` (default) for float64 with the orthonormal-Chebyshev basis, else the prime
        field (monomial basis at the points ``1..n``, exact).

    Notes
    -----
    :meth:`encode` returns ``(A_shares, B_shares)`` of shapes ``(n, r, ceil(d/m))`` and
    ``(n, ceil(d/m), q)``; every worker's result is ``r x q``, so :meth:`decode` needs no
    output shape. Real inputs must be finite (NaN or inf is refused at encode).
    """

    def __init__(self, n: int, m: int, *, field: object = None):
        self._m = check_int("m", m, low=1)
        self._p = _field_prime(field)
        high = None if self._p is None else self._p - 1
        self._n = check_int("n", n, low=2 * self._m - 1, low_name="2m-1", high=high,
                            high_name="p-1")
        m = self._m
        if self._p is None:
            i = np.arange(self._n)
            self._points = np.cos(np.pi * (2 * i + 1) / (2 * self._n))
            T = np.polynomial.chebyshev.chebvander(self._points, m - 1)
            s = np.full(m, np.sqrt(2.0))
            s[0] = 1.0
            self._EA = T * s
            self._EB = self._EA
        else:
            self._points = np.arange(1, self._n + 1, dtype=np.int64)
            self._EA = gfp_powers(self._points, range(m), self._p)
            self._EB = gfp_powers(self._points, range(m - 1, -1, -1), self._p)

    @property
    def n(self) -> int:
        """Number of workers."""
        return self._n

    @property
    def m(self) -> int:
        """Inner-dimension blocks."""
        return self._m

    @property
    def threshold(self) -> int:
        """Results needed to decode, ``2m - 1``."""
        return 2 * self._m - 1

    k = threshold

    @property
    def p(self) -> int | None:
        """The prime modulus, or ``None`` over the reals."""
        return self._p

    @property
    def points(self) -> np.ndarray:
        """The evaluation point of each worker (a copy)."""
        return self._points.copy()

    def __repr__(self) -> str:
        f = "reals" if self._p is None else f"GF({self._p})"
        return f"MatDotCode(n={self._n}, m={self._m}, field={f})"

    def _as_matrix(self, name: str, X: object) -> np.ndarray:
        arr = _finite(name, np.asarray(X, dtype=np.float64)) if self._p is None else as_gfp(
            name, X, self._p)
        if arr.ndim != 2:
            raise ValueError(f"Argument {name!r} must be 2-D, not shape {arr.shape}.")
        return arr

    def _mix(self, coeffs: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        flat = blocks.reshape(blocks.shape[0], -1)
        out = coeffs @ flat if self._p is None else gfp_matmul(coeffs, flat, self._p)
        return out.reshape((coeffs.shape[0],) + blocks.shape[1:])

    def encode(self, A: object, B: object) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``A`` (r, d) and ``B`` (d, q) into the workers' inputs.

        Returns
        -------
        A_shares : numpy.ndarray, shape (n, r, ceil(d/m))
        B_shares : numpy.ndarray, shape (n, ceil(d/m), q)
        """
        A, B = self._as_matrix("A", A), self._as_matrix("B", B)
        A_blocks, B_blocks = split_inner(A, B, self._m)
        return self._mix(self._EA, A_blocks), self._mix(self._EB, B_blocks)

    def worker_product(self, a_share: object, b_share: object) -> np.ndarray:
        """What worker i computes: ``a_share @ b_share`` (mod p over GF(p))."""
        a, b = self._as_matrix("a_share", a_share), self._as_matrix("b_share", b_share)
        return a @ b if self._p is None else gfp_matmul(a, b, self._p)

    def decode(self, results: object, indices: Sequence[int]) -> np.ndarray:
        """Recover ``C = A @ B`` (r, q) from any ``2m - 1`` worker results.

        Parameters
        ----------
        results : array_like, shape (s, r, q), or a list of s matrices
            Worker products for the workers in ``indices``.
        indices : sequence of int
            Distinct worker indices, ``s >= 2m - 1``; extra results are ignored.

        Raises
        ------
        NotEnoughShardsError
            Fewer than ``2m - 1`` results.
        DuplicateIndexError
            A worker index appears twice.
        """
        R = _stack(results)
        R = np.asarray(R, dtype=np.float64) if self._p is None else as_gfp("results", R, self._p)
        if R.ndim != 3:
            raise ValueError(f"Argument 'results' must be 3-D (s, r, q), not {R.shape}.")
        k = self.threshold
        idx = _check_indices(indices, self._n, R.shape[0], k, "results")[:k]
        pts = tuple(self._points[idx].tolist())
        if self._p is None:
            w = _cheb_weights(pts)[None, :]
        else:
            w = decode_rows(pts, tuple(range(k)), (self._m - 1,), self._p)
        return self._mix(w, R[:k])[0]


class SecureMatDotCode:
    """T-private MatDot code over GF(p), recovery threshold ``2m + 2t - 1``.

    Parameters
    ----------
    n : int
        Number of workers, ``2m + 2t - 1 <= n <= p - 1``.
    m : int
        Inner-dimension blocks, at least 1.
    t : int
        Colluding workers that learn nothing about ``A`` or ``B``, at least 1.
    p : int
        The prime modulus, at most ``2**31 - 1``.

    Notes
    -----
    Shares and results have the shapes of :class:`MatDotCode`; the masks come from
    ``os.urandom`` unless a seeded ``rng`` is passed (tests only).
    """

    def __init__(self, n: int, m: int, t: int, *, p: int):
        self._p = check_prime("p", p, high=MAX_PRIME)
        self._m = check_int("m", m, low=1)
        self._t = check_int("t", t, low=1)
        self._n = check_int("n", n, low=self.threshold, low_name="2m+2t-1", high=self._p - 1,
                            high_name="p-1")
        m, t = self._m, self._t
        self._points = np.arange(1, self._n + 1, dtype=np.int64)
        masks = list(range(m, m + t))
        self._EA = gfp_powers(self._points, list(range(m)) + masks, self._p)
        self._EB = gfp_powers(self._points, list(range(m - 1, -1, -1)) + masks, self._p)

    @property
    def n(self) -> int:
        """Number of workers."""
        return self._n

    @property
    def m(self) -> int:
        return self._m

    @property
    def t(self) -> int:
        """Number of colluding workers tolerated."""
        return self._t

    @property
    def p(self) -> int:
        """The prime modulus."""
        return self._p

    @property
    def threshold(self) -> int:
        """Results needed to decode, ``2m + 2t - 1``."""
        return 2 * self._m + 2 * self._t - 1

    k = threshold

    def __repr__(self) -> str:
        return f"SecureMatDotCode(n={self._n}, m={self._m}, t={self._t}, p={self._p})"

    def _matrix(self, name: str, X: object) -> np.ndarray:
        arr = as_gfp(name, X, self._p)
        if arr.ndim != 2:
            raise ValueError(f"Argument {name!r} must be 2-D, not shape {arr.shape}.")
        return arr

    def _mix(self, coeffs: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        flat = blocks.reshape(blocks.shape[0], -1)
        return gfp_matmul(coeffs, flat, self._p).reshape((coeffs.shape[0],) + blocks.shape[1:])

    def encode(self, A: object, B: object, *, rng: np.random.Generator | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``A`` (r, d) and ``B`` (d, q) with fresh random masks.

        Returns
        -------
        A_shares : numpy.ndarray of int64, shape (n, r, ceil(d/m))
        B_shares : numpy.ndarray of int64, shape (n, ceil(d/m), q)
        """
        A_blocks, B_blocks = split_inner(self._matrix("A", A), self._matrix("B", B), self._m,
                                         np.int64)
        R = gfp_random((self._t,) + A_blocks.shape[1:], self._p, rng)
        S = gfp_random((self._t,) + B_blocks.shape[1:], self._p, rng)
        return self.encode_with_masks(A_blocks, B_blocks, R, S)

    def encode_with_masks(self, A_blocks, B_blocks, R, S) -> tuple[np.ndarray, np.ndarray]:
        """Encode block stacks with given masks (known answers and exact privacy checks)."""
        return (self._mix(self._EA, np.concatenate([A_blocks, R])),
                self._mix(self._EB, np.concatenate([B_blocks, S])))

    def worker_product(self, a_share: object, b_share: object) -> np.ndarray:
        """What worker i computes: ``a_share @ b_share mod p``."""
        return gfp_matmul(self._matrix("a_share", a_share), self._matrix("b_share", b_share),
                          self._p)

    def decode(self, results: object, indices: Sequence[int]) -> np.ndarray:
        """Recover ``C = A @ B`` from any ``2m + 2t - 1`` worker results.

        Raises
        ------
        NotEnoughShardsError
            Fewer than :attr:`threshold` results.
        DuplicateIndexError
            A worker index appears twice.
        """
        R = as_gfp("results", _stack(results), self._p)
        if R.ndim != 3:
            raise ValueError(f"Argument 'results' must be 3-D (s, r, q), not {R.shape}.")
        k = self.threshold
        idx = _check_indices(indices, self._n, R.shape[0], k, "results")[:k]
        w = decode_rows(tuple(self._points[idx].tolist()), tuple(range(k)), (self._m - 1,),
                        self._p)
        return self._mix(w, R[:k])[0]
