"""Domain errors shared by every kofn package.

All kofn errors derive from :class:`KofnError`, so the CLI can turn any of them into a
one-line message and a non-zero exit. Input validation raises the built-in
``ValueError``/``TypeError`` with one wording everywhere (see :mod:`coding.validate`).
"""

from __future__ import annotations

__all__ = [
    "KofnError",
    "NotEnoughShardsError",
    "DuplicateIndexError",
    "OverflowRiskError",
]


class KofnError(Exception):
    """Base class of every kofn domain error."""


class NotEnoughShardsError(KofnError):
    """Fewer shards (or results, or workers) arrived than the code needs to decode.

    Parameters
    ----------
    needed : int
        How many distinct shards the decoder needs.
    got : int
        How many it was given.
    """

    def __init__(self, needed: int, got: int, what: str = "shards"):
        self.needed = int(needed)
        self.got = int(got)
        super().__init__(f"Need at least {self.needed} distinct {what} to decode, got {self.got}.")


class DuplicateIndexError(KofnError, ValueError):
    """The same shard index was given twice, so the shards cannot be independent."""

    def __init__(self, index: int, what: str = "shard index"):
        self.index = int(index)
        super().__init__(
            f"{what.capitalize()} {self.index} was given more than once; they must be distinct."
        )


class OverflowRiskError(KofnError, ValueError):
    """A fixed-point/GF(p) configuration could wrap around and return a wrong answer."""
