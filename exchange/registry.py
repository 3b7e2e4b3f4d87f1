"""Named extension points: a name maps to ``"module:attr"``, imported on first use.

The shape of fsspec's ``registry.py`` (and of :mod:`exchange.codes`): a built-in entry
costs nothing until it is asked for, a missing optional dependency is one line naming
what to install, and a user adds an entry from anywhere with :meth:`Registry.register`
(or by naming ``"pkg.module:attr"`` directly where a registry accepts that).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["Registry", "load_target"]


def load_target(target: str, *, what: str) -> Any:
    """Import ``"module:attr"`` and return the attribute, with a one-line error if it fails."""
    if not isinstance(target, str) or target.count(":") != 1:
        raise ValueError(f"{what} must be named as 'module:attr', not {target!r}.")
    module, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = err.name or module
        if missing == module or module.startswith(missing + "."):
            raise ImportError(f"{what} names module {module!r}, which does not exist.") from None
        raise ImportError(f"{what} needs the package {missing!r}, which is not installed "
                          f"(install it, for example `uv add {missing.split('.')[0]}`).") from None
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise ImportError(f"{what} names {target!r}, but {module!r} has no {attr!r}.") from None


class Registry:
    """Names of one kind of extension (``"store"``, ``"launcher"``) and where they live.

    Parameters
    ----------
    kind : str
        What the entries are, for messages (``Argument 'launcher' must be one of ...``).
    entries : mapping of str to str or object
        The built-ins: name to ``"module:attr"`` or the object itself.
    """

    def __init__(self, kind: str, entries: Mapping[str, Any]):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        for name, target in entries.items():
            self.register(name, target)

    def register(self, name: str, target: Any, *, replace: bool = False) -> None:
        """Add ``name``: an object, or ``"module:attr"`` imported on first use."""
        if not isinstance(name, str) or not name or "/" in name or ":" in name:
            raise ValueError(f"Argument 'name' must be a non-empty string without '/' or ':', "
                             f"not {name!r}.")
        if isinstance(target, str) and target.count(":") != 1:
            raise ValueError(f"Argument 'target' must be 'module:attr', not {target!r}.")
        if name in self._entries and not replace and self._entries[name] != target:
            raise ValueError(f"The {self.kind} {name!r} is already registered as "
                             f"{self._entries[name]!r}; pass replace=True.")
        self._entries[name] = target

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a no-op if it is not registered)."""
        self._entries.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def check(self, name: object) -> str:
        """``name`` if registered, else the one-line error naming every choice."""
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"Argument {self.kind!r} must be one of {', '.join(self._entries)}, "
                             f"not {name!r}.")
        return name

    def load(self, name: str) -> Any:
        """The object registered as ``name`` (imported now if it was named by string)."""
        target = self._entries[self.check(name)]
        if isinstance(target, str):
            return load_target(target, what=f"The {self.kind} {name!r}")
        return target
