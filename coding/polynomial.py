"""Polynomial codes for straggler-tolerant matrix multiplication.

Yu, Maddah-Ali and Avestimehr, "Polynomial codes: an optimal design for high-dimensional
coded matrix multiplication", NeurIPS 2017. ``A`` is cut into ``ka`` row blocks and ``B``
into ``kb`` column blocks; worker ``i`` gets

    A~_i = sum_j A_j x_i^j,        B~_i = sum_l B_l x_i^(l*ka),

and returns ``A~_i @ B~_i = sum_{j,l} A_j B_l x_i^(j + l*ka)``, a matrix polynomial of
degree ``ka*kb - 1`` whose coefficients are exactly the blocks of ``C = A @ B``. Any
``ka*kb`` results interpolate it (the recovery threshold).

Over GF(p) the points are ``x_i = i + 1`` and interpolation is exact. Over the reals the
points are the ``n`` Chebyshev nodes on [-1, 1], but the basis stays monomial, so the
``ka*kb``-point Vandermonde systems grow ill-conditioned exponentially, and worst when the
surviving points cluster (a contiguous run of nodes). Measured worst relative error over
all contiguous index runs (Frobenius norm, float64):

=========  ====  =========
``ka*kb``  n     error
=========  ====  =========
4          16    2e-12
9          14    2e-11
9          18    2e-9
12         18    8e-10
16         20    9e-10
12         24    1e-5
16         32    0.2
=========  ====  =========

So the 1e-9 target holds for ``ka*kb <= 16`` with at most ~4 stragglers, or
``ka*kb <= 6`` with ``n <= 2*ka*kb``; beyond that real polynomial codes are impractical, and
GF(p) (with :mod:`coding.quantize`) is the way to go.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ._validate import check_int, check_prime
from .errors import DuplicateIndexError, NotEnoughShardsError
from .gfp import MAX_PRIME, as_gfp, galois_field, gfp_inv, gfp_matmul, gfp_vandermonde

__all__ = ["PolynomialCode"]


def split_blocks(A: np.ndarray, B: np.ndarray, ka: int, kb: int,
                 dtype: np.dtype | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad ``A`` (m, d) into ``ka`` row blocks and ``B`` (d, q) into ``kb`` column blocks.

    Returns ``(ka, ceil(m/ka), d)`` and ``(kb, d, ceil(q/kb))`` arrays; raises a one-line
    ``ValueError`` when the shapes do not multiply.
    """
    if A.shape[1] != B.shape[0]:
        raise ValueError(
            f"Arguments 'A' and 'B' have shapes {A.shape} and {B.shape}, which do not multiply."
        )
    (m, d), q = A.shape, B.shape[1]
    rows, cols = -(-m // ka), -(-q // kb)
    Ap = np.zeros((ka * rows, d), dtype=dtype or A.dtype)
    Ap[:m] = A
    Bp = np.zeros((d, kb * cols), dtype=dtype or B.dtype)
    Bp[:, :q] = B
    return Ap.reshape(ka, rows, d), Bp.reshape(d, kb, cols).transpose(1, 0, 2)


def _check_indices(indices: object, n: int, count: int, needed: int, what: str) -> list[int]:
    """Validate result indices: ints in [0, n), one per result, distinct, at least ``needed``."""
    try:
        idx = [int(i) for i in np.asarray(indices).reshape(-1)]
    except (TypeError, ValueError) as err:
        raise TypeError(f"Argument 'indices' must be a sequence of integers, not {indices!r}.") from err
    if np.asarray(indices).dtype.kind not in "iub" and len(idx):
        raise TypeError(f"Argument 'indices' must be a sequence of integers, not {indices!r}.")
    if len(idx) != count:
        raise ValueError(
            f"Argument 'indices' must have one entry per result ({count}), not {len(idx)}."
        )
    for i in idx:
        if not 0 <= i < n:
            raise ValueError(f"Argument 'indices' must have entries in [0, n={n}), not {i}.")
    seen: set[int] = set()
    for i in idx:
        if i in seen:
            raise DuplicateIndexError(i)
        seen.add(i)
    if len(idx) < needed:
        raise NotEnoughShardsError(needed, len(idx), what)
    return idx


def _field_prime(field: object) -> int | None:
    """Normalize a ``field`` argument (None, a prime, or a galois GF(p) class) to p or None."""
    if field is None:
        return None
    if isinstance(field, type) and hasattr(field, "characteristic") and hasattr(field, "degree"):
        if field.degree != 1:
            raise ValueError(f"Argument 'field' must be a prime field GF(p), not {field.name}.")
        return check_prime("field", int(field.characteristic), high=MAX_PRIME)
    if isinstance(field, int | np.integer) and not isinstance(field, bool):
        return check_prime("field", field, high=MAX_PRIME)
    raise TypeError(
        f"Argument 'field' must be None, a prime or a galois GF(p) class, not {field!r}."
    )


@lru_cache(maxsize=256)
def _real_inverse(points: tuple[float, ...]) -> np.ndarray:
    V = np.vander(np.asarray(points), len(points), increasing=True)
    return np.linalg.inv(V)


@lru_cache(maxsize=256)
def _gfp_inverse(points: tuple[int, ...], p: int) -> np.ndarray:
    return gfp_inv(gfp_vandermonde(list(points), len(points), p), p)


class PolynomialCode:
    """Polynomial code for ``C = A @ B`` with recovery threshold ``ka * kb``.

    Parameters
    ----------
    n : int
        Number of workers, ``n >= ka * kb`` (and ``n <= p - 1`` over GF(p)).
    ka : int
        Number of row blocks of ``A``, at least 1.
    kb : int
        Number of column blocks of ``B``, at least 1.
    field : None, int or galois GF(p) class, optional
        ``None`` (default) for float64 arithmetic, else the prime field.

    Notes
    -----
    :meth:`encode` returns two stacked arrays, ``(A_shares, B_shares)`` with shapes
    ``(n, ceil(m/ka), d)`` and ``(n, d, ceil(q/kb))``; worker ``i`` multiplies
    ``A_shares[i] @ B_shares[i]`` (over GF(p) use :meth:`worker_product`). Rows of ``A`` and
    columns of ``B`` that do not divide evenly are zero-padded; :meth:`decode` removes the
    padding using the shape of the last :meth:`encode`, or an explicit ``shape``.

    Over the reals, interpolation is accurate to ~1e-9 relative only for moderate
    ``ka*kb`` and straggler counts (table in the module docstring); larger codes are
    accepted but lose digits.
    """

    def __init__(self, n: int, ka: int, kb: int, *, field: object = None):
        self._ka = check_int("ka", ka, low=1)
        self._kb = check_int("kb", kb, low=1)
        self._p = _field_prime(field)
        k = self._ka * self._kb
        high = None if self._p is None else self._p - 1
        self._n = check_int("n", n, low=k, low_name="ka*kb", high=high, high_name="p-1")
        self._field = field if isinstance(field, type) else None
        if self._p is None:
            i = np.arange(self._n)
            self._points = np.cos(np.pi * (2 * i + 1) / (2 * self._n))
        else:
            self._points = np.arange(1, self._n + 1, dtype=np.int64)
        self._shape: tuple[int, int] | None = None

    @property
    def n(self) -> int:
        """Number of workers."""
        return self._n

    @property
    def k(self) -> int:
        """Recovery threshold ``ka * kb``."""
        return self._ka * self._kb

    threshold = k

    @property
    def ka(self) -> int:
        return self._ka

    @property
    def kb(self) -> int:
        return self._kb

    @property
    def p(self) -> int | None:
        """The prime modulus, or ``None`` over the reals."""
        return self._p

    @property
    def field(self) -> type | None:
        """The galois GF(p) class, or ``None`` over the reals (built on first use, ~1 s)."""
        if self._p is None:
            return None
        return self._field if self._field is not None else galois_field(self._p)

    @property
    def points(self) -> np.ndarray:
        """The evaluation point of each worker (a copy)."""
        return self._points.copy()

    def __repr__(self) -> str:
        f = "reals" if self._p is None else f"GF({self._p})"
        return f"PolynomialCode(n={self._n}, ka={self._ka}, kb={self._kb}, field={f})"

    def _as_matrix(self, name: str, X: object) -> np.ndarray:
        if self._p is None:
            arr = np.asarray(X, dtype=np.float64)
        else:
            arr = as_gfp(name, X, self._p)
        if arr.ndim != 2:
            raise ValueError(f"Argument {name!r} must be 2-D, not shape {arr.shape}.")
        return arr

    def _mix(self, coeffs: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        """``coeffs (r, s) @ blocks (s, ...)`` in the code's arithmetic."""
        flat = blocks.reshape(blocks.shape[0], -1)
        out = coeffs @ flat if self._p is None else gfp_matmul(coeffs, flat, self._p)
        return out.reshape((coeffs.shape[0],) + blocks.shape[1:])

    def encode(self, A: object, B: object) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``A`` (m, d) and ``B`` (d, q) into the workers' inputs.

        Returns
        -------
        A_shares : numpy.ndarray, shape (n, ceil(m/ka), d)
        B_shares : numpy.ndarray, shape (n, d, ceil(q/kb))
        """
        A, B = self._as_matrix("A", A), self._as_matrix("B", B)
        A_blocks, B_blocks = split_blocks(A, B, self._ka, self._kb)
        EA, EB = self._encoders()
        self._shape = (A.shape[0], B.shape[1])
        return self._mix(EA, A_blocks), self._mix(EB, B_blocks)

    def _encoders(self) -> tuple[np.ndarray, np.ndarray]:
        ka, kb, x = self._ka, self._kb, self._points
        if self._p is None:
            EA = np.vander(x, ka, increasing=True)
            EB = x[:, None] ** (ka * np.arange(kb))[None, :]
        else:
            EA = gfp_vandermonde(x, ka, self._p)
            powers = gfp_vandermonde(x, ka * (kb - 1) + 1, self._p)
            EB = powers[:, :: ka]
        return EA, EB

    def worker_product(self, a_share: object, b_share: object) -> np.ndarray:
        """What worker i computes: ``a_share @ b_share`` (mod p over GF(p))."""
        a = self._as_matrix("a_share", a_share)
        b = self._as_matrix("b_share", b_share)
        return a @ b if self._p is None else gfp_matmul(a, b, self._p)

    def decode(
        self,
        results: object,
        indices: Sequence[int],
        *,
        shape: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Recover ``C = A @ B`` from any ``ka*kb`` worker results.

        Parameters
        ----------
        results : array_like, shape (r, rows, cols), or a list of r matrices
            ``A_shares[i] @ B_shares[i]`` for the workers in ``indices``.
        indices : sequence of int
            The distinct worker indices the results came from, ``r >= ka*kb``. Extra
            results beyond the threshold are ignored.
        shape : (m, q), optional
            Shape of ``C`` to unpad to; defaults to the shape of the last :meth:`encode`,
            else the padded product is returned.

        Raises
        ------
        NotEnoughShardsError
            Fewer than ``ka*kb`` results.
        DuplicateIndexError
            A worker index appears twice.
        """
        R = np.stack([np.asarray(r) for r in results]) if isinstance(results, list) else results
        R = np.asarray(R) if self._p is None else as_gfp("results", R, self._p)
        if R.ndim != 3:
            raise ValueError(f"Argument 'results' must be 3-D (r, rows, cols), not {R.shape}.")
        k = self.k
        idx = _check_indices(indices, self._n, R.shape[0], k, "results")[:k]
        R = R[:k]
        pts = tuple(self._points[idx].tolist())
        inv = _real_inverse(pts) if self._p is None else _gfp_inverse(pts, self._p)
        coeffs = self._mix(inv, R.astype(np.float64) if self._p is None else R)
        rows, cols = R.shape[1:]
        # Coefficient j + l*ka is the block A_j B_l at block position (j, l).
        C = coeffs.reshape(self._kb, self._ka, rows, cols).transpose(1, 2, 0, 3)
        C = C.reshape(self._ka * rows, self._kb * cols)
        shape = self._shape if shape is None else shape
        if shape is not None:
            m = check_int("shape[0]", shape[0], low=0, high=C.shape[0])
            q = check_int("shape[1]", shape[1], low=0, high=C.shape[1])
            C = C[:m, :q]
        return C
