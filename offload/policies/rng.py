"""Seed handling shared by the policies."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_rng"]


def as_rng(rng) -> np.random.Generator:
    """Return a Generator for ``rng`` (a Generator, an int seed, or ``None`` for seed 0).

    ``None`` means seed 0, not fresh entropy: policies are pure functions of their inputs.
    """
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"Argument 'rng' must be a numpy Generator, a non-negative int or None, not {rng!r}."
    )
