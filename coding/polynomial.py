"""Polynomial-type codes for straggler-tolerant matrix multiplication.

``A`` is cut into ``ka`` row blocks and ``B`` into ``kb`` column blocks. Worker ``i`` gets

    A~_i = sum_j EA[i, j] A_j,        B~_i = sum_l EB[i, l] B_l,

and returns ``A~_i @ B~_i = sum_{j,l} EA[i, j] EB[i, l] A_j B_l``. Any ``ka*kb`` results
determine the ``ka*kb`` blocks ``A_j B_l`` of ``C = A @ B`` (the recovery threshold of Yu,
Maddah-Ali and Avestimehr, "Polynomial codes: an optimal design for high-dimensional coded
matrix multiplication", NeurIPS 2017): decoding inverts the ``ka*kb`` rows of the
Khatri-Rao matrix ``M[i, j + l*ka] = EA[i, j] EB[i, l]`` of the workers that answered.

Over GF(p) the code is Yu et al.'s: ``EA[i, j] = x_i^j``, ``EB[i, l] = x_i^(l*ka)`` at
``x_i = i + 1``, and interpolation is exact.

Over the reals that monomial basis is hopeless: its Vandermonde systems lose digits
exponentially in ``n`` (worst relative error 0.57 at ``ka*kb = 16, n = 32``). The real
construction was chosen by measurement (``python -m benchmarks.polynomial``, table in
``docs/matmul.md``) among the monomial basis, the Chebyshev basis (Fahim and Cadambe 2019),
unit-circle evaluation (the conditioning of Ramamoorthy and Tang's rotation-matrix
embedding) and random Khatri-Rao-product codes (Subramaniam, Heidarzadeh and Narayanan
2019). The default, ``construction="khatri-rao"``, draws ``EA`` and ``EB`` i.i.d. Gaussian
from a seed chosen per ``(n, ka, kb)`` (:func:`best_seed`). It needs no complex arithmetic
and meets the 1e-9 target for every ``ka*kb <= 16`` and ``n <= 32`` on all windows and
2,000 random erasure patterns, on every OpenBLAS kernel (figures in ``docs/matmul.md``).
``"chebyshev"`` and ``"monomial"`` stay selectable as baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .errors import DuplicateIndexError, NotEnoughShardsError
from .gfp import MAX_PRIME, as_gfp, galois_field, gfp_inv, gfp_matmul, gfp_vandermonde
from .validate import check_int, check_prime

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


REAL_CONSTRUCTIONS = ("khatri-rao", "chebyshev", "monomial")
_SEED_TRIES = 16
_SEED_PATTERNS = 256


def _khatri_rao_rows(EA: np.ndarray, EB: np.ndarray, idx) -> np.ndarray:
    """Decoding matrix of the workers ``idx``: row i is ``EA[i, j] * EB[i, l]`` at ``j + l*ka``."""
    M = EA[idx][:, None, :] * EB[idx][:, :, None]  # (r, kb, ka): column j + l*ka
    return M.reshape(M.shape[0], -1)


def _gaussian_encoders(n: int, ka: int, kb: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Plain i.i.d. Gaussians, no LAPACK: numpy's generator gives the same bits on every CPU
    # and BLAS kernel, so an encoder on one machine and a decoder on another agree exactly.
    rng = np.random.default_rng([0x6B6F666E, n, ka, kb, seed])
    return rng.standard_normal((n, ka)), rng.standard_normal((n, kb))


def _worst_cond(EA: np.ndarray, EB: np.ndarray, k: int, rng: np.random.Generator) -> float:
    n = EA.shape[0]
    wins = (np.arange(k)[None, :] + np.arange(n)[:, None]) % n
    rand = np.argsort(rng.random((_SEED_PATTERNS, n)), axis=1)[:, :k]
    pats = np.concatenate([wins, rand])
    M = (EA[pats][:, :, None, :] * EB[pats][:, :, :, None]).reshape(len(pats), k, k)
    with np.errstate(all="ignore"):
        c = np.linalg.cond(M)
    return float(np.nanmax(np.where(np.isfinite(c), c, np.inf)))


@lru_cache(maxsize=256)
def best_seed(n: int, ka: int, kb: int) -> int:
    """The Khatri-Rao generator seed of the real ``PolynomialCode(n, ka, kb)``.

    For ``ka*kb <= 16`` and ``n <= 32`` it comes from the table that
    ``scripts/make_khatri_rao_seeds.py`` made (the best of 32 seeds on every window plus
    1,000 random patterns). Elsewhere it is the best of 16 seeds on every cyclic window
    plus 256 random patterns, chosen here (seeded, so every machine picks the same one;
    about 0.1 s at ``n = 32``, cached).
    """
    from ._khatri_rao_seeds import SEEDS

    if ka * kb >= n:
        return 0
    if (n, ka, kb) in SEEDS:
        return SEEDS[(n, ka, kb)]
    rng = np.random.default_rng(0)
    scored = [(_worst_cond(*_gaussian_encoders(n, ka, kb, s), ka * kb, rng), s)
              for s in range(_SEED_TRIES)]
    return min(scored)[1]


@lru_cache(maxsize=64)
def _real_encoders(construction: str, n: int, ka: int, kb: int,
                   seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(EA, EB)``, shapes (n, ka) and (n, kb), read-only."""
    if construction == "khatri-rao":
        EA, EB = _gaussian_encoders(n, ka, kb, best_seed(n, ka, kb) if seed is None else seed)
    else:
        i = np.arange(n)
        ang = (np.pi * (2 * i + 1) / (2 * n))[:, None]
        if construction == "chebyshev":
            EA, EB = np.cos(ang * np.arange(ka)), np.cos(ang * (ka * np.arange(kb)))
        else:
            x = np.cos(ang)
            EA, EB = x ** np.arange(ka), x ** (ka * np.arange(kb))
    EA.setflags(write=False)
    EB.setflags(write=False)
    return EA, EB


@lru_cache(maxsize=256)
def _real_inverse(construction: str, n: int, ka: int, kb: int, seed: int | None,
                  idx: tuple[int, ...]) -> np.ndarray:
    EA, EB = _real_encoders(construction, n, ka, kb, seed)
    return np.linalg.inv(_khatri_rao_rows(EA, EB, list(idx)))


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
    construction : {"khatri-rao", "chebyshev", "monomial"}, optional
        The real encoder (module docstring); default ``"khatri-rao"``. Over GF(p) only
        ``"monomial"`` (the default there).
    seed : int, optional
        The Khatri-Rao generator seed; default :func:`best_seed` ``(n, ka, kb)``.

    Notes
    -----
    :meth:`encode` returns two stacked arrays, ``(A_shares, B_shares)`` with shapes
    ``(n, ceil(m/ka), d)`` and ``(n, d, ceil(q/kb))``; worker ``i`` multiplies
    ``A_shares[i] @ B_shares[i]`` (over GF(p) use :meth:`worker_product`). Rows of ``A`` and
    columns of ``B`` that do not divide evenly are zero-padded; :meth:`decode` removes the
    padding to the ``shape`` it is given (the job's metadata), never to the shape of an
    earlier :meth:`encode`. Real inputs must be finite (NaN or inf is refused at encode).

    Over the reals the default construction decodes within 1e-9 relative for every
    ``ka*kb <= 16`` and ``n <= 32`` (measured, module docstring); larger codes are accepted,
    and ``python -m benchmarks.polynomial --max-k K --max-n N`` measures them.
    """

    def __init__(self, n: int, ka: int, kb: int, *, field: object = None,
                 construction: str | None = None, seed: int | None = None):
        self._ka = check_int("ka", ka, low=1)
        self._kb = check_int("kb", kb, low=1)
        self._p = _field_prime(field)
        k = self._ka * self._kb
        high = None if self._p is None else self._p - 1
        self._n = check_int("n", n, low=k, low_name="ka*kb", high=high, high_name="p-1")
        self._field = field if isinstance(field, type) else None
        self._seed = None if seed is None else check_int("seed", seed, low=0)
        if self._p is None:
            construction = "khatri-rao" if construction is None else construction
            if construction not in REAL_CONSTRUCTIONS:
                raise ValueError(f"Argument 'construction' must be one of "
                                 f"{', '.join(REAL_CONSTRUCTIONS)} over the reals, "
                                 f"not {construction!r}.")
            i = np.arange(self._n)
            self._points = (None if construction == "khatri-rao"
                            else np.cos(np.pi * (2 * i + 1) / (2 * self._n)))
        else:
            construction = "monomial" if construction is None else construction
            if construction != "monomial":
                raise ValueError(f"Argument 'construction' must be 'monomial' over GF(p), "
                                 f"not {construction!r}.")
            self._points = np.arange(1, self._n + 1, dtype=np.int64)
        self._construction = construction

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
    def construction(self) -> str:
        """``'khatri-rao'``, ``'chebyshev'`` or ``'monomial'`` (the only one over GF(p))."""
        return self._construction

    @property
    def seed(self) -> int | None:
        """The Khatri-Rao generator seed (chosen by :func:`best_seed` unless given), else None."""
        if self._construction != "khatri-rao":
            return None
        return best_seed(self._n, self._ka, self._kb) if self._seed is None else self._seed

    @property
    def points(self) -> np.ndarray | None:
        """The evaluation point of each worker (a copy), or ``None`` for ``'khatri-rao'``."""
        return None if self._points is None else self._points.copy()

    def encoders(self) -> tuple[np.ndarray, np.ndarray]:
        """The encoding matrices ``(EA, EB)``, shapes (n, ka) and (n, kb) (copies).

        Worker ``i`` receives ``sum_j EA[i, j] A_j`` and ``sum_l EB[i, l] B_l``.
        """
        EA, EB = self._encoders()
        return EA.copy(), EB.copy()

    def __repr__(self) -> str:
        f = "reals" if self._p is None else f"GF({self._p})"
        return (f"PolynomialCode(n={self._n}, ka={self._ka}, kb={self._kb}, field={f}, "
                f"construction={self._construction!r})")

    def _as_matrix(self, name: str, X: object) -> np.ndarray:
        if self._p is None:
            arr = np.asarray(X, dtype=np.float64)
            if not np.isfinite(arr).all():
                raise ValueError(f"Argument {name!r} must be finite; it holds NaN or inf.")
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
        return self._mix(EA, A_blocks), self._mix(EB, B_blocks)

    def _encoders(self) -> tuple[np.ndarray, np.ndarray]:
        ka, kb = self._ka, self._kb
        if self._p is None:
            return _real_encoders(self._construction, self._n, ka, kb, self._seed)
        x = self._points
        EA = gfp_vandermonde(x, ka, self._p)
        powers = gfp_vandermonde(x, ka * (kb - 1) + 1, self._p)
        return EA, powers[:, :: ka]

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
        shape: tuple[int, int],
    ) -> np.ndarray:
        """Recover ``C = A @ B`` from any ``ka*kb`` worker results.

        Parameters
        ----------
        results : array_like, shape (r, rows, cols), or a list of r matrices
            ``A_shares[i] @ B_shares[i]`` for the workers in ``indices``.
        indices : sequence of int
            The distinct worker indices the results came from, ``r >= ka*kb``. Extra
            results beyond the threshold are ignored.
        shape : (m, q)
            Shape of ``C`` (from the job's metadata), to remove the block padding; the
            padded product is ``(ka * rows, kb * cols)``.

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
        if self._p is None:
            inv = _real_inverse(self._construction, self._n, self._ka, self._kb, self._seed,
                                tuple(idx))
        else:
            inv = _gfp_inverse(tuple(self._points[idx].tolist()), self._p)
        coeffs = self._mix(inv, R.astype(np.float64) if self._p is None else R)
        rows, cols = R.shape[1:]
        # Coefficient j + l*ka is the block A_j B_l at block position (j, l).
        C = coeffs.reshape(self._kb, self._ka, rows, cols).transpose(1, 2, 0, 3)
        C = C.reshape(self._ka * rows, self._kb * cols)
        m = check_int("shape[0]", shape[0], low=0, high=C.shape[0])
        q = check_int("shape[1]", shape[1], low=0, high=C.shape[1])
        return C[:m, :q]
