"""A wrapper that counts requests and bytes, for round statistics and benchmarks."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable

from exchange.stores.base import Store

__all__ = ["CountingStore", "StoreStats"]


@dataclasses.dataclass
class StoreStats:
    """Request counts and payload bytes seen by a :class:`CountingStore`.

    Attributes
    ----------
    puts, gets, lists, deletes : int
        Requests of each kind (a ``delete`` call with many keys counts once per key in
        ``deleted_keys`` and once in ``deletes``).
    bytes_up, bytes_down : int
        Payload bytes written by ``put`` and read by ``get``/``get_range``.
    errors : int
        Calls that raised.
    """

    puts: int = 0
    gets: int = 0
    lists: int = 0
    deletes: int = 0
    deleted_keys: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    errors: int = 0

    def snapshot(self) -> StoreStats:
        """Return a copy (the live object keeps counting)."""
        return dataclasses.replace(self)

    def __sub__(self, other: StoreStats) -> StoreStats:
        return StoreStats(**{f.name: getattr(self, f.name) - getattr(other, f.name)
                             for f in dataclasses.fields(self)})

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (for JSON results)."""
        return dataclasses.asdict(self)


class CountingStore(Store):
    """Wrap ``inner`` and count every request and byte in ``self.stats`` (thread-safe).

    Parameters
    ----------
    inner : Store
        The store doing the work.
    """

    def __init__(self, inner: Store):
        if not isinstance(inner, Store):
            raise TypeError(f"Argument 'inner' must be a Store, not {type(inner).__name__}.")
        self.inner = inner
        self.stats = StoreStats()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CountingStore({self.inner!r})"

    def _add(self, **delta: int) -> None:
        with self._lock:
            for name, value in delta.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    def reset(self) -> StoreStats:
        """Zero the counters and return what they held."""
        with self._lock:
            old, self.stats = self.stats, StoreStats()
        return old

    def put(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> None:
        """Count, then delegate to ``inner.put``."""
        try:
            self.inner.put(key, data, if_absent=if_absent)
        except BaseException:
            self._add(puts=1, errors=1)
            raise
        self._add(puts=1, bytes_up=memoryview(data).nbytes)

    def put_parts(self, key: str, parts, *, if_absent: bool = False) -> list[tuple[int, int]]:
        """Count one PUT, then delegate to ``inner.put_parts``."""
        try:
            index = self.inner.put_parts(key, parts, if_absent=if_absent)
        except BaseException:
            self._add(puts=1, errors=1)
            raise
        self._add(puts=1, bytes_up=sum(memoryview(data).nbytes for _, data in parts))
        return index

    def get_part(self, key: str, name: str, offset: int, length: int) -> bytes:
        """Count one GET, then delegate to ``inner.get_part``."""
        try:
            data = self.inner.get_part(key, name, offset, length)
        except BaseException:
            self._add(gets=1, errors=1)
            raise
        self._add(gets=1, bytes_down=len(data))
        return data

    def get(self, key: str) -> bytes:
        """Count, then delegate to ``inner.get``."""
        try:
            data = self.inner.get(key)
        except BaseException:
            self._add(gets=1, errors=1)
            raise
        self._add(gets=1, bytes_down=len(data))
        return data

    def get_bounded(self, key: str, max_bytes: int) -> bytes:
        """Count, then delegate to ``inner.get_bounded``."""
        try:
            data = self.inner.get_bounded(key, max_bytes)
        except BaseException:
            self._add(gets=1, errors=1)
            raise
        self._add(gets=1, bytes_down=len(data))
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Count, then delegate to ``inner.get_range``."""
        try:
            data = self.inner.get_range(key, start, length)
        except BaseException:
            self._add(gets=1, errors=1)
            raise
        self._add(gets=1, bytes_down=len(data))
        return data

    def exists(self, key: str) -> bool:
        """Delegate to ``inner.exists`` (counted as a GET/HEAD request)."""
        self._add(gets=1)
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> list[str]:
        """Count, then delegate to ``inner.list``."""
        try:
            return self.inner.list(prefix)
        finally:
            self._add(lists=1)

    def delete(self, keys: Iterable[str]) -> None:
        """Count, then delegate to ``inner.delete``."""
        keys = list(keys) if not isinstance(keys, str) else keys
        self.inner.delete(keys)
        self._add(deletes=1, deleted_keys=len(keys))

    def close(self) -> None:
        """Close the inner store."""
        self.inner.close()
