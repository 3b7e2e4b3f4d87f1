"""The embedded default store: one file per object under a root directory.

Writes are atomic and, with ``if_absent=True``, exclusive: the data goes to a temporary
file in the destination directory first, and is then either renamed over the final name
(``os.replace``, plain put) or hard-linked to it (``os.link``, which fails if the name
exists, so exactly one of several racing writers wins). Readers therefore never see a
partial object.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from coding.validate import check_int
from exchange.stores.base import Store, check_key

__all__ = ["LocalStore"]

_TMP_PREFIX = ".kofn-tmp-"
_MKDIR_RETRIES = 8  # a concurrent delete may prune a directory we just created


class LocalStore(Store):
    """Objects as files under ``root``; key ``a/b/c`` is the file ``root/a/b/c``.

    Parameters
    ----------
    root : str or os.PathLike
        Directory holding the objects; created if missing.
    fsync : bool, optional
        Flush each object (and its directory entry) to disk before ``put`` returns.
        Off by default: a crash may then lose recent objects but never exposes a partial
        one.

    Notes
    -----
    A key may not be both an object and a "directory" of other keys (``a`` and ``a/b``),
    as on any file system; such a put raises ``FileExistsError`` or ``NotADirectoryError``.
    Key parts starting with ``.kofn-tmp-`` are reserved for temporary files.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False):
        if not isinstance(root, (str, os.PathLike)) or not str(root):
            raise TypeError(f"Argument 'root' must be a non-empty path, not {root!r}.")
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"Argument 'root' must be a directory, not the file {str(self.root)!r}.")
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = bool(fsync)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        check_key(key)
        if any(part.startswith(_TMP_PREFIX) for part in key.split("/")):
            raise ValueError(f"Argument 'key' must not use the reserved prefix {_TMP_PREFIX!r}, not {key!r}.")
        return self.root.joinpath(*key.split("/"))

    def put(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> None:
        """Store ``data`` under ``key`` atomically (exclusively with ``if_absent=True``)."""
        path = self._path(key)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"Argument 'data' must be bytes-like, not {type(data).__name__}.")
        tmp = self._write_temp(path, data)
        try:
            if if_absent:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise FileExistsError(key) from None
            else:
                os.replace(tmp, path)
                tmp = None
            if self.fsync:
                _fsync_dir(path.parent)
        finally:
            if tmp is not None:
                _unlink_quiet(tmp)

    def _write_temp(self, path: Path, data: bytes | bytearray | memoryview) -> str:
        for attempt in range(_MKDIR_RETRIES):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
                break
            except FileNotFoundError:
                if attempt == _MKDIR_RETRIES - 1:
                    raise
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException:
            _unlink_quiet(tmp)
            raise
        return tmp

    def get(self, key: str) -> bytes:
        """Return the bytes stored under ``key``, or raise ``FileNotFoundError(key)``."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(key) from None

    def get_bounded(self, key: str, max_bytes: int) -> bytes:
        """``get``, refusing an object over ``max_bytes`` from its size, before reading it."""
        from exchange.errors import ObjectTooLargeError

        path = self._path(key)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > max_bytes:
                    raise ObjectTooLargeError(key, size, max_bytes)
                return f.read()  # objects are replaced by rename: this inode never grows
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(key) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return up to ``length`` bytes of ``key`` from offset ``start``."""
        path = self._path(key)
        start, length = _check_range(start, length)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                return f.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(key) from None

    def exists(self, key: str) -> bool:
        """Whether ``key`` names a stored object."""
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        """Return the object's size in bytes, or raise ``FileNotFoundError(key)``."""
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path.stat().st_size

    def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys starting with ``prefix`` (which may end mid-name)."""
        if not isinstance(prefix, str):
            raise TypeError(f"Argument 'prefix' must be a string, not {type(prefix).__name__}.")
        head, _, partial = prefix.rpartition("/")
        base = self.root.joinpath(*head.split("/")) if head else self.root
        if ".." in head.split("/") or prefix.startswith("/"):
            return []
        keys: list[str] = []
        try:
            entries = list(os.scandir(base))
        except (FileNotFoundError, NotADirectoryError):
            return []
        rel0 = f"{head}/" if head else ""
        for entry in entries:
            if not entry.name.startswith(partial) or entry.name.startswith(_TMP_PREFIX):
                continue
            if entry.is_dir(follow_symlinks=False):
                keys.extend(self._walk(entry.path, rel0 + entry.name + "/"))
            elif entry.is_file(follow_symlinks=False):
                keys.append(rel0 + entry.name)
        keys.sort()
        return keys

    def _walk(self, directory: str, rel: str) -> list[str]:
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(directory):
            sub = os.path.relpath(dirpath, directory)
            sub = "" if sub == "." else sub.replace(os.sep, "/") + "/"
            dirnames[:] = [d for d in dirnames if not d.startswith(_TMP_PREFIX)]
            out.extend(rel + sub + f for f in filenames if not f.startswith(_TMP_PREFIX))
        return out

    def delete(self, keys: Iterable[str]) -> None:
        """Delete ``keys``; missing keys are ignored, emptied directories are pruned."""
        if isinstance(keys, str):
            raise TypeError("Argument 'keys' must be an iterable of keys, not a single string.")
        paths = [self._path(k) for k in keys]
        for path in paths:
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except IsADirectoryError:
                continue
            self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:  # not empty, or already gone
                return
            directory = directory.parent


def _check_range(start: object, length: object) -> tuple[int, int]:
    return check_int("start", start, low=0), check_int("length", length, low=0)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as err:  # some platforms cannot open directories
        if err.errno in (errno.EACCES, errno.EISDIR):
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def from_url(url: str, *, fsync: bool = False, **_options: object) -> LocalStore:
    """``file:///absolute/path``: a :class:`LocalStore` at that path."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path:
        raise ValueError(f"Argument 'url' must be file:///absolute/path, not {url!r}.")
    return LocalStore(urllib.parse.unquote(parts.path), fsync=fsync)
