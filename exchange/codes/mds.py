"""The MDS code: each update cut into ``k`` rows and encoded with a real ``MDSCode(n, k)``.

The code is linear, so the sum of the encodings is the encoding of the sum, and any ``k``
merged shards decode it (Lee et al., "Speeding up distributed machine learning using
codes", 2018). Shares are float64: decoding multiplies the shares' rounding by the
condition number of the surviving submatrix, which float32 cannot absorb for every
erasure pattern (see the coding benchmark).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from coding.errors import NotEnoughShardsError
from coding.validate import check_int
from exchange.codes.base import BuiltinCode, as_rows, check_indices, check_update, rows

__all__ = ["MDS", "mds_code"]


@functools.lru_cache(maxsize=32)
def mds_code(n: int, k: int, seed: int):
    """The real systematic ``MDSCode(n, k, seed=seed)``, built once per parameter set."""
    from coding.mds import MDSCode

    return MDSCode(n, k, seed=seed)


class RealMDSStage(BuiltinCode):
    """Encode and decode of the codes whose shares are real MDS-coded rows."""

    n: int
    k: int | None
    seed: int

    @property
    def merged_needed(self) -> int:
        return int(self.k)  # type: ignore[arg-type]

    def share_length(self, length: int) -> int:
        return -(-check_int("length", length, low=0) // int(self.k))  # type: ignore[arg-type]

    def encode(self, update, *, rng=None, out=None):
        if out is not None:
            raise ValueError(f"Argument 'out' is for codes that encode in place, not {self.mode}.")
        x = check_update(update)
        return np.asarray(mds_code(self.n, self.k, self.seed).encode(rows(x, int(self.k))), dtype=np.float64)

    def decode(self, merged, indices, *, length, n_terms):
        length = check_int("length", length, low=0)
        idx = check_indices(indices, self.n, "indices")
        got = as_rows(merged, len(idx))
        if got is None:
            raise ValueError(f"Argument 'merged' must have one row per index ({len(idx)}), "
                             f"not shape {np.shape(merged)}.")
        if len(idx) < self.merged_needed:
            raise NotEnoughShardsError(self.merged_needed, len(idx))
        # with more than k shards the real code decodes from its best-conditioned k
        decoded = np.asarray(mds_code(self.n, self.k, self.seed).decode(np.asarray(got, dtype=np.float64), idx))
        return np.ascontiguousarray(decoded).reshape(-1)[:length].astype(np.float64, copy=False)


@dataclass(frozen=True)
class MDS(RealMDSStage):
    """The exact sum of the members' updates from any ``k`` of ``n`` merged shards.

    Parameters
    ----------
    n : int
        Workers, each the aggregator of one coded shard.
    k : int, optional
        Merged shards needed to decode (default ``n - s``).
    s : int, optional
        Only the default of ``k``.
    seed : int, optional
        Seed of the real generator (every party must use the same).
    """

    name = "mds"
    n: int
    k: int | None = None
    s: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        n = check_int("n", self.n, low=1)
        s = check_int("s", self.s, low=0, high=n - 1, high_name="n-1")
        k = n - s if self.k is None else check_int("k", self.k, low=1, high=n, high_name="n")
        for name, value in (("n", n), ("k", k), ("s", s), ("seed", check_int("seed", self.seed, low=0))):
            object.__setattr__(self, name, value)

    @classmethod
    def from_settings(cls, n, *, k=None, s=0, t=0, p=None, seed=0):
        """A run's default is ``k = n - 1`` (one slow aggregator tolerated)."""
        n = check_int("workers", n, low=1)
        return super().from_settings(n, k=max(n - 1, 1) if k is None else k, s=s, t=t, p=p, seed=seed)
