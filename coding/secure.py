"""T-private coded matrix multiplication over GF(p).

A polynomial code (:class:`coding.polynomial.PolynomialCode`) hides nothing: a single
worker's input ``A~_i = sum_j A_j x_i^j`` is a known mix of the data. Secure polynomial
codes add random masks in extra coefficients so that any ``t`` colluding workers see
uniformly random inputs (Yang and Lee, "Secure distributed computing with straggling
servers using polynomial codes", IEEE TIFS 2019; the construction surveyed in the edge
coded-computing study). With ``P = ka + t``:

    A~(x) = sum_{j<ka} A_j x^j + sum_{j<t} R_j x^(ka + j)
    B~(x) = sum_{l<kb} B_l x^(l*P) + sum_{j<t} S_j x^(kb*P - t + j)

Product degrees: ``A~`` covers ``0..P-1`` and ``B_l`` shifts it by ``l*P``, so ``A_j B_l``
lands alone on degree ``j + l*P`` and the ``R_j B_l`` terms fill degrees ``ka..P-1`` of
each period. The ``S`` masks start at ``kb*P - t``, just after the last wanted degree
``(kb-1)*P + ka - 1``, so their products only touch higher degrees. The top degree is
``(P-1) + (kb*P - 1) = (ka+t)(kb+1) - 2``, hence the **recovery threshold is
``(ka+t)(kb+1) - 1``** results, and the top coefficient ``R_{t-1} S_{t-1}`` is generically
nonzero, so one fewer result does not determine the product.

Privacy: ``t`` workers see ``A~`` at ``t`` distinct nonzero points; the mask part is
``diag(x_i^ka) V`` times ``R`` with ``V`` a ``t x t`` Vandermonde matrix, which is
invertible, so uniform ``R`` makes the view uniform whatever ``A`` is (likewise for ``B~``
with ``S``, independently). ``t = 0`` is refused: use :class:`PolynomialCode` then.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .gfp import MAX_PRIME, as_gfp, galois_field, gfp_inv, gfp_matmul, gfp_random, gfp_vandermonde
from .polynomial import _check_indices, split_blocks
from .validate import check_int, check_prime

__all__ = ["SecureMatMulCode"]


@lru_cache(maxsize=256)
def _wanted_inverse(points: tuple[int, ...], p: int, wanted: tuple[int, ...]) -> np.ndarray:
    V = gfp_vandermonde(list(points), len(points), p)
    return gfp_inv(V, p)[list(wanted)]


class SecureMatMulCode:
    """T-private polynomial code for ``C = A @ B`` over GF(p).

    Parameters
    ----------
    n : int
        Number of workers, ``threshold <= n <= p - 1``.
    ka, kb : int
        Row blocks of ``A`` and column blocks of ``B``, each at least 1.
    t : int
        Number of colluding workers that learn nothing, at least 1.
    p : int
        The prime modulus, at most ``2**31 - 1``.

    Notes
    -----
    Recovery threshold ``(ka + t) * (kb + 1) - 1`` (derivation in the module docstring).
    :meth:`encode` returns ``(A_shares, B_shares)`` stacked as ``(n, ceil(m/ka), d)`` and
    ``(n, d, ceil(q/kb))``; :meth:`decode` unpads to the ``shape`` it is given (the job's
    metadata), never to the shape of an earlier encode. :class:`coding.gasp.GASPCode` has a
    smaller threshold for ``t >= 2`` and picks the better orientation.
    """

    def __init__(self, n: int, ka: int, kb: int, t: int, *, p: int):
        self._p = check_prime("p", p, high=MAX_PRIME)
        self._ka = check_int("ka", ka, low=1)
        self._kb = check_int("kb", kb, low=1)
        self._t = check_int("t", t, low=1)
        self._threshold = (self._ka + self._t) * (self._kb + 1) - 1
        self._n = check_int(
            "n", n, low=self._threshold, low_name="(ka+t)*(kb+1)-1",
            high=self._p - 1, high_name="p-1",
        )
        self._points = np.arange(1, self._n + 1, dtype=np.int64)
        period = self._ka + self._t
        self._a_deg = np.arange(period)
        self._b_deg = np.concatenate([
            period * np.arange(self._kb),
            self._kb * period - self._t + np.arange(self._t),
        ])
        self._wanted = tuple(
            j + c * period for c in range(self._kb) for j in range(self._ka)
        )

    @property
    def n(self) -> int:
        """Number of workers."""
        return self._n

    @property
    def k(self) -> int:
        """Recovery threshold (alias of :attr:`threshold`)."""
        return self._threshold

    @property
    def threshold(self) -> int:
        """Results needed to decode, ``(ka + t) * (kb + 1) - 1``."""
        return self._threshold

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
    def field(self) -> type:
        """The galois GF(p) class (built on first use, ~1 s)."""
        return galois_field(self._p)

    def __repr__(self) -> str:
        return (f"SecureMatMulCode(n={self._n}, ka={self._ka}, kb={self._kb}, t={self._t}, "
                f"p={self._p})")

    def _matrix(self, name: str, X: object) -> np.ndarray:
        arr = as_gfp(name, X, self._p)
        if arr.ndim != 2:
            raise ValueError(f"Argument {name!r} must be 2-D, not shape {arr.shape}.")
        return arr

    def _mix(self, coeffs: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        flat = blocks.reshape(blocks.shape[0], -1)
        out = gfp_matmul(coeffs, flat, self._p)
        return out.reshape((coeffs.shape[0],) + blocks.shape[1:])

    def encode(
        self, A: object, B: object, *, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``A`` (m, d) and ``B`` (d, q) with fresh random masks.

        Parameters
        ----------
        A, B : array_like of int
            Entries in ``[0, p)``.
        rng : numpy.random.Generator, optional
            Only for reproducible tests; by default the masks come from ``os.urandom``.

        Returns
        -------
        A_shares : numpy.ndarray of int64, shape (n, ceil(m/ka), d)
        B_shares : numpy.ndarray of int64, shape (n, d, ceil(q/kb))
        """
        A_blocks, B_blocks = self._blocks(A, B)
        R = gfp_random((self._t,) + A_blocks.shape[1:], self._p, rng)
        S = gfp_random((self._t,) + B_blocks.shape[1:], self._p, rng)
        return self._encode_with_masks(A_blocks, B_blocks, R, S)

    def _blocks(self, A: object, B: object) -> tuple[np.ndarray, np.ndarray]:
        A = self._matrix("A", A)
        B = self._matrix("B", B)
        return split_blocks(A, B, self._ka, self._kb, np.int64)

    def _encode_with_masks(self, A_blocks, B_blocks, R, S) -> tuple[np.ndarray, np.ndarray]:
        """Encode block stacks with given masks (tests and the privacy checks use this)."""
        powers = gfp_vandermonde(self._points, int(self._b_deg[-1]) + 1, self._p)
        EA = powers[:, self._a_deg]
        EB = powers[:, self._b_deg]
        return (self._mix(EA, np.concatenate([A_blocks, R])),
                self._mix(EB, np.concatenate([B_blocks, S])))

    def worker_product(self, a_share: object, b_share: object) -> np.ndarray:
        """What worker i computes: ``a_share @ b_share mod p``."""
        return gfp_matmul(self._matrix("a_share", a_share), self._matrix("b_share", b_share),
                          self._p)

    def decode(
        self,
        results: object,
        indices: Sequence[int],
        *,
        shape: tuple[int, int],
    ) -> np.ndarray:
        """Recover ``C = A @ B`` from any ``threshold`` worker results.

        Parameters
        ----------
        results : array_like, shape (r, rows, cols), or a list of r matrices
            Worker products for the workers in ``indices``.
        indices : sequence of int
            Distinct worker indices, ``r >= threshold``; extra results are ignored.
        shape : (m, q)
            Shape of ``C`` (from the job's metadata), to remove the block padding.

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
            raise ValueError(f"Argument 'results' must be 3-D (r, rows, cols), not {R.shape}.")
        k = self._threshold
        idx = _check_indices(indices, self._n, R.shape[0], k, "results")[:k]
        inv = _wanted_inverse(tuple(self._points[idx].tolist()), self._p, self._wanted)
        coeffs = self._mix(inv, R[:k])
        rows, cols = R.shape[1:]
        C = coeffs.reshape(self._kb, self._ka, rows, cols).transpose(1, 2, 0, 3)
        C = C.reshape(self._ka * rows, self._kb * cols)
        m = check_int("shape[0]", shape[0], low=0, high=C.shape[0])
        q = check_int("shape[1]", shape[1], low=0, high=C.shape[1])
        return C[:m, :q]
