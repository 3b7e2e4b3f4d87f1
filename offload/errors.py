"""Errors raised by :mod:`offload`.

Field-level checks raise the built-in ``ValueError``/``TypeError`` with the shared wording of
:mod:`coding.validate` (``Argument 'master.power' must be at least 0.0, not -1.0.``).
Problems that involve several fields at once, or a malformed instance file, raise
:class:`InstanceError`. An instance that cannot meet its latency budget is *not* an error:
policies return a :class:`~offload.placement.Placement` with ``feasible=False``.
"""

from __future__ import annotations

from coding.errors import KofnError

__all__ = ["InstanceError", "UnknownPolicyError"]


class InstanceError(KofnError, ValueError):
    """An offloading instance is malformed: bad combination of fields or a bad TOML file."""


class UnknownPolicyError(KofnError, ValueError):
    """A policy name is not in :data:`offload.policies.POLICIES`."""

    def __init__(self, name: str, allowed: list[str]):
        self.name = name
        self.allowed = list(allowed)
        super().__init__(
            f"Argument 'policy' must be one of {', '.join(self.allowed)}, not {name!r}."
        )
