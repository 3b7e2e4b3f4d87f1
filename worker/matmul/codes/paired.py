"""Codes whose subtasks are coded pairs ``(a_i, b_i)``, over the reals or GF(p).

The codes here: poly and matdot (subtasks and recovery thresholds in the table of
:mod:`worker.matmul.codes`).

MatDot splits the inner dimension into ``k`` blocks: each worker does ``1/k`` of the work,
as with ``mds`` at the same ``k``, but returns a full ``m x q`` result.
"""

from __future__ import annotations

import numpy as np

from coding.matdot import MatDotCode
from coding.polynomial import PolynomialCode
from coding.validate import check_int
from worker.matmul.codes.base import Encoded, MatmulCode

__all__ = ["MatDotMatmul", "PolyMatmul"]


class _Paired(MatmulCode):
    def _encode(self, A: np.ndarray, B: np.ndarray, rng: np.random.Generator | None
                ) -> Encoded:
        a, b = self._inner.encode(A, B)
        return Encoded(a, b, False, (A.shape[0], B.shape[1]))


class PolyMatmul(_Paired):
    """The polynomial code of Yu et al.: ``A`` in ``ka`` row blocks, ``B`` in ``kb`` column
    blocks; any ``ka*kb`` results decode."""

    name = "poly"

    @property
    def work_blocks(self) -> int:
        return int(self.params["ka"] * self.params["kb"])

    @classmethod
    def build(cls, *, n, k, ka, kb, t, p, frac_bits, seed) -> PolyMatmul:
        ka, kb = check_int("ka", ka, low=1), check_int("kb", kb, low=1)
        check_int("n", n, low=ka * kb, low_name="ka*kb")
        return cls(n, ka * kb, p, {"ka": ka, "kb": kb}, PolynomialCode(n, ka, kb, field=p))

    def _decode(self, R: np.ndarray, chosen: list[int], shape: tuple[int, int],
                frac_bits: int | None) -> np.ndarray:
        return self._inner.decode(R, chosen, shape=shape)


class MatDotMatmul(_Paired):
    """MatDot: ``k`` inner-dimension blocks (default 2); any ``2k-1`` results decode."""

    name = "matdot"

    @classmethod
    def build(cls, *, n, k, ka, kb, t, p, frac_bits, seed) -> MatDotMatmul:
        m = check_int("k", 2 if k is None else k, low=1)
        check_int("n", n, low=2 * m - 1, low_name="2k-1")
        return cls(n, 2 * m - 1, p, {"k": m}, MatDotCode(n, m, field=p))

    def _decode(self, R: np.ndarray, chosen: list[int], shape: tuple[int, int],
                frac_bits: int | None) -> np.ndarray:
        return self._inner.decode(R, chosen)
