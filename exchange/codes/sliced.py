"""The sliced codes: each aggregator sums one slice of every update.

``plain`` is the scatter-reduce of serverless training (Jiang et al., "Towards
demystifying serverless machine learning training", SIGMOD 2021): aggregator ``j`` sums
slice ``j`` of every update, and the ``n`` merged slices are the sum. ``backup`` sums the
first ``n - s`` contributions only (an approximate baseline that ignores stragglers).

Slices are copies of the update's own entries, so a float32 update travels as float32
(half the bytes of float64) with no loss; the merged slice is accumulated in float64 and
rounded once to float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coding.errors import NotEnoughShardsError
from coding.validate import check_int
from exchange.codes.base import (
    BuiltinCode,
    as_rows,
    check_indices,
    check_update,
    rows,
    weighted_sum,
)

__all__ = ["Backup", "Plain", "SlicedCode"]


class SlicedCode(BuiltinCode):
    """Base of the codes whose share ``j`` is slice ``j`` of the update (``k = n``)."""

    n: int
    k: int | None

    def _check_sliced(self) -> None:
        n = check_int("n", self.n, low=1)
        k = n if self.k is None else check_int("k", self.k, low=1, high=n, high_name="n")
        if k != n:
            raise ValueError(f"Argument 'k' must be n={n} (or unset) in {self.mode} mode, not {k}.")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "k", k)

    @property
    def merged_needed(self) -> int:
        return self.n

    def share_dtype_for(self, dtype: object) -> str:
        return "<f4" if np.dtype(dtype) == np.float32 else "<f8"

    def share_length(self, length: int) -> int:
        return -(-check_int("length", length, low=0) // self.n)

    def encode(self, update, *, rng=None, out=None):
        if out is not None:
            raise ValueError(f"Argument 'out' is for codes that encode in place, not {self.mode}.")
        return rows(check_update(update, keep_float32=True), self.n)

    def reduce(self, shards, contributors):
        w = self.weights(contributors)
        got = as_rows(shards, w.size)
        if got is None:
            raise ValueError(f"Argument 'shards' must have shape ({w.size}, m), one row per contributor, "
                             f"not {np.shape(shards)}.")
        out = weighted_sum(got, w)
        return out.astype(np.float32) if all(r.dtype == np.float32 for r in got) else out

    def decode(self, merged, indices, *, length, n_terms):
        length = check_int("length", length, low=0)
        idx = check_indices(indices, self.n, "indices")
        got = as_rows(merged, len(idx))
        if got is None:
            raise ValueError(f"Argument 'merged' must have one row per index ({len(idx)}), "
                             f"not shape {np.shape(merged)}.")
        if len(idx) < self.merged_needed:
            raise NotEnoughShardsError(self.merged_needed, len(idx))
        m = got[0].shape[0]
        total = np.empty(min(length, len(got) * m))
        for j, row in zip(idx, got, strict=True):  # the slices in index order, into the result
            lo, hi = j * m, min((j + 1) * m, length)
            if lo < hi:
                total[lo:hi] = row[: hi - lo]
        return total


@dataclass(frozen=True)
class Plain(SlicedCode):
    """Scatter-reduce: the exact sum of every contribution, from all ``n`` slices.

    Parameters
    ----------
    n : int
        Workers, each the aggregator of one slice.
    k : int, optional
        Must be ``n`` (or unset).
    seed : int, optional
        Unused (kept so that every code takes a run's seed).
    """

    name = "plain"
    n: int
    k: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_sliced()
        object.__setattr__(self, "seed", check_int("seed", self.seed, low=0))


@dataclass(frozen=True)
class Backup(SlicedCode):
    """The sum of the first ``n - s`` contributions (stragglers dropped, approximate).

    Parameters
    ----------
    n : int
        Workers.
    k : int, optional
        Must be ``n`` (or unset).
    s : int, optional
        Contributions dropped, ``0 <= s < n``.
    seed : int, optional
        Unused.
    """

    name = "backup"
    n: int
    k: int | None = None
    s: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        n = check_int("n", self.n, low=1)
        object.__setattr__(self, "s", check_int("s", self.s, low=0, high=n - 1, high_name="n-1"))
        self._check_sliced()
        object.__setattr__(self, "seed", check_int("seed", self.seed, low=0))

    @property
    def contributions_needed(self) -> int:
        return self.n - self.s

    def check_quorum(self, quorum: int | None) -> int:
        need = self.contributions_needed
        if quorum is not None and quorum != need:
            raise ValueError(f"Argument 'quorum' must be n-s={need} (or unset) in {self.mode} mode, not {quorum}.")
        return need

    def weights(self, contributors: Sequence[int]) -> np.ndarray:
        who = check_indices(contributors, self.n, "contributors")
        if len(who) < self.contributions_needed:
            raise NotEnoughShardsError(self.contributions_needed, len(who), "contributions")
        return np.ones(len(who), dtype=np.float64)
