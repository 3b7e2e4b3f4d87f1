"""Per-code adapters for coded matrix multiplication ``C = A @ B``.

An adapter turns the inputs into ``n`` subtasks ``(a_i, b_i)`` (worker ``i`` computes
``a_i @ b_i``), says when a set of finished subtasks is enough, and decodes ``C`` from
them. The arithmetic lives in :mod:`coding`; adapters only cut, pad and reassemble, so the
master and the tests share them without any I/O (as Flower keeps strategies apart from
transport).

Each code is one class (:class:`~worker.matmul.codes.base.MatmulCode` subclasses in
:mod:`~worker.matmul.codes.rows`, :mod:`~worker.matmul.codes.paired` and
:mod:`~worker.matmul.codes.private`), named in :data:`MATMUL_CODES`. A new code is a class
with ``name``, ``build``, ``_encode`` and ``_decode``, plus one
``MATMUL_CODES.register(name, "module:Class")`` line; nothing else branches on names.

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

from coding.gfp import MAX_PRIME
from coding.validate import check_int, check_prime
from exchange.registry import Registry
from worker.matmul.codes.base import (
    DEFAULT_PRIME,
    Encoded,
    MatmulCode,
    choose_product_frac_bits,
    worker_product,
)

__all__ = ["CODES", "DEFAULT_PRIME", "MATMUL_CODES", "Encoded", "MatmulCode", "code_class",
           "make_code", "worker_product", "choose_product_frac_bits"]

#: Name -> the adapter class, imported on first use.
MATMUL_CODES = Registry("code", {
    "uncoded": "worker.matmul.codes.rows:UncodedMatmul",
    "replication": "worker.matmul.codes.rows:ReplicationMatmul",
    "mds": "worker.matmul.codes.rows:MDSMatmul",
    "poly": "worker.matmul.codes.paired:PolyMatmul",
    "secure": "worker.matmul.codes.private:SecureMatmul",
    "matdot": "worker.matmul.codes.paired:MatDotMatmul",
    "secure-matdot": "worker.matmul.codes.private:SecureMatDotMatmul",
    "gasp": "worker.matmul.codes.private:GASPMatmul",
})
#: The built-in code names (the CLI's choices).
CODES = MATMUL_CODES.names()


def code_class(code: str) -> type[MatmulCode]:
    """The adapter class registered as ``code`` (one-line error naming the choices)."""
    return MATMUL_CODES.load(MATMUL_CODES.check(code))


def make_code(code: str, *, n: int, k: int | None = None, ka: int = 1, kb: int = 1,
              t: int = 1, p: int | None = None, frac_bits: int | None = None,
              seed: int = 0) -> MatmulCode:
    """Build the adapter for ``code``.

    Parameters
    ----------
    code : str
        The scheme, one of :data:`CODES` (or a name registered in :data:`MATMUL_CODES`).
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
        Prime for exact GF(p) arithmetic; the private codes default to
        :data:`DEFAULT_PRIME`.
    frac_bits : int, optional
        Private codes with real inputs: fractional bits of the quantizer (default: the most
        that cannot wrap around for the given inputs).
    seed : int
        Seed of the real MDS generator.

    Raises
    ------
    ValueError
        For an unknown code or parameters out of range (for example ``n`` below the
        recovery threshold, with the shared wording).
    """
    cls = code_class(code)
    n = check_int("n", n, low=1)
    if p is not None:
        p = check_prime("p", p, high=MAX_PRIME)
    if frac_bits is not None:
        frac_bits = check_int("frac_bits", frac_bits, low=0, high=26)
    return cls.build(n=n, k=k, ka=ka, kb=kb, t=t, p=p, frac_bits=frac_bits, seed=seed)
