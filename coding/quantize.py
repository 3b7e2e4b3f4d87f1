"""Signed fixed-point maps between float64 and GF(p).

Secure aggregation and the GF(p) codes work on field elements, while model weights are
floats. :class:`Quantizer` scales by ``2**frac_bits``, rounds to the nearest integer and
stores negative values ``-v`` as ``p - v``, so that addition mod p is addition of the
fixed-point values as long as no sum leaves ``[-(p-1)/2, (p-1)/2]``. :meth:`Quantizer.check`
refuses configurations where a sum of ``n_terms`` bounded values could wrap around, and
:func:`choose_frac_bits` picks the finest scale that is still safe.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import OverflowRiskError
from .gfp import MAX_PRIME, as_gfp
from .validate import _is_prime, check_int, check_prime, check_real

__all__ = ["Quantizer", "choose_frac_bits", "next_prime"]

_MAX_FRAC_BITS = 52


def next_prime(n: int) -> int:
    """Return the smallest prime ``>= n``."""
    n = max(2, check_int("n", n))
    while not _is_prime(n):
        n += 1
    return n


def _max_level(bound: float, frac_bits: int) -> int:
    """Largest quantized magnitude a value with ``|x| <= bound`` can round to."""
    return math.floor(bound * 2.0**frac_bits + 0.5)


def choose_frac_bits(p: int, n_terms: int, bound: float) -> int:
    """Largest ``frac_bits`` for which summing ``n_terms`` values ``|x| <= bound`` is safe.

    Parameters
    ----------
    p : int
        The prime modulus, ``3 <= p <= 2**31 - 1``.
    n_terms : int
        How many quantized values are added together (for example, the number of clients).
    bound : float
        Largest magnitude of any single value, ``bound > 0``.

    Returns
    -------
    int
        ``frac_bits`` in ``[0, 52]``.

    Raises
    ------
    OverflowRiskError
        If even ``frac_bits = 0`` could wrap around.
    """
    p = check_prime("p", p, low=3, high=MAX_PRIME)
    n_terms = check_int("n_terms", n_terms, low=1)
    bound = check_real("bound", bound, low=0.0, low_open=True)
    half = (p - 1) // 2
    best = None
    for f in range(_MAX_FRAC_BITS + 1):
        if n_terms * _max_level(bound, f) > half:
            break
        best = f
    if best is None:
        raise OverflowRiskError(
            f"No frac_bits is safe for p={p}, n_terms={n_terms}, bound={bound}: "
            f"use p >= {next_prime(2 * n_terms * _max_level(bound, 0) + 1)}."
        )
    return best


class Quantizer:
    """Signed fixed-point quantizer between float64 and GF(p).

    ``quantize(x) = round(x * 2**frac_bits) mod p``; values above ``(p-1)/2`` represent
    negatives on the way back.

    Parameters
    ----------
    p : int
        The prime modulus, ``3 <= p <= 2**31 - 1``.
    frac_bits : int
        Number of fractional bits, ``0 <= frac_bits <= 52``.

    Examples
    --------
    >>> q = Quantizer(2**31 - 1, 16)
    >>> q.dequantize(q.quantize([-1.5, 0.25]))
    array([-1.5 ,  0.25])
    """

    def __init__(self, p: int, frac_bits: int):
        self._p = check_prime("p", p, low=3, high=MAX_PRIME)
        self._frac_bits = check_int("frac_bits", frac_bits, low=0, high=_MAX_FRAC_BITS)
        self._scale = 2.0**self._frac_bits
        self._half = (self._p - 1) // 2

    @property
    def p(self) -> int:
        """The prime modulus."""
        return self._p

    @property
    def frac_bits(self) -> int:
        """Number of fractional bits."""
        return self._frac_bits

    @property
    def max_abs(self) -> float:
        """Largest representable magnitude, ``((p-1)/2) / 2**frac_bits``."""
        return self._half / self._scale

    @property
    def resolution(self) -> float:
        """Spacing of representable values, ``2**-frac_bits``."""
        return 1.0 / self._scale

    def __repr__(self) -> str:
        return f"Quantizer(p={self._p}, frac_bits={self._frac_bits})"

    def quantize(self, x: object) -> np.ndarray:
        """Map floats to int64 field elements in ``[0, p)``.

        Raises
        ------
        ValueError
            If any input is NaN or infinite.
        OverflowRiskError
            If any input rounds to a magnitude above ``(p-1)/2``.
        """
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("Argument 'x' must be finite, not NaN or infinite.")
        v = np.rint(x * self._scale)
        if v.size and np.max(np.abs(v)) > self._half:
            worst = float(x.flat[int(np.argmax(np.abs(v)))])
            raise OverflowRiskError(
                f"Value {worst} does not fit p={self._p} with frac_bits={self._frac_bits}: "
                f"magnitudes must be at most {self._half / self._scale}."
            )
        out = v.astype(np.int64)
        out[out < 0] += self._p
        return out

    def dequantize(self, v: object) -> np.ndarray:
        """Map field elements in ``[0, p)`` back to float64 (values above (p-1)/2 are negative)."""
        v = as_gfp("v", v, self._p)
        signed = np.where(v > self._half, v - self._p, v)
        return signed.astype(np.float64) / self._scale

    def check(self, n_terms: int, bound: float) -> None:
        """Raise if summing ``n_terms`` values with ``|x| <= bound`` could wrap around mod p.

        Raises
        ------
        OverflowRiskError
            Naming p, frac_bits, n_terms, bound, the largest safe bound and the smallest
            safe prime.
        """
        n_terms = check_int("n_terms", n_terms, low=1)
        bound = check_real("bound", bound, low=0.0)
        level = _max_level(bound, self._frac_bits)
        if n_terms * level <= self._half:
            return
        safe_bound = (self._half // n_terms) / self._scale
        raise OverflowRiskError(
            f"Summing n_terms={n_terms} values of magnitude <= bound={bound} can wrap around "
            f"p={self._p} with frac_bits={self._frac_bits}: use bound <= {safe_bound} "
            f"or p >= {next_prime(2 * n_terms * level + 1)}."
        )
