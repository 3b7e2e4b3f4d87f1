"""Gradient codes: any ``n - s`` finished trainers give the exact sum of all ``n``.

Worker ``i`` trains on the ``s + 1`` partitions of ``GradientCode(n, s).partitions(i)`` and
publishes its coded combination ``f_i`` of their updates (Tandon et al., "Gradient
coding", ICML 2017). An aggregator weights the first ``n - s`` contributions it sees with
the code's decoding vector for that set, so aggregators need no consensus: every
qualifying set gives the same total. :class:`Gradient` slices the contributions as
``plain`` does; :class:`GradientMDS` adds an MDS stage, so any ``k`` merged shards decode.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coding.errors import NotEnoughShardsError
from coding.validate import check_int
from exchange.codes.base import check_indices
from exchange.codes.mds import RealMDSStage
from exchange.codes.sliced import SlicedCode

__all__ = ["Gradient", "GradientMDS", "gradient_code"]


@functools.lru_cache(maxsize=32)
def gradient_code(n: int, s: int):
    """``GradientCode(n, s)``, built once per parameter set."""
    from coding.gradient import GradientCode

    return GradientCode(n, s)


class _GradientContributions:
    """The trainer side and the aggregator weights every gradient code shares."""

    n: int
    s: int

    @property
    def contributions_needed(self) -> int:
        return self.n - self.s

    @property
    def needs_consensus(self) -> bool:
        return False

    def check_quorum(self, quorum: int | None) -> int:
        need = self.contributions_needed
        if quorum is not None and quorum != need:
            raise ValueError(f"Argument 'quorum' must be n-s={need} (or unset) in "
                             f"{self.mode} mode, not {quorum}.")  # type: ignore[attr-defined]
        return need

    def n_terms(self, contributors: Sequence[int]) -> int:
        return self.n  # the code recovers the sum of all n from any n - s

    def partitions(self, worker: int) -> tuple[int, ...]:
        return tuple(int(p) for p in gradient_code(self.n, self.s).partitions(worker))

    def coefficients(self, worker: int) -> tuple[float, ...]:
        return tuple(float(c) for c in np.asarray(gradient_code(self.n, self.s).coefficients(worker)).reshape(-1))

    def weights(self, contributors: Sequence[int]) -> np.ndarray:
        who = check_indices(contributors, self.n, "contributors")
        if len(who) < self.contributions_needed:
            raise NotEnoughShardsError(self.contributions_needed, len(who), "contributions")
        return np.asarray(gradient_code(self.n, self.s).decoder(who), dtype=np.float64).reshape(len(who))

    def _check_gradient(self, k_default: int | None) -> None:
        n = check_int("n", self.n, low=1)
        s = check_int("s", self.s, low=0, high=n - 1, high_name="n-1")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "s", s)
        object.__setattr__(self, "seed", check_int("seed", self.seed, low=0))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Gradient(_GradientContributions, SlicedCode):
    """Gradient-coded contributions, sliced aggregation (all ``n`` merged slices).

    Parameters
    ----------
    n : int
        Workers.
    k : int, optional
        Must be ``n`` (or unset); a run with ``k < n`` gets :class:`GradientMDS`.
    s : int, optional
        Stragglers tolerated among the trainers.
    seed : int, optional
        Unused by the slices.
    """

    name = "gradient"
    n: int
    k: int | None = None
    s: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_gradient(None)
        self._check_sliced()

    @classmethod
    def from_settings(cls, n, *, k=None, s=0, t=0, p=None, seed=0):
        """``k < n`` adds the MDS stage (:class:`GradientMDS`)."""
        if k is not None and k != n:
            return GradientMDS.from_settings(n, k=k, s=s, t=t, p=p, seed=seed)
        return super().from_settings(n, k=k, s=s, t=t, p=p, seed=seed)


@dataclass(frozen=True)
class GradientMDS(_GradientContributions, RealMDSStage):
    """Gradient-coded contributions, MDS-coded aggregation (any ``k`` merged shards).

    Parameters
    ----------
    n : int
        Workers.
    k : int, optional
        Merged shards needed (default ``n - s``).
    s : int, optional
        Stragglers tolerated among the trainers.
    seed : int, optional
        Seed of the real generator.
    """

    name = "gradient+mds"
    n: int
    k: int | None = None
    s: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_gradient(None)
        k = self.n - self.s if self.k is None else check_int("k", self.k, low=1, high=self.n, high_name="n")
        object.__setattr__(self, "k", k)
