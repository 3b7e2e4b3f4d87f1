"""Row-block codes: ``A`` is cut into ``k`` row blocks and every subtask multiplies by ``B``.

The codes here: uncoded, replication and mds (subtasks and recovery thresholds in the table of
:mod:`worker.matmul.codes`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from coding.gfp import galois_field
from coding.validate import check_int
from worker.matmul.codes.base import Encoded, MatmulCode, row_blocks

__all__ = ["MDSMatmul", "ReplicationMatmul", "UncodedMatmul"]


def _check_k(name: str, k: int | None, n: int) -> int:
    if k is None:
        raise ValueError(f"Argument 'k' is required for code {name!r}.")
    return check_int("k", k, low=1, high=n, high_name="n")


class _RowBlocks(MatmulCode):
    """Shared shape: ``B`` goes to every subtask; decode reassembles ``k`` row blocks."""

    def _encode(self, A: np.ndarray, B: np.ndarray, rng: np.random.Generator | None
                ) -> Encoded:
        a = self._code_blocks(row_blocks(A, self.params["k"]))
        return Encoded(np.ascontiguousarray(a), B, True, (A.shape[0], B.shape[1]))

    def _decode(self, R: np.ndarray, chosen: list[int], shape: tuple[int, int],
                frac_bits: int | None) -> np.ndarray:
        m, q = shape
        return self._blocks_of(R, chosen).reshape(-1, q)[:m]

    def _code_blocks(self, blocks: np.ndarray) -> np.ndarray:
        return blocks

    def _blocks_of(self, R: np.ndarray, chosen: list[int]) -> np.ndarray:
        return R  # the chosen results come in block order already


class UncodedMatmul(_RowBlocks):
    """Row block ``i`` on worker ``i``: every one of the ``n == k`` results is needed."""

    name = "uncoded"

    @classmethod
    def build(cls, *, n, k, ka, kb, t, p, frac_bits, seed) -> UncodedMatmul:
        k = _check_k(cls.name, n if k is None else k, n)
        if n != k:
            raise ValueError(f"Argument 'n' must equal k={k} for code 'uncoded', not {n}.")
        return cls(n, n, p, {"k": k})

    def select(self, indices: Iterable[int]) -> list[int] | None:
        idx = set(int(i) for i in indices)
        return list(range(self.n)) if set(range(self.n)) <= idx else None


class ReplicationMatmul(_RowBlocks):
    """``r = n / k`` copies of each row block; one copy of every block decodes."""

    name = "replication"

    @classmethod
    def build(cls, *, n, k, ka, kb, t, p, frac_bits, seed) -> ReplicationMatmul:
        k = _check_k(cls.name, k, n)
        if n % k:
            raise ValueError(f"Argument 'n' must be a multiple of k={k} for replication "
                             f"(r = n / k copies of each block), not {n}.")
        return cls(n, k, p, {"k": k, "r": n // k})

    def block_of(self, i: int) -> int:
        return i % self.params["k"]

    def select(self, indices: Iterable[int]) -> list[int] | None:
        first: dict[int, int] = {}
        for i in dict.fromkeys(int(i) for i in indices):
            first.setdefault(self.block_of(i), i)
        k = self.params["k"]
        return [first[b] for b in range(k)] if len(first) == k else None

    def _code_blocks(self, blocks: np.ndarray) -> np.ndarray:
        return blocks[np.arange(self.n) % self.params["k"]]


class MDSMatmul(_RowBlocks):
    """MDS-coded row blocks (real or GF(p)): any ``k`` of ``n`` results decode."""

    name = "mds"

    @classmethod
    def build(cls, *, n, k, ka, kb, t, p, frac_bits, seed) -> MDSMatmul:
        k = _check_k(cls.name, k, n)
        from coding.mds import MDSCode  # imports galois (~1 s); executors never need it

        field = None if p is None else galois_field(p)
        return cls(n, k, p, {"k": k}, MDSCode(n, k, field=field, seed=seed))

    def _code_blocks(self, blocks: np.ndarray) -> np.ndarray:
        return self._inner.encode(blocks)

    def _blocks_of(self, R: np.ndarray, chosen: list[int]) -> np.ndarray:
        return self._inner.decode(R, chosen)
