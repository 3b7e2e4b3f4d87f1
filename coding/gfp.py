"""Exact arithmetic over the prime field GF(p) on plain int64 arrays, at BLAS speed.

The codes in :mod:`coding` spend almost all their time in one operation: a small
coefficient matrix times a wide payload, or a payload-sized matrix product. galois does
these exactly but with a JIT-compiled triple loop that runs 70-170x slower than a float64
BLAS ``A @ B``. :func:`gfp_matmul` instead runs the product in float64 BLAS, where every
integer below 2^53 is exact, and reduces mod p only when a partial sum could leave that
range ("delayed reduction", as in FFLAS-FFPACK: Dumas, Giorgi and Pernet, 2008).

For large p a single term ``a*b`` can be close to 2^53 already, so the left operand is
split into ``L`` limbs of ``s`` bits, ``A = sum_i A_i 2^(s*i)``; each limb product
``A_i @ B`` then has terms below ``2^s * p`` and long inner chunks stay exact. The limbs are
stacked into one tall matrix so BLAS sees a single large call, and the results are put
back together by Horner's rule mod p. When the inner dimension is so long that even that
is not enough, both operands are split, or the inner dimension is cut into chunks; a small
cost model picks the cheapest plan (:func:`matmul_plan`).

Everything here takes and returns ``int64`` arrays with entries in ``[0, p)``; galois
``FieldArray`` inputs are accepted and viewed as integers. Small exact inverses
(:func:`gfp_inv`) use Gauss-Jordan elimination on int64 rather than galois, because
building a galois field class costs about a second per prime.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from .blas import single_thread_blas
from .validate import check_int, check_prime

__all__ = [
    "MAX_PRIME",
    "MatmulPlan",
    "SKINNY_BLOCK_BYTES",
    "as_gfp",
    "galois_field",
    "gfp_inv",
    "gfp_matmul",
    "gfp_random",
    "gfp_vandermonde",
    "skinny_matmul",
    "skinny_shift",
    "matmul_plan",
]

#: Largest supported modulus: products of two reduced entries must fit int64 exactly.
MAX_PRIME = 2**31 - 1

# Every float64 partial sum stays at most this, so that ``x - p*rint(x/p)`` is exact
# (``p*rint(x/p)`` then never exceeds 2^53 either).
_EXACT = 2**52

# Cost of one reduction pass over an output element, in units of one inner-dimension
# multiply-add inside BLAS; measured roughly (an elementwise pass is ~50-100x slower per
# element than a DGEMM FMA). Only used to rank plans.
_REDUCE_COST = 64

# The skinny path (a few coefficient rows times a wide payload, as in every code's encode
# and decode): limits on the left operand, the least payload width worth it, and the bytes
# of one payload column block (a block, its products and temporaries stay in L2).
_SKINNY_ROWS = 32
_SKINNY_INNER = 64
_SKINNY_MIN_COLS = 2048
SKINNY_BLOCK_BYTES = 1 << 20


@functools.cache
def galois_field(p: int):
    """Return the galois ``GF(p)`` class (cached; the first call per prime takes ~1 s).

    Parameters
    ----------
    p : int
        A prime.
    """
    import galois

    p = check_prime("p", p)
    return galois.GF(p)


def as_gfp(name: str, X: object, p: int) -> np.ndarray:
    """Return ``X`` as an int64 array with entries in ``[0, p)``, or raise naming ``name``.

    Accepts integer numpy arrays, galois ``FieldArray`` instances and nested sequences of
    ints. Floats are refused rather than rounded silently.
    """
    if isinstance(X, np.ndarray):
        arr = X.view(np.ndarray)  # a galois FieldArray becomes its integer payload
    else:
        arr = np.asarray(X)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Argument {name!r} must be an integer array, not dtype {arr.dtype}.")
    if arr.size:
        # unsigned arrays cannot go below zero: skip that pass over a wide payload
        lo = 0 if arr.dtype.kind == "u" else int(arr.min())
        hi = int(arr.max())
        if lo < 0 or hi >= p:
            bad = lo if lo < 0 else hi
            raise ValueError(f"Argument {name!r} must have entries in [0, p={p}), not {bad}.")
    return arr.astype(np.int64, copy=False)


@dataclass(frozen=True)
class MatmulPlan:
    """How :func:`gfp_matmul` splits a product for a given prime and inner dimension.

    Attributes
    ----------
    limbs_a, limbs_b : int
        Number of limbs the left/right operand is split into (1 = not split).
    shift : int
        Limb width in bits (the left operand's when only it is split).
    chunk : int
        Longest inner-dimension run whose float64 partial sums stay exact.
    n_chunks : int
        Number of inner-dimension chunks for this product.
    """

    limbs_a: int
    limbs_b: int
    shift: int
    chunk: int
    n_chunks: int


def _candidates(p: int):
    """Yield (limbs_a, limbs_b, shift, largest term, headroom) for each split considered.

    When only the left operand is split (``limbs_b == 1``), the right operand is used in the
    balanced range ``(-p/2, p/2]``, which halves every term and doubles the exact chunk.
    """
    bits = (p - 1).bit_length()
    half = p // 2
    yield 1, 1, bits, (p - 1) * half, 0
    for la in range(2, 5):
        s = -(-bits // la)
        if bits + s > 50:  # the Horner step acc*2^s + x must stay far below 2^52
            continue
        # Horner adds an unreduced limb product to acc*2^s with |acc| < p: leave headroom.
        yield la, 1, s, ((1 << s) - 1) * half, p << s
    for L in range(2, 5):
        s = -(-bits // L)
        if bits + s > 50:
            continue
        yield L, L, s, ((1 << s) - 1) ** 2, 0


def matmul_plan(p: int, k: int) -> MatmulPlan:
    """Choose the limb split and chunking for a GF(p) product with inner dimension k.

    Parameters
    ----------
    p : int
        The prime modulus, ``2 <= p <= 2**31 - 1``.
    k : int
        The inner dimension of the product.

    Returns
    -------
    MatmulPlan
        The cheapest exact plan under a simple cost model (BLAS work times the number of
        limb products, plus one reduction pass per chunk).
    """
    p = check_prime("p", p, high=MAX_PRIME)
    k = check_int("k", k, low=0)
    best = None
    for la, lb, s, term, headroom in _candidates(p):
        chunk = (_EXACT - headroom) // max(1, term)
        if chunk < 1:  # even one product would be inexact in float64
            continue
        n_chunks = max(1, -(-k // chunk))
        plan = MatmulPlan(la, lb, s, int(min(chunk, max(k, 1))), n_chunks)
        # BLAS work per output element is ~k multiply-adds per limb product; each chunk
        # adds about one reduction pass per limb product.
        cost = la * lb * (max(k, 1) + _REDUCE_COST * n_chunks)
        if best is None or cost < best[0]:
            best = (cost, plan)
    return best[1]


def _reduce(x: np.ndarray, p: int) -> np.ndarray:
    """Reduce float64 integers with ``|x| <= 2^52`` to ``(-p, p)``, in place.

    ``x * (1/p)`` is within far less than 1/2 of the true quotient, so ``rint`` returns the
    nearest integer or, on a near-tie, its neighbour; either way the remainder lies in
    ``(-p, p)``. The sign is fixed once, at the end (:func:`_to_range`).
    """
    q = np.multiply(x, 1.0 / p)
    np.rint(q, out=q)
    q *= p
    x -= q
    return x


def _to_range(x: np.ndarray, p: int) -> np.ndarray:
    """Map float64 values in ``(-p, p)`` to int64 in ``[0, p)`` (overwrites ``x``)."""
    v = _float_to_int(x)
    v += (v >> 63) & p
    return v


# Adding 1.5 * 2^52 to an integer-valued float64 x with |x| < 2^51 puts x in the low
# mantissa bits, so the int64 view minus the constant's bits is x: a float-to-int cast
# without the conversion instruction (and ``where=`` masks, which are slow on random signs).
_MAGIC = 1.5 * 2.0**52
_MAGIC_BITS = int(np.array(_MAGIC).view(np.int64))


def _float_to_int(x: np.ndarray) -> np.ndarray:
    """View integer-valued float64 ``x`` (``|x| < 2^51``) as int64, in place."""
    x += _MAGIC
    v = x.view(np.int64)
    v -= _MAGIC_BITS
    return v


def _split_rows(X: np.ndarray, n: int, s: int) -> np.ndarray:
    """Float64 limbs of non-negative int64 ``X`` (m, k), stacked as (n*m, k), low limb first.

    Works in float64, where scaling by a power of two and ``floor`` are exact.
    """
    m = X.shape[0]
    if n == 1:
        return X.astype(np.float64)
    out = np.empty((n * m,) + X.shape[1:], dtype=np.float64)
    limb = np.empty(X.shape, dtype=np.int64)
    mask = (1 << s) - 1
    for i in range(n):
        np.right_shift(X, s * i, out=limb)
        if i < n - 1:
            np.bitwise_and(limb, mask, out=limb)
        out[i * m : (i + 1) * m] = limb
    return out


def _horner_rows(P: np.ndarray, m: int, la: int, s: int, p: int) -> np.ndarray:
    """C = sum_i 2^(s*i) P_i mod p for row blocks P_i, reducing only at each Horner step."""
    acc = _reduce(P[(la - 1) * m : la * m], p)
    for i in range(la - 2, -1, -1):
        acc *= 2.0**s
        acc += P[i * m : (i + 1) * m]
        _reduce(acc, p)
    return acc


def _horner_degrees(P: np.ndarray, m: int, n: int, L: int, s: int, p: int) -> np.ndarray:
    """Both operands split into L limbs: C = sum_d 2^(s*d) sum_{i+j=d} P_ij mod p."""
    _reduce(P, p)
    acc = None
    for d in range(2 * L - 2, -1, -1):
        q = None
        for i in range(max(0, d - L + 1), min(L, d + 1)):
            block = P[i * m : (i + 1) * m, (d - i) * n : (d - i + 1) * n]
            q = block.copy() if q is None else q + block
        if acc is None:
            acc = q
        else:
            acc *= 2.0**s
            acc += q
        _reduce(acc, p)
    return acc


def _matmul_float(A: np.ndarray, B: np.ndarray, plan: MatmulPlan, p: int) -> np.ndarray:
    """Run ``plan`` on validated 2-D int64 operands; float64 result in (-p, p)."""
    m, k = A.shape
    n = B.shape[1]
    la, lb, s = plan.limbs_a, plan.limbs_b, plan.shift
    Af = _split_rows(A, la, s)
    if lb == 1:  # balanced range (-p/2, p/2]: see _candidates
        Bf = B.astype(np.float64)
        Bf -= (Bf > p // 2) * float(p)
    else:
        Bf = _split_rows(B.T, lb, s).T
    if plan.n_chunks == 1:
        P = Af @ Bf
    else:
        P = None
        for k0 in range(0, k, plan.chunk):
            part = _reduce(Af[:, k0 : k0 + plan.chunk] @ Bf[k0 : k0 + plan.chunk], p)
            P = part if P is None else _reduce(np.add(P, part, out=P), p)
    if lb > 1:
        return _horner_degrees(P, m, n, la, s, p)
    if la > 1:
        return _horner_rows(P, m, la, s, p)
    return _reduce(P, p)


def _is_skinny(m: int, k: int, n: int) -> bool:
    return m <= _SKINNY_ROWS and k <= _SKINNY_INNER and n >= _SKINNY_MIN_COLS


@functools.lru_cache(maxsize=64)
def skinny_shift(p: int, k: int) -> tuple[int, int]:
    """Fewest limbs ``la`` of width ``s`` for a left operand with inner dimension ``k``.

    Each limb product is a sum of ``k`` terms below ``2^s * p``, and a Horner step adds one
    to ``acc * 2^s`` with ``|acc| < p``; both must stay within ``2^52`` (:func:`_reduce`).
    """
    bits = (p - 1).bit_length()
    for la in range(1, bits + 1):
        s = -(-bits // la)
        if k * ((1 << s) - 1) * (p - 1) + (p << s) <= _EXACT:
            return la, s
    raise ValueError(f"Argument 'A' has an inner dimension k={k} too long for the skinny path.")


def skinny_matmul(A: np.ndarray, B: np.ndarray, p: int, out: np.ndarray, *,
                   width: int | None = None, work: dict | None = None) -> np.ndarray:
    """``out[...] = A @ B mod p`` for a small ``A`` (m, k) and a wide ``B`` (k, n).

    The generic plan is tuned for square products; here the work is one pass over ``B``,
    so this streams ``B`` in cache-resident column blocks: each block is converted to
    float64 (skipped if it already is), multiplied by the ``la`` limbs of ``A`` stacked
    into one ``(la*m, k)`` matrix on single-threaded BLAS (threads only add hand-off cost
    to a memory-bound product), recombined by Horner's rule with one reduction per limb,
    and written to ``out`` in ``[0, p)``.

    Parameters
    ----------
    A : numpy.ndarray of int64, shape (m, k)
        Entries in ``[0, p)`` (validated by the caller).
    B : numpy.ndarray, shape (k, n)
        Integer entries in ``[0, p)``, of any integer dtype or float64 (trusted).
    p : int
        The prime modulus.
    out : numpy.ndarray, shape (m, n)
        Any integer or float dtype that holds ``[0, p)``; returned.
    width : int, optional
        Columns per block (default: the stacked limb products fill 1 MiB); callers that
        stream their own blocks pass their block width, so each call is one block.
    work : dict, optional
        Scratch arrays kept between calls by such callers (one dict per caller and
        thread): a block's temporaries are then allocated once, not per call.
    """
    m, k = A.shape
    n = B.shape[1]
    la, s = skinny_shift(p, k)
    mask = (1 << s) - 1
    # high limb first, so Horner runs down the stacked rows
    Af = np.concatenate([(A >> (s * i)) & mask for i in range(la - 1, -1, -1)]).astype(np.float64)
    if width is None:
        width = max(256, SKINNY_BLOCK_BYTES // (8 * max(k, la * m)))
    shift, inv_p = float(1 << s), 1.0 / p
    key = (la * m, m, width)
    if work is not None and work.get("key") == key:
        P, q, sign = work["bufs"]
    else:
        P, q, sign = np.empty((la * m, width)), np.empty((m, width)), np.empty((m, width), dtype=np.int64)
        if work is not None:
            work["key"], work["bufs"] = key, (P, q, sign)
    with single_thread_blas():
        for c0 in range(0, n, width):
            w = min(width, n - c0)
            Bb = B[:, c0 : c0 + w]
            if Bb.dtype != np.float64:
                Bb = Bb.astype(np.float64)
            Pb, qb, sb = (P, q, sign) if w == width else (P[:, :w], q[:, :w], sign[:, :w])
            np.matmul(Af, Bb, out=Pb)
            acc = Pb[:m]
            for i in range(la):
                if i:
                    acc *= shift
                    acc += Pb[i * m : (i + 1) * m]
                np.multiply(acc, inv_p, out=qb)  # _reduce, without its temporary
                np.rint(qb, out=qb)
                qb *= p
                acc -= qb
            v = _float_to_int(acc)  # (-p, p) -> [0, p)
            np.right_shift(v, 63, out=sb)
            sb &= p
            v += sb
            out[:, c0 : c0 + w] = v
    return out


def gfp_matmul(A: object, B: object, p: int) -> np.ndarray:
    """Exact matrix product over GF(p), computed with float64 BLAS and delayed reduction.

    Parameters
    ----------
    A : array_like of int, shape (m, k) or (k,)
        Entries in ``[0, p)``; a galois ``FieldArray`` is accepted.
    B : array_like of int, shape (k, n) or (k,)
        Entries in ``[0, p)``.
    p : int
        The prime modulus, ``2 <= p <= 2**31 - 1``.

    Returns
    -------
    numpy.ndarray of int64
        ``A @ B mod p`` with entries in ``[0, p)``, with the shape ``np.matmul`` gives
        (1-D operands drop their axis). An empty inner dimension gives zeros.

    Notes
    -----
    A small coefficient matrix times a wide payload (at most ``_SKINNY_ROWS`` rows and
    ``_SKINNY_INNER`` columns, at least ``_SKINNY_MIN_COLS`` payload columns) takes a
    streaming path instead: see :func:`skinny_matmul`.

    At ``p = 2**25 - 39`` the left operand is split into two 13-bit limbs, so the cost is
    about two float64 products plus a few elementwise passes; for ``p < 2**26`` and short
    inner dimensions it is a single product. See :func:`matmul_plan`.
    """
    p = check_prime("p", p, high=MAX_PRIME)
    A = as_gfp("A", A, p)
    B = as_gfp("B", B, p)
    if A.ndim not in (1, 2) or B.ndim not in (1, 2):
        raise ValueError(
            f"Arguments 'A' and 'B' must be 1-D or 2-D, not shapes {A.shape} and {B.shape}."
        )
    A2 = A[None, :] if A.ndim == 1 else A
    B2 = B[:, None] if B.ndim == 1 else B
    if A2.shape[1] != B2.shape[0]:
        raise ValueError(
            f"Arguments 'A' and 'B' have shapes {A.shape} and {B.shape}, which do not multiply."
        )
    m, k = A2.shape
    n = B2.shape[1]
    if k == 0 or m == 0 or n == 0:
        C = np.zeros((m, n), dtype=np.int64)
    elif _is_skinny(m, k, n):
        C = skinny_matmul(A2, B2, p, np.empty((m, n), dtype=np.int64))
    else:
        C = _to_range(_matmul_float(A2, B2, matmul_plan(p, k), p), p)
    if A.ndim == 1:
        C = C[0]
    if B.ndim == 1:
        C = C[..., 0]
    return C


def gfp_inv(M: object, p: int) -> np.ndarray:
    """Exact inverse of a small square matrix over GF(p), by Gauss-Jordan elimination.

    Parameters
    ----------
    M : array_like of int, shape (k, k)
        Entries in ``[0, p)``.
    p : int
        The prime modulus, ``2 <= p <= 2**31 - 1``.

    Returns
    -------
    numpy.ndarray of int64, shape (k, k)

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``M`` is singular mod p.
    """
    p = check_prime("p", p, high=MAX_PRIME)
    M = as_gfp("M", M, p)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"Argument 'M' must be a square matrix, not shape {M.shape}.")
    k = M.shape[0]
    W = np.concatenate([M, np.eye(k, dtype=np.int64)], axis=1)
    for c in range(k):
        nz = np.flatnonzero(W[c:, c])
        if nz.size == 0:
            raise np.linalg.LinAlgError(f"Matrix is singular over GF({p}).")
        r = c + int(nz[0])
        if r != c:
            W[[c, r]] = W[[r, c]]
        W[c] = W[c] * pow(int(W[c, c]), -1, p) % p
        f = W[:, c].copy()
        f[c] = 0
        # int64 products stay below p^2 < 2^62.
        W = (W - (f[:, None] * W[c][None, :]) % p) % p
    return W[:, k:].copy()


def gfp_vandermonde(points: object, k: int, p: int) -> np.ndarray:
    """Vandermonde matrix ``V[i, j] = points[i]**j mod p``, shape (len(points), k)."""
    p = check_prime("p", p, high=MAX_PRIME)
    k = check_int("k", k, low=0)
    x = as_gfp("points", points, p).reshape(-1)
    V = np.ones((x.size, k), dtype=np.int64)
    for j in range(1, k):
        V[:, j] = V[:, j - 1] * x % p
    return V


def gfp_random(shape: int | tuple[int, ...], p: int, rng: np.random.Generator | None = None):
    """Uniform random elements of GF(p) as int64.

    Parameters
    ----------
    shape : int or tuple of int
        Output shape.
    p : int
        The prime modulus, ``2 <= p <= 2**31 - 1``.
    rng : numpy.random.Generator, optional
        For reproducible tests. By default the bytes come from ``os.urandom`` (the
        operating system's CSPRNG) and are mapped to ``[0, p)`` by rejection sampling, so
        the result is exactly uniform; a ``Generator`` is not a CSPRNG and must not be used
        for masks that protect real data.

    Returns
    -------
    numpy.ndarray of int64
    """
    p = check_prime("p", p, high=MAX_PRIME)
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"Argument 'rng' must be a numpy Generator or None, not {rng!r}.")
        return rng.integers(0, p, size=shape, dtype=np.int64)
    shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    count = int(np.prod(shape, dtype=np.int64))
    # p <= 2^31 - 1: draw bits-bit values from 4 random bytes each and reject those >= p
    # (only 2^31 - 1 itself for the Mersenne prime), in bulk
    bits = (p - 1).bit_length()
    mask = np.uint32((1 << bits) - 1)
    out = np.empty(count, dtype=np.int64)
    have = 0
    while have < count:
        missing = count - have
        want = missing + missing * ((1 << bits) - p) // p + 64
        raw = np.frombuffer(os.urandom(4 * want), dtype=np.uint32) & mask
        good = raw[:missing]
        if int(good.max()) >= p:  # rare for a prime just below a power of two
            good = raw[raw < p][:missing]
        out[have : have + good.size] = good
        have += good.size
    return out.reshape(shape)
