"""T-private codes over GF(p): any ``t`` colluding workers learn nothing about ``A`` or ``B``.

The codes here: secure, secure-matdot and gasp (subtasks and recovery thresholds in the table of
:mod:`worker.matmul.codes`).

Real inputs are quantized with :class:`coding.quantize.Quantizer`: the product of two
values with ``f`` fractional bits has ``2f``, so decoding dequantizes with ``2f``.
"""

from __future__ import annotations

import numpy as np

from coding.errors import OverflowRiskError
from coding.gasp import GASPCode, least_threshold
from coding.gfp import as_gfp, gfp_matmul
from coding.matdot import SecureMatDotCode
from coding.quantize import Quantizer
from coding.secure import SecureMatMulCode
from coding.validate import check_int
from worker.matmul.codes.base import (
    DEFAULT_PRIME,
    Encoded,
    MatmulCode,
    choose_product_frac_bits,
    is_int,
)

__all__ = ["GASPMatmul", "SecureMatDotMatmul", "SecureMatmul"]


class _Private(MatmulCode):
    """Shared shape: quantize real inputs, encode masked shares, dequantize on decode."""

    private = True

    def _to_arithmetic(self, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if is_int(A) or is_int(B):  # field elements already
            return as_gfp("A", A, self.p), as_gfp("B", B, self.p)
        return A, B  # reals: quantized by encode

    def direct(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        A, B = self._check_inputs(A, B)
        if not is_int(A):
            return np.asarray(A, dtype=np.float64) @ np.asarray(B, dtype=np.float64)
        return gfp_matmul(A, B, self.p)

    def _encode(self, A: np.ndarray, B: np.ndarray, rng: np.random.Generator | None
                ) -> Encoded:
        A, B = self._to_field(A, B)
        a, b = self._inner.encode(A, B, rng=rng)
        return Encoded(a, b, False, (A.shape[0], B.shape[1]), self._used_frac_bits)

    def _decode(self, R: np.ndarray, chosen: list[int], shape: tuple[int, int],
                frac_bits: int | None) -> np.ndarray:
        C = self._decode_field(R, chosen, shape)
        if frac_bits is None:
            return C
        f = check_int("frac_bits", frac_bits, low=0, high=26)
        return Quantizer(self.p, 2 * f).dequantize(C)

    def _decode_field(self, R: np.ndarray, chosen: list[int], shape: tuple[int, int]
                      ) -> np.ndarray:
        return self._inner.decode(R, chosen, shape=shape)

    def _to_field(self, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Quantize real inputs (integer inputs are already field elements)."""
        if is_int(A):
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


class SecureMatmul(_Private):
    """Lagrange-style T-private polynomial shares; threshold ``(ka+t)(kb+1)-1``."""

    name = "secure"

    @property
    def work_blocks(self) -> int:
        return int(self.params["ka"] * self.params["kb"])

    @classmethod
    def build(cls, *, n, k, ka, kb, t, p, frac_bits, seed) -> SecureMatmul:
        ka, kb = check_int("ka", ka, low=1), check_int("kb", kb, low=1)
        p = DEFAULT_PRIME if p is None else p
        t = check_int("t", t, low=1)
        if k is not None:  # k data blocks: A cut into k row blocks unless ka/kb say otherwise
            k = check_int("k", k, low=1, high=n, high_name="n")
            if ka * kb == 1:
                ka = k
            elif ka * kb != k:
                raise ValueError(f"Argument 'k' must equal ka*kb={ka * kb} for code "
                                 f"'secure', not {k}.")
            check_int("t", t, high=k - 1, high_name="k-1")
        threshold = (ka + t) * (kb + 1) - 1
        check_int("n", n, low=threshold, low_name="(ka+t)*(kb+1)-1")
        inner = SecureMatMulCode(n, ka, kb, t, p=p)
        return cls(n, threshold, p, {"ka": ka, "kb": kb, "t": t}, inner, frac_bits)


class SecureMatDotMatmul(_Private):
    """T-private MatDot: ``k`` inner-dimension blocks (default 2); threshold ``2k+2t-1``."""

    name = "secure-matdot"

    @classmethod
    def build(cls, *, n, k, ka, kb, t, p, frac_bits, seed) -> SecureMatDotMatmul:
        m = check_int("k", 2 if k is None else k, low=1)
        p = DEFAULT_PRIME if p is None else p
        t = check_int("t", t, low=1)
        check_int("n", n, low=2 * m + 2 * t - 1, low_name="2k+2t-1")
        return cls(n, 2 * m + 2 * t - 1, p, {"k": m, "t": t}, SecureMatDotCode(n, m, t, p=p),
                   frac_bits)

    def _decode_field(self, R: np.ndarray, chosen: list[int], shape: tuple[int, int]
                      ) -> np.ndarray:
        return self._inner.decode(R, chosen)


class GASPMatmul(_Private):
    """GASP degree tables (the better orientation chosen automatically)."""

    name = "gasp"

    @property
    def work_blocks(self) -> int:
        return int(self.params["ka"] * self.params["kb"])

    @classmethod
    def build(cls, *, n, k, ka, kb, t, p, frac_bits, seed) -> GASPMatmul:
        ka, kb = check_int("ka", ka, low=1), check_int("kb", kb, low=1)
        p = DEFAULT_PRIME if p is None else p
        t = check_int("t", t, low=1)
        check_int("n", n, low=least_threshold(ka, kb, t), low_name="the GASP threshold")
        inner = GASPCode(n, ka, kb, t, p=p)
        return cls(n, inner.threshold, p, {"ka": ka, "kb": kb, "t": t,
                                           "table": inner.table.name,
                                           "swapped": inner.swapped}, inner, frac_bits)
