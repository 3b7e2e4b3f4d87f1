"""The error of a malformed run configuration, shared by :mod:`worker.config` and
:mod:`worker.straggle` (its public home stays :mod:`worker.config`, which re-exports it)."""

from __future__ import annotations

from coding.errors import KofnError

__all__ = ["ConfigError"]


class ConfigError(KofnError, ValueError):
    """A run configuration is malformed or refers to something that does not exist."""
