"""Per-code adapters for coded matrix multiplication ``C = A @ B``.

An adapter turns the inputs into ``n`` subtasks ``(a_i, b_i)`` (worker ``i`` computes
``a_i @ b_i``), says when a set of finished subtasks is enough, and decodes ``C`` from
them. The arithmetic lives in :mod:`coding`; adapters only cut, pad and reassemble, so the
master and the tests share them without any I/O (as Flower keeps strategies apart from
transport).

=============  ===================================  ==================================
code           subtask ``i``                        decodable when
=============  ===================================  ==================================
uncoded        row block ``i`` of ``A`` times ``B``  all ``k`` blocks are in
replication    row block ``i mod k`` times ``B``     one copy of each of ``k`` blocks
mds            MDS-coded row block times ``B``       any ``k`` of ``n``
poly           polynomial-code shares                any ``ka*kb`` of ``n``
secure         T-private shares over GF(p)           any ``(ka+t)(kb+1)-1`` of ``n``
matdot         inner block ``A_j``/``B_j`` mixes      any ``2k-1`` of ``n``
secure-matdot  T-private MatDot shares over GF(p)    any ``2k+2t-1`` of ``n``
gasp           T-private GASP shares over GF(p)      the table's threshold (e.g. 27 at
                                                    ka=kb=4, t=2, against 29 for secure)
=============  ===================================  ==================================

``mds``, ``poly`` and ``matdot`` work over the reals (float64) or over GF(p); ``secure``,
``secure-matdot`` and ``gasp`` always work over GF(p), quantizing real inputs with
:class:`coding.quantize.Quantizer` (the product of two values with ``f`` fractional bits has
``2f``, so decoding dequantizes with ``2f``). MatDot codes split the inner dimension into
``k`` blocks: each worker does ``1/k`` of the work, as with ``mds`` at the same ``k``, but
returns a full ``m x q`` result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coding.errors import NotEnoughShardsError, OverflowRiskError
from coding.gasp import GASPCode, least_threshold
from coding.gfp import MAX_PRIME, as_gfp, galois_field, gfp_matmul
from coding.matdot import MatDotCode, SecureMatDotCode
from coding.polynomial import PolynomialCode
from coding.quantize import Quantizer
from coding.secure import SecureMatMulCode
from coding.validate import check_int, check_prime

__all__ = ["CODES", "DEFAULT_PRIME", "PRIVATE", "Encoded", "MatmulCode", "make_code", "worker_product",
           "choose_product_frac_bits"]

CODES = ("uncoded", "replication", "mds", "poly", "secure", "matdot", "secure-matdot", "gasp")
#: Codes whose workers see only masked shares over GF(p) (real inputs are quantized).
PRIVATE = ("secure", "secure-matdot", "gasp")
#: Codes whose subtasks are coded pairs (a_i, b_i) rather than row blocks times one B.
_PAIRED = ("poly", "matdot", *PRIVATE)

#: Default modulus of the secure code: the largest prime below 2^31 (widest quantized range).
DEFAULT_PRIME = 2**31 - 1


@dataclass(frozen=True)
class Encoded:
    """The subtasks of one job.

    Attributes
    ----------
    a : numpy.ndarray, shape (n, rows, d)
        Left operand of each subtask.
    b : numpy.ndarray, shape (n, d, cols) or (d, cols)
        Right operand of each subtask, or one operand shared by all (``shared_b``).
    shared_b : bool
        Whether every subtask multiplies by the same ``b``.
    shape : (m, q)
        Shape of the product ``C``.
    frac_bits : int or None
        Private codes with real inputs: the quantizer's fractional bits, which decoding
        needs (the product has ``2 * frac_bits``); ``None`` for exact inputs.
    """

    a: np.ndarray
    b: np.ndarray
    shared_b: bool
    shape: tuple[int, int]
    frac_bits: int | None = None

    def b_of(self, i: int) -> np.ndarray:
        """Right operand of subtask ``i``."""
        return self.b if self.shared_b else self.b[i]


def worker_product(a: np.ndarray, b: np.ndarray, p: int | None) -> np.ndarray:
    """What a worker computes: ``a @ b`` in float64, or exactly mod ``p``."""
    if p is None:
        return np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64)
    return gfp_matmul(a, b, p)


def choose_product_frac_bits(p: int, d: int, bound_a: float, bound_b: float) -> int:
    """Largest ``f`` such that a length-``d`` dot product of ``f``-bit values cannot wrap.

    Each quantized entry has magnitude at most ``round(bound * 2**f)``; an entry of the
    product is a sum of ``d`` such products and must stay within ``(p - 1) / 2``.

    Raises
    ------
    OverflowRiskError
        If even ``f = 0`` can wrap: ``p`` is too small for the quantized range.
    """
    half = (p - 1) // 2
    best = None
    for f in range(0, 27):
        la = math.floor(bound_a * 2.0**f + 0.5)
        lb = math.floor(bound_b * 2.0**f + 0.5)
        if d * la * lb <= half:
            best = f
        else:
            break
    if best is None:
        need = d * math.floor(bound_a + 0.5) * math.floor(bound_b + 0.5)
        raise OverflowRiskError(
            f"Argument 'p'={p} is too small for the quantized range: a product of inner "
            f"dimension {d} with |A| <= {bound_a:g} and |B| <= {bound_b:g} needs "
            f"(p-1)/2 >= {need}."
        )
    return best


class MatmulCode:
    """One code's encode / decodable / decode for ``C = A @ B``.

    Build it with :func:`make_code`.

    Attributes
    ----------
    name : str
        One of :data:`CODES`.
    n : int
        Number of subtasks.
    needed : int
        Fewest subtask results that can decode (the recovery threshold).
    p : int or None
        The prime of the workers' arithmetic, ``None`` for float64.
    """

    def __init__(self, name: str, n: int, needed: int, p: int | None, params: dict,
                 inner: object = None, frac_bits: int | None = None):
        self.name, self.n, self.needed, self.p = name, n, needed, p
        self.params = dict(params)
        self._inner = inner
        self._frac_bits = frac_bits
        self._used_frac_bits: int | None = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"MatmulCode({self.name}, {args})"

    @property
    def frac_bits(self) -> int | None:
        """Fractional bits of the last real-input secure encode (``None`` otherwise)."""
        return self._used_frac_bits

    def to_json(self) -> dict:
        """The code's parameters, as written into every shard header of the job."""
        return {"scheme": "matmul", "code": self.name, "n": self.n, "needed": self.needed,
                "p": self.p, **self.params}

    # -- which results decode -------------------------------------------------------------
    def block_of(self, i: int) -> int:
        """The data block subtask ``i`` carries (replication: ``i mod k``; others: ``i``)."""
        return i % self.params["k"] if self.name == "replication" else i

    def select(self, indices) -> list[int] | None:
        """A decodable subset of the finished subtask ``indices``, or ``None`` if none is."""
        idx = list(dict.fromkeys(int(i) for i in indices))
        if self.name == "replication":
            first: dict[int, int] = {}
            for i in idx:
                first.setdefault(self.block_of(i), i)
            k = self.params["k"]
            return [first[b] for b in range(k)] if len(first) == k else None
        if self.name == "uncoded":
            return list(range(self.n)) if set(range(self.n)) <= set(idx) else None
        return idx[: self.needed] if len(idx) >= self.needed else None

    def can_still_decode(self, lost) -> bool:
        """Whether some decodable set avoids every subtask in ``lost`` (erasures)."""
        return self.select([i for i in range(self.n) if i not in set(lost)]) is not None

    # -- encode / decode ------------------------------------------------------------------
    def encode(self, A: np.ndarray, B: np.ndarray, *, rng: np.random.Generator | None = None
               ) -> Encoded:
        """Cut and encode ``A`` (m, d) and ``B`` (d, q) into the ``n`` subtasks."""
        A, B = self._check_inputs(A, B)
        m, q = A.shape[0], B.shape[1]
        if self.name in _PAIRED:
            if self.name in PRIVATE:
                A, B = self._to_field(A, B)
                a, b = self._inner.encode(A, B, rng=rng)
                return Encoded(a, b, False, (m, q), self._used_frac_bits)
            a, b = self._inner.encode(A, B)
            return Encoded(a, b, False, (m, q))
        k = self.params["k"]
        blocks = _row_blocks(A, k)
        if self.name == "mds":
            a = self._inner.encode(blocks)
        elif self.name == "replication":
            a = blocks[np.arange(self.n) % k]
        else:
            a = blocks
        return Encoded(np.ascontiguousarray(a), B, True, (m, q))

    def decode(self, results: dict[int, np.ndarray], shape: tuple[int, int], *,
               frac_bits: int | None = None) -> np.ndarray:
        """Decode ``C`` from finished subtasks ``{index: a_i @ b_i}``.

        Parameters
        ----------
        results : dict
            Finished subtask index -> its product.
        shape : (m, q)
            The product's shape, from the job's metadata (:attr:`Encoded.shape`).
        frac_bits : int, optional
            Private codes with real inputs: :attr:`Encoded.frac_bits` of the job, so the
            product is dequantized with ``2 * frac_bits``; ``None`` returns field elements.
            Nothing is taken from an earlier :meth:`encode`.

        Raises
        ------
        NotEnoughShardsError
            If the results are not a decodable set.
        """
        chosen = self.select(results)
        if chosen is None:
            raise NotEnoughShardsError(self.needed, len(results), "results")
        m, q = shape
        R = np.stack([np.asarray(results[i]) for i in chosen])
        if self.name == "poly":
            return self._inner.decode(R, chosen, shape=(m, q))
        if self.name == "matdot":
            return self._inner.decode(R, chosen)
        if self.name in PRIVATE:
            C = (self._inner.decode(R, chosen) if self.name == "secure-matdot" else
                 self._inner.decode(R, chosen, shape=(m, q)))
            if frac_bits is None:
                return C
            f = check_int("frac_bits", frac_bits, low=0, high=26)
            return Quantizer(self.p, 2 * f).dequantize(C)
        if self.name == "mds":
            R = self._inner.decode(R, chosen)
        # uncoded / replication: results come in block order already
        return R.reshape(-1, q)[:m]

    def direct(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """The uncoded reference product, in the same arithmetic as :meth:`decode`'s output."""
        A, B = self._check_inputs(A, B)
        if self.p is None or (self.name in PRIVATE and not _is_int(A)):
            return np.asarray(A, dtype=np.float64) @ np.asarray(B, dtype=np.float64)
        return gfp_matmul(A, B, self.p)

    # -- internals ------------------------------------------------------------------------
    def _check_inputs(self, A: object, B: object) -> tuple[np.ndarray, np.ndarray]:
        A, B = np.asarray(A), np.asarray(B)
        if A.ndim != 2 or B.ndim != 2:
            raise ValueError(f"Arguments 'A' and 'B' must be 2-D, not shapes {A.shape} and "
                             f"{B.shape}.")
        if A.shape[1] != B.shape[0]:
            raise ValueError(f"Arguments 'A' and 'B' have shapes {A.shape} and {B.shape}, "
                             "which do not multiply.")
        check_int("A.shape[0]", A.shape[0], low=1)
        if self.p is not None and (self.name not in PRIVATE or _is_int(A) or _is_int(B)):
            A, B = as_gfp("A", A, self.p), as_gfp("B", B, self.p)
        elif self.p is None:
            A, B = A.astype(np.float64, copy=False), B.astype(np.float64, copy=False)
        return A, B

    def _to_field(self, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Secure code: quantize real inputs (integer inputs are already field elements)."""
        if _is_int(A):
            self._used_frac_bits = None
            return A, B
        ba = float(np.max(np.abs(A))) if A.size else 0.0
        bb = float(np.max(np.abs(B))) if B.size else 0.0
        d = A.shape[1]
        f = self._frac_bits
        if f is None:
            f = choose_product_frac_bits(self.p, d, ba, bb)
        else:
            best = choose_product_frac_bits(self.p, d, ba, bb)
            if f > best:
                raise OverflowRiskError(
                    f"Argument 'p'={self.p} is too small for the quantized range with "
                    f"frac_bits={f}: inner dimension {d}, |A| <= {ba:g}, |B| <= {bb:g} "
                    f"allow at most frac_bits={best}."
                )
        self._used_frac_bits = f
        q = Quantizer(self.p, f)
        return q.quantize(A), q.quantize(B)


def _is_int(X: np.ndarray) -> bool:
    return np.issubdtype(np.asarray(X).dtype, np.integer)


def _row_blocks(A: np.ndarray, k: int) -> np.ndarray:
    """``A`` cut into ``k`` row blocks of ``ceil(m / k)`` rows (the last zero-padded)."""
    m, d = A.shape
    rows = -(-m // k)
    out = np.zeros((k * rows, d), dtype=A.dtype)
    out[:m] = A
    return out.reshape(k, rows, d)


def make_code(code: str, *, n: int, k: int | None = None, ka: int = 1, kb: int = 1,
              t: int = 1, p: int | None = None, frac_bits: int | None = None,
              seed: int = 0) -> MatmulCode:
    """Build the adapter for ``code``.

    Parameters
    ----------
    code : str
        The scheme, one of :data:`CODES`.
    n : int
        Number of subtasks (workers).
    k : int, optional
        Row blocks of ``A`` for uncoded (``n == k``), replication (``n`` a multiple of
        ``k``: ``r = n / k`` copies) and mds (any ``k`` of ``n``); inner-dimension blocks
        for matdot and secure-matdot. Ignored by poly and gasp, whose threshold comes
        from ``ka``, ``kb`` and ``t``.
    ka, kb : int
        Row blocks of ``A`` and column blocks of ``B`` (poly, secure, gasp).
    t : int
        Colluding workers that learn nothing (secure, secure-matdot, gasp).
    p : int, optional
        Prime for exact GF(p) arithmetic; secure defaults to :data:`DEFAULT_PRIME`.
    frac_bits : int, optional
        Secure code with real inputs: fractional bits of the quantizer (default: the most
        that cannot wrap around for the given inputs).
    seed : int
        Seed of the real MDS generator.

    Raises
    ------
    ValueError
        For an unknown code or parameters out of range (for example ``n`` below the
        recovery threshold, with the shared wording).
    """
    if code not in CODES:
        raise ValueError(f"Argument 'code' must be one of {', '.join(CODES)}, not {code!r}.")
    n = check_int("n", n, low=1)
    if p is not None:
        p = check_prime("p", p, high=MAX_PRIME)
    if frac_bits is not None:
        frac_bits = check_int("frac_bits", frac_bits, low=0, high=26)
    if code in ("uncoded", "replication", "mds"):
        k = n if (k is None and code == "uncoded") else k
        if k is None:
            raise ValueError(f"Argument 'k' is required for code {code!r}.")
        k = check_int("k", k, low=1, high=n, high_name="n")
        if code == "uncoded":
            if n != k:
                raise ValueError(f"Argument 'n' must equal k={k} for code 'uncoded', not {n}.")
            return MatmulCode(code, n, n, p, {"k": k})
        if code == "replication":
            if n % k:
                raise ValueError(f"Argument 'n' must be a multiple of k={k} for replication "
                                 f"(r = n / k copies of each block), not {n}.")
            return MatmulCode(code, n, k, p, {"k": k, "r": n // k})
        from coding.mds import MDSCode  # imports galois (~1 s); executors never need it

        field = None if p is None else galois_field(p)
        return MatmulCode(code, n, k, p, {"k": k}, MDSCode(n, k, field=field, seed=seed))
    if code in ("matdot", "secure-matdot"):
        return _make_matdot(code, n, k, t, p, frac_bits)
    ka = check_int("ka", ka, low=1)
    kb = check_int("kb", kb, low=1)
    if code == "gasp":
        p = DEFAULT_PRIME if p is None else p
        t = check_int("t", t, low=1)
        check_int("n", n, low=least_threshold(ka, kb, t), low_name="the GASP threshold")
        inner = GASPCode(n, ka, kb, t, p=p)
        return MatmulCode(code, n, inner.threshold, p,
                          {"ka": ka, "kb": kb, "t": t, "table": inner.table.name,
                           "swapped": inner.swapped}, inner, frac_bits)
    if code == "poly":
        check_int("n", n, low=ka * kb, low_name="ka*kb")
        return MatmulCode(code, n, ka * kb, p, {"ka": ka, "kb": kb},
                          PolynomialCode(n, ka, kb, field=p))
    p = DEFAULT_PRIME if p is None else p
    t = check_int("t", t, low=1)
    if k is not None:  # k data blocks: A cut into k row blocks unless ka/kb say otherwise
        k = check_int("k", k, low=1, high=n, high_name="n")
        if ka * kb == 1:
            ka = k
        elif ka * kb != k:
            raise ValueError(f"Argument 'k' must equal ka*kb={ka * kb} for code 'secure', "
                             f"not {k}.")
        check_int("t", t, high=k - 1, high_name="k-1")
    threshold = (ka + t) * (kb + 1) - 1
    check_int("n", n, low=threshold, low_name="(ka+t)*(kb+1)-1")
    inner = SecureMatMulCode(n, ka, kb, t, p=p)
    return MatmulCode(code, n, threshold, p, {"ka": ka, "kb": kb, "t": t}, inner, frac_bits)


def _make_matdot(code: str, n: int, k: int | None, t: int, p: int | None,
                 frac_bits: int | None) -> MatmulCode:
    """MatDot adapters: ``k`` inner-dimension blocks (default 2)."""
    m = check_int("k", 2 if k is None else k, low=1)
    if code == "matdot":
        check_int("n", n, low=2 * m - 1, low_name="2k-1")
        return MatmulCode(code, n, 2 * m - 1, p, {"k": m}, MatDotCode(n, m, field=p))
    p = DEFAULT_PRIME if p is None else p
    t = check_int("t", t, low=1)
    check_int("n", n, low=2 * m + 2 * t - 1, low_name="2k+2t-1")
    return MatmulCode(code, n, 2 * m + 2 * t - 1, p, {"k": m, "t": t},
                      SecureMatDotCode(n, m, t, p=p), frac_bits)
