"""The object-store interface every back end implements.

Modelled on fsspec's ``AbstractFileSystem`` but deliberately small: a back end implements
``put``, ``get``, ``list`` and ``delete`` and nothing else. Errors are built-ins so callers
need no back-end-specific handling: a missing key is ``FileNotFoundError(key)``, a lost
``if_absent`` race is ``FileExistsError(key)``, refused credentials are ``PermissionError``.
Wrappers (encryption, request counting) are stores around stores.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

from coding.validate import check_int

__all__ = ["Store", "WrappedStore", "check_key"]


def check_key(key: str) -> str:
    """Validate an object key: non-empty, relative, '/'-separated, no '.' or '..' parts."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"Argument 'key' must be a non-empty string, not {key!r}.")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"Argument 'key' must be a relative '/'-separated key, not {key!r}.")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"Argument 'key' must not contain empty, '.' or '..' parts, not {key!r}.")
    return key


class Store(abc.ABC):
    """A flat key -> bytes object store.

    Keys are '/'-separated strings. ``list(prefix)`` returns every key that starts with
    ``prefix`` (a plain string prefix, as S3 does), sorted.
    """

    @abc.abstractmethod
    def put(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> None:
        """Store ``data`` under ``key``, atomically.

        With ``if_absent=True`` the write happens only if ``key`` does not exist yet; of
        several racing writers exactly one succeeds and the others get ``FileExistsError``.
        """

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the object's bytes, or raise ``FileNotFoundError(key)``."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with ``prefix``."""

    @abc.abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete the given keys; keys that do not exist are ignored."""

    def get_bounded(self, key: str, max_bytes: int) -> bytes:
        """``get(key)``, refusing an object over ``max_bytes`` with ``ObjectTooLargeError``.

        Back ends that learn an object's size first (a ``stat``, S3's ``Content-Range``)
        refuse it before reading or allocating; this default reads, then checks, so a
        wrapper store without its own version stays correct.
        """
        from exchange.errors import ObjectTooLargeError

        max_bytes = check_int("max_bytes", max_bytes, low=0)
        data = self.get(key)
        if len(data) > max_bytes:
            raise ObjectTooLargeError(key, len(data), max_bytes)
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return up to ``length`` bytes of ``key`` from byte ``start`` (default: slice ``get``)."""
        start = check_int("start", start, low=0)
        length = check_int("length", length, low=0)
        return bytes(self.get(key)[start : start + length])

    def put_parts(self, key: str, parts: Sequence[tuple[str, bytes | bytearray | memoryview]], *,
                  if_absent: bool = False) -> list[tuple[int, int]]:
        """Write ``parts``, ``(name, data)`` pairs, as the one object ``key``: one PUT.

        Returns each part's ``(offset, length)`` in the object, for :meth:`get_part`. Each
        part keeps its own name: a wrapper transforms every part as if it were an object of
        that name (encryption binds the name, sealing picks the part's recipient), so a part
        read back with ``get_part(key, name, offset, length)`` is checked on its own and
        cannot be moved to another part's place. This default concatenates the parts and calls ``put``.
        """
        index, pos = [], 0
        for name, data in parts:
            check_key(name)
            index.append((pos, len(data)))
            pos += len(data)
        self.put(key, b"".join(data for _, data in parts), if_absent=if_absent)
        return index

    def get_part(self, key: str, name: str, offset: int, length: int) -> bytes:
        """Part ``name`` of an object written by :meth:`put_parts`: one ranged GET.

        A short read (a truncated object) is returned as it is; the part's own checks
        (checksum, authentication) then reject it.
        """
        return self.get_range(key, offset, length)

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists (a convenience built on ``get``; back ends may override)."""
        try:
            self.get(key)
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections or thread pools, if any."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WrappedStore(Store):
    """A store around a store (encryption, sealing, fault injection): the keys, listing,
    deletion and closing pass through to ``inner``; a subclass says what ``put`` and ``get``
    do to the bytes (and ``put_parts``/``get_part``/``get_bounded`` where it transforms
    them: the defaults here go through its ``put``/``get``)."""

    def __init__(self, inner: Store):
        if not isinstance(inner, Store):
            raise TypeError(f"Argument 'inner' must be a Store, not {type(inner).__name__}.")
        self.inner = inner

    def exists(self, key: str) -> bool:
        """Whether ``inner`` holds ``key``."""
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> list[str]:
        """Keys of ``inner`` starting with ``prefix``."""
        return self.inner.list(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        """Delete ``keys`` from ``inner``."""
        self.inner.delete(keys)

    def close(self) -> None:
        """Close ``inner``."""
        self.inner.close()
