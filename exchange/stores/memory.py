"""``MemoryStore``: objects in this process's memory (``memory://NAME``), for tests and demos.

Every ``MemoryStore`` opened with the same name shares one dict, so threads of one
process (an in-process launcher, a test's workers) see each other's objects as they would
through S3; other processes see nothing. Writes copy the bytes, and ``if_absent`` is
atomic under a lock, as the :class:`~exchange.stores.base.Store` contract asks.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterable

from exchange.stores.base import Store, check_key

__all__ = ["MemoryStore", "from_url"]

_SPACES: dict[str, tuple[threading.Lock, dict[str, bytes]]] = {}
_SPACES_LOCK = threading.Lock()


class MemoryStore(Store):
    """A store in process memory; ``MemoryStore(name)`` instances with one name share it."""

    def __init__(self, name: str = "default"):
        if not isinstance(name, str) or not name:
            raise ValueError(f"Argument 'name' must be a non-empty string, not {name!r}.")
        self.name = name
        with _SPACES_LOCK:
            self._lock, self._objects = _SPACES.setdefault(name, (threading.Lock(), {}))

    def __repr__(self) -> str:
        return f"MemoryStore({self.name!r})"

    def put(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> None:
        """Store a copy of ``data`` under ``key`` (exclusively with ``if_absent=True``)."""
        check_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"Argument 'data' must be bytes-like, not {type(data).__name__}.")
        blob = bytes(data)
        with self._lock:
            if if_absent and key in self._objects:
                raise FileExistsError(key)
            self._objects[key] = blob

    def get(self, key: str) -> bytes:
        """The bytes under ``key``, or ``FileNotFoundError(key)``."""
        check_key(key)
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise FileNotFoundError(key) from None

    def get_bounded(self, key: str, max_bytes: int) -> bytes:
        """``get``, refusing an object over ``max_bytes``."""
        from exchange.errors import ObjectTooLargeError

        data = self.get(key)
        if len(data) > max_bytes:
            raise ObjectTooLargeError(key, len(data), max_bytes)
        return data

    def exists(self, key: str) -> bool:
        """Whether ``key`` names a stored object."""
        check_key(key)
        with self._lock:
            return key in self._objects

    def list(self, prefix: str = "") -> list[str]:
        """The sorted keys starting with ``prefix``."""
        if not isinstance(prefix, str):
            raise TypeError(f"Argument 'prefix' must be a string, not {type(prefix).__name__}.")
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(prefix))

    def delete(self, keys: Iterable[str]) -> None:
        """Delete ``keys``; missing keys are ignored."""
        if isinstance(keys, str):
            raise TypeError("Argument 'keys' must be an iterable of keys, not a single string.")
        with self._lock:
            for key in keys:
                self._objects.pop(key, None)

    @classmethod
    def drop(cls, name: str) -> None:
        """Forget every object of the space ``name`` (a test's teardown)."""
        with _SPACES_LOCK:
            _SPACES.pop(name, None)


def from_url(url: str, **_options: object) -> MemoryStore:
    """``memory://NAME``: the shared in-process space ``NAME``."""
    parts = urllib.parse.urlsplit(url)
    name = parts.netloc + parts.path
    if not name or parts.query or parts.fragment:
        raise ValueError(f"Argument 'url' must be memory://NAME, not {url!r}.")
    return MemoryStore(name)
