"""The shape every coded-matmul adapter shares: :class:`MatmulCode` and its helpers.

A subclass says how to build itself from the job's parameters (:meth:`MatmulCode.build`),
how to cut and encode ``A`` and ``B`` (``_encode``) and how to decode ``C`` from a
decodable set (``_decode``); it overrides :meth:`MatmulCode.select` when "any
``needed`` of ``n``" is not its rule. The base owns input checks, the public
``encode``/``decode`` contract and the header JSON, so no caller branches on a code's name
(the shape of galois's ``_codes/_linear.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from coding.errors import NotEnoughShardsError, OverflowRiskError
from coding.gfp import as_gfp, gfp_matmul
from coding.validate import check_int

__all__ = ["DEFAULT_PRIME", "Encoded", "MatmulCode", "choose_product_frac_bits", "is_int",
           "row_blocks", "worker_product"]

#: Default modulus of the private codes: the largest prime below 2^31 (widest quantized range).
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


def is_int(X: np.ndarray) -> bool:
    """Whether ``X`` holds integers (field elements), not reals."""
    return np.issubdtype(np.asarray(X).dtype, np.integer)


def row_blocks(A: np.ndarray, k: int) -> np.ndarray:
    """``A`` cut into ``k`` row blocks of ``ceil(m / k)`` rows (the last zero-padded)."""
    m, d = A.shape
    rows = -(-m // k)
    out = np.zeros((k * rows, d), dtype=A.dtype)
    out[:m] = A
    return out.reshape(k, rows, d)


class MatmulCode:
    """One code's encode / decodable / decode for ``C = A @ B``.

    Build one with :func:`worker.matmul.codes.make_code`, which looks the name up in
    :data:`worker.matmul.codes.MATMUL_CODES` and calls the class's :meth:`build`.

    Attributes
    ----------
    name : str
        The registered name.
    private : bool
        Whether workers see only masked shares over GF(p) (real inputs are quantized).
    n : int
        Number of subtasks.
    needed : int
        Fewest subtask results that can decode (the recovery threshold).
    p : int or None
        The prime of the workers' arithmetic, ``None`` for float64.
    """

    name: ClassVar[str] = ""
    private: ClassVar[bool] = False

    def __init__(self, n: int, needed: int, p: int | None, params: dict,
                 inner: object = None, frac_bits: int | None = None):
        self.n, self.needed, self.p = n, needed, p
        self.params = dict(params)
        self._inner = inner
        self._frac_bits = frac_bits
        self._used_frac_bits: int | None = None

    @classmethod
    def build(cls, *, n: int, k: int | None, ka: int, kb: int, t: int, p: int | None,
              frac_bits: int | None, seed: int) -> MatmulCode:
        """The adapter for these (already type-checked) parameters; validates the rest."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"MatmulCode({self.name}, {args})"

    @property
    def frac_bits(self) -> int | None:
        """Fractional bits of the last real-input private encode (``None`` otherwise)."""
        return self._used_frac_bits

    def to_json(self) -> dict:
        """The code's parameters, as written into every shard header of the job."""
        return {"scheme": "matmul", "code": self.name, "n": self.n, "needed": self.needed,
                "p": self.p, **self.params}

    @property
    def work_blocks(self) -> int:
        """Each worker multiplies ``1 / work_blocks`` of the product's work (``k`` blocks
        unless the code cuts both operands)."""
        return int(self.params["k"])

    # -- which results decode -------------------------------------------------------------
    def block_of(self, i: int) -> int:
        """The data block subtask ``i`` carries (``i`` unless the code repeats blocks)."""
        return i

    def select(self, indices: Iterable[int]) -> list[int] | None:
        """A decodable subset of the finished subtask ``indices``, or ``None`` if none is."""
        idx = list(dict.fromkeys(int(i) for i in indices))
        return idx[: self.needed] if len(idx) >= self.needed else None

    def can_still_decode(self, lost: Iterable[int]) -> bool:
        """Whether some decodable set avoids every subtask in ``lost`` (erasures)."""
        gone = set(lost)
        return self.select([i for i in range(self.n) if i not in gone]) is not None

    # -- encode / decode ------------------------------------------------------------------
    def encode(self, A: np.ndarray, B: np.ndarray, *, rng: np.random.Generator | None = None
               ) -> Encoded:
        """Cut and encode ``A`` (m, d) and ``B`` (d, q) into the ``n`` subtasks."""
        A, B = self._check_inputs(A, B)
        return self._encode(A, B, rng)

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
        R = np.stack([np.asarray(results[i]) for i in chosen])
        return self._decode(R, chosen, (int(shape[0]), int(shape[1])), frac_bits)

    def direct(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """The uncoded reference product, in the same arithmetic as :meth:`decode`'s output."""
        A, B = self._check_inputs(A, B)
        if self.p is None:
            return np.asarray(A, dtype=np.float64) @ np.asarray(B, dtype=np.float64)
        return gfp_matmul(A, B, self.p)

    # -- hooks ----------------------------------------------------------------------------
    def _encode(self, A: np.ndarray, B: np.ndarray, rng: np.random.Generator | None
                ) -> Encoded:
        raise NotImplementedError

    def _decode(self, R: np.ndarray, chosen: list[int], shape: tuple[int, int],
                frac_bits: int | None) -> np.ndarray:
        raise NotImplementedError

    def _check_inputs(self, A: object, B: object) -> tuple[np.ndarray, np.ndarray]:
        A, B = np.asarray(A), np.asarray(B)
        if A.ndim != 2 or B.ndim != 2:
            raise ValueError(f"Arguments 'A' and 'B' must be 2-D, not shapes {A.shape} and "
                             f"{B.shape}.")
        if A.shape[1] != B.shape[0]:
            raise ValueError(f"Arguments 'A' and 'B' have shapes {A.shape} and {B.shape}, "
                             "which do not multiply.")
        check_int("A.shape[0]", A.shape[0], low=1)
        return self._to_arithmetic(A, B)

    def _to_arithmetic(self, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inputs in the workers' arithmetic: GF(p) elements, or float64."""
        if self.p is not None:
            return as_gfp("A", A, self.p), as_gfp("B", B, self.p)
        return A.astype(np.float64, copy=False), B.astype(np.float64, copy=False)
