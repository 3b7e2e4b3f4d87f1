"""GASP codes: T-private outer-product matrix multiplication with a smaller threshold.

D'Oliveira, El Rouayheb and Karpuk, "GASP codes for secure distributed matrix
multiplication", IEEE T-IT 2020, and D'Oliveira, El Rouayheb, Heinlein and Karpuk,
"Degree tables for secure distributed matrix multiplication", IEEE JSAIT 2021. ``A`` is cut
into ``K`` row blocks and ``B`` into ``L`` column blocks as in
:class:`coding.secure.SecureMatMulCode`, but the exponents of the encoding polynomials
(the degree table, :mod:`coding.degree_table`) are chosen so that the mask products
overlap each other as much as possible. ``GASP_r`` (``1 <= r <= t``) takes

    alpha = (0, 1, ..., K-1,  KL + floor(s/r) r K + (s mod r)  for s < t)
    beta  = (0, K, ..., K(L-1),  KL + s  for s < t)

and its recovery threshold is the number of distinct sums ``alpha_i + beta_j``.
:class:`GASPCode` builds every ``GASP_r`` and the Yang-Lee table of
:class:`~coding.secure.SecureMatMulCode` (``(K+t)(L+1) - 1``), in both orientations
(``A @ B``, or ``(B^T @ A^T)^T`` with the roles of ``K`` and ``L`` swapped), drops any table
that fails the decodability or privacy checks of :mod:`coding.degree_table` for its points,
and keeps the smallest threshold. Measured thresholds (``python -m benchmarks.coding``):

================  =====================  ====
(ka, kb, t)       (ka+t)(kb+1)-1 today   GASP
================  =====================  ====
(4, 4, 2)         29                     27
(4, 4, 6)         49                     43
(4, 4, 8)         59                     47
(2, 8, 3)         44                     32 (swapped)
================  =====================  ====

Decodability over GF(p): a table whose product exponents have gaps gives a generalized
Vandermonde system, which is invertible for generic points but can be singular for a few
point sets mod p. The constructor checks every ``threshold``-subset of the ``n`` points when
there are at most :data:`~coding.degree_table.MAX_SUBSETS` of them, and a sample otherwise;
with ``p = 2**31 - 1`` no failure has been seen (``tests/coding/test_gasp.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .degree_table import (
    DegreeTable,
    all_nonsingular,
    consecutive,
    decode_rows,
    gfp_powers,
    outer_ok,
)
from .gfp import MAX_PRIME, as_gfp, gfp_matmul, gfp_random
from .polynomial import _check_indices, split_blocks
from .validate import check_int, check_prime

__all__ = ["GASPCode", "gasp_table", "least_threshold", "secure_tables", "yang_lee_table"]

_ORIENTATIONS = ("auto", "ab", "ba")
#: Subsets checked for decodability at construction (more would cost seconds).
_DECODE_CHECK = 2_000


def _wanted(alpha, beta, K: int, L: int) -> tuple[int, ...]:
    return tuple(alpha[k] + beta[c] for c in range(L) for k in range(K))


def gasp_table(K: int, L: int, t: int, r: int) -> DegreeTable:
    """The ``GASP_r`` degree table for ``K`` row blocks, ``L`` column blocks, ``t`` masks."""
    alpha = tuple(range(K)) + tuple(K * L + (s // r) * r * K + s % r for s in range(t))
    beta = tuple(K * c for c in range(L)) + tuple(K * L + s for s in range(t))
    return DegreeTable(alpha, beta, K, L, _wanted(alpha, beta, K, L), f"gasp-r{r}")


def yang_lee_table(K: int, L: int, t: int) -> DegreeTable:
    """The table of :class:`~coding.secure.SecureMatMulCode`, threshold ``(K+t)(L+1) - 1``."""
    P = K + t
    alpha = tuple(range(P))
    beta = tuple(P * c for c in range(L)) + tuple(L * P - t + s for s in range(t))
    return DegreeTable(alpha, beta, K, L, _wanted(alpha, beta, K, L), "yang-lee")


def secure_tables(K: int, L: int, t: int) -> list[DegreeTable]:
    """Every candidate table for one orientation, each checked to decode the blocks."""
    tables = [yang_lee_table(K, L, t)] + [gasp_table(K, L, t, r) for r in range(1, t + 1)]
    return [tb for tb in tables if outer_ok(tb)]


def _private(tb: DegreeTable, points: np.ndarray, p: int) -> bool:
    ma, mb = tb.mask_exponents()
    return all(consecutive(e) or all_nonsingular(points, e, p) for e in (ma, mb))


def _decodable(tb: DegreeTable, points: np.ndarray, p: int) -> bool:
    if consecutive(tb.degrees):
        return True  # a plain Vandermonde system on distinct points
    return all_nonsingular(points, tb.degrees, p, limit=_DECODE_CHECK)


class GASPCode:
    """T-private code for ``C = A @ B`` over GF(p) with the best checked degree table.

    Parameters
    ----------
    n : int
        Number of workers, ``threshold <= n <= p - 1``.
    ka, kb : int
        Row blocks of ``A`` and column blocks of ``B``, each at least 1.
    t : int
        Colluding workers that learn nothing, at least 1.
    p : int
        The prime modulus, at most ``2**31 - 1``.
    orientation : {"auto", "ab", "ba"}
        ``"ab"`` encodes ``A`` and ``B``; ``"ba"`` encodes ``B^T`` and ``A^T`` (so the
        workers return transposed blocks and :meth:`decode` transposes back); ``"auto"``
        (default) takes whichever has the smaller threshold.

    Notes
    -----
    :meth:`encode` returns ``(A_shares, B_shares)``: worker ``i`` computes
    ``A_shares[i] @ B_shares[i] mod p``. :meth:`decode` needs the product's shape
    ``(m, q)``, from the job's metadata, to remove the block padding.
    """

    def __init__(self, n: int, ka: int, kb: int, t: int, *, p: int,
                 orientation: str = "auto"):
        self._p = check_prime("p", p, high=MAX_PRIME)
        self._ka = check_int("ka", ka, low=1)
        self._kb = check_int("kb", kb, low=1)
        self._t = check_int("t", t, low=1)
        if orientation not in _ORIENTATIONS:
            raise ValueError(f"Argument 'orientation' must be one of {_ORIENTATIONS}, not "
                             f"{orientation!r}.")
        n = check_int("n", n, low=1, high=self._p - 1, high_name="p-1")
        self._points = np.arange(1, n + 1, dtype=np.int64)
        cands = []
        for swap in (False, True):
            if orientation == ("ba" if not swap else "ab"):
                continue
            K, L = (kb, ka) if swap else (ka, kb)
            cands += [(tb.threshold, swap, i, tb) for i, tb in enumerate(secure_tables(K, L, t))]
        cands.sort(key=lambda c: c[:3])
        least = cands[0][0]
        check_int("n", n, low=least, low_name="the least threshold")
        chosen = next((c for c in cands if c[0] <= n and _private(c[3], self._points, self._p)
                       and _decodable(c[3], self._points, self._p)), None)
        if chosen is None:
            raise ValueError(f"No degree table is private and decodable for n={n} over "
                             f"GF({self._p}); use a larger prime.")
        _, swap, _, tb = chosen
        self._n, self._swap, self._table = n, swap, tb
        self._EA = gfp_powers(self._points, tb.alpha, self._p)
        self._EB = gfp_powers(self._points, tb.beta, self._p)
        self._pos = tb.wanted_positions()

    @property
    def n(self) -> int:
        """Number of workers."""
        return self._n

    @property
    def threshold(self) -> int:
        """Results needed to decode: distinct degrees of the chosen table."""
        return self._table.threshold

    k = threshold

    @property
    def ka(self) -> int:
        return self._ka

    @property
    def kb(self) -> int:
        return self._kb

    @property
    def t(self) -> int:
        """Number of colluding workers tolerated."""
        return self._t

    @property
    def p(self) -> int:
        """The prime modulus."""
        return self._p

    @property
    def swapped(self) -> bool:
        """Whether the code encodes ``B^T, A^T`` (the ``"ba"`` orientation)."""
        return self._swap

    @property
    def table(self) -> DegreeTable:
        """The chosen degree table (in the chosen orientation)."""
        return self._table

    def __repr__(self) -> str:
        return (f"GASPCode(n={self._n}, ka={self._ka}, kb={self._kb}, t={self._t}, "
                f"p={self._p}, table={self._table.name}, swapped={self._swap})")

    def _matrix(self, name: str, X: object) -> np.ndarray:
        arr = as_gfp(name, X, self._p)
        if arr.ndim != 2:
            raise ValueError(f"Argument {name!r} must be 2-D, not shape {arr.shape}.")
        return arr

    def _mix(self, coeffs: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        flat = blocks.reshape(blocks.shape[0], -1)
        return gfp_matmul(coeffs, flat, self._p).reshape((coeffs.shape[0],) + blocks.shape[1:])

    def blocks(self, A: object, B: object) -> tuple[np.ndarray, np.ndarray]:
        """The data blocks in the code's orientation (``B^T``, ``A^T`` when swapped)."""
        A, B = self._matrix("A", A), self._matrix("B", B)
        if A.shape[1] != B.shape[0]:
            raise ValueError(f"Arguments 'A' and 'B' have shapes {A.shape} and {B.shape}, "
                             "which do not multiply.")
        tb = self._table
        if self._swap:
            A, B = np.ascontiguousarray(B.T), np.ascontiguousarray(A.T)
        return split_blocks(A, B, tb.n_a, tb.n_b, np.int64)

    def encode(self, A: object, B: object, *, rng: np.random.Generator | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``A`` (m, d) and ``B`` (d, q) with fresh random masks.

        Returns
        -------
        A_shares, B_shares : numpy.ndarray of int64
            ``(n, ceil(m/ka), d)`` and ``(n, d, ceil(q/kb))``, or when :attr:`swapped`
            ``(n, ceil(q/kb), d)`` and ``(n, d, ceil(m/ka))``.
        """
        A_blocks, B_blocks = self.blocks(A, B)
        R = gfp_random((self._t,) + A_blocks.shape[1:], self._p, rng)
        S = gfp_random((self._t,) + B_blocks.shape[1:], self._p, rng)
        return self.encode_with_masks(A_blocks, B_blocks, R, S)

    def encode_with_masks(self, A_blocks, B_blocks, R, S) -> tuple[np.ndarray, np.ndarray]:
        """Encode block stacks (from :meth:`blocks`) with given masks."""
        return (self._mix(self._EA, np.concatenate([A_blocks, R])),
                self._mix(self._EB, np.concatenate([B_blocks, S])))

    def worker_product(self, a_share: object, b_share: object) -> np.ndarray:
        """What worker i computes: ``a_share @ b_share mod p``."""
        return gfp_matmul(self._matrix("a_share", a_share), self._matrix("b_share", b_share),
                          self._p)

    def decode(self, results: object, indices: Sequence[int], *,
               shape: tuple[int, int]) -> np.ndarray:
        """Recover ``C = A @ B`` of shape ``shape`` from any :attr:`threshold` results.

        Parameters
        ----------
        results : array_like, shape (s, rows, cols), or a list of s matrices
            Worker products for the workers in ``indices``.
        indices : sequence of int
            Distinct worker indices, ``s >= threshold``; extra results are ignored.
        shape : (m, q)
            Shape of ``C`` (the job's metadata), to remove the block padding.

        Raises
        ------
        NotEnoughShardsError
            Fewer than :attr:`threshold` results.
        DuplicateIndexError
            A worker index appears twice.
        """
        R = np.stack([np.asarray(r) for r in results]) if isinstance(results, list) else results
        R = as_gfp("results", R, self._p)
        if R.ndim != 3:
            raise ValueError(f"Argument 'results' must be 3-D (s, rows, cols), not {R.shape}.")
        k, tb = self.threshold, self._table
        idx = _check_indices(indices, self._n, R.shape[0], k, "results")[:k]
        inv = decode_rows(tuple(self._points[idx].tolist()), tb.degrees, self._pos, self._p)
        coeffs = self._mix(inv, R[:k])
        rows, cols = R.shape[1:]
        C = coeffs.reshape(tb.n_b, tb.n_a, rows, cols).transpose(1, 2, 0, 3)
        C = C.reshape(tb.n_a * rows, tb.n_b * cols)
        if self._swap:
            C = C.T
        m = check_int("shape[0]", shape[0], low=0, high=C.shape[0])
        q = check_int("shape[1]", shape[1], low=0, high=C.shape[1])
        return np.ascontiguousarray(C[:m, :q])


def least_threshold(ka: int, kb: int, t: int) -> int:
    """The smallest threshold among the candidate tables (both orientations)."""
    return min(tb.threshold for K, L in ((ka, kb), (kb, ka)) for tb in secure_tables(K, L, t))

