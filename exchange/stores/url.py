"""``open_store(url)``: a store from a URL or a plain path."""

from __future__ import annotations

import os
import urllib.parse

from exchange.stores.base import Store
from exchange.stores.local import LocalStore

__all__ = ["open_store", "SCHEMES"]

SCHEMES = ("file", "s3")


def open_store(url: str | os.PathLike[str], *, fsync: bool = False) -> Store:
    """Open the store a URL names.

    Parameters
    ----------
    url : str or os.PathLike
        ``file:///abs/path``, a plain path (``runs/store``), or ``s3://bucket/prefix``.
        S3 credentials, region and endpoint come from the standard AWS environment.
    fsync : bool, optional
        Passed to :class:`LocalStore`.

    Returns
    -------
    Store

    Raises
    ------
    ValueError
        For an unknown scheme or a malformed URL, naming the argument and the schemes.
    """
    if isinstance(url, os.PathLike):
        return LocalStore(url, fsync=fsync)
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"Argument 'url' must be a non-empty path or URL, not {url!r}.")
    allowed = ", ".join(f"{s}://" for s in SCHEMES) + " or a plain path"
    if "://" not in url:
        if ":" in url.split("/", 1)[0] and not os.path.exists(url):
            raise ValueError(f"Argument 'url' must use one of {allowed}, not {url!r}.")
        return LocalStore(url, fsync=fsync)
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(f"Argument 'url' must be file:///absolute/path, not {url!r}.")
        return LocalStore(urllib.parse.unquote(parts.path), fsync=fsync)
    if scheme == "s3":
        if parts.query or parts.fragment or not parts.netloc:
            raise ValueError(f"Argument 'url' must be s3://bucket/prefix, not {url!r}.")
        from exchange.stores.s3 import S3Store  # boto3 is imported only when needed

        prefix = parts.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return S3Store(parts.netloc, prefix)
    raise ValueError(f"Argument 'url' must use one of {allowed}, not {url!r}.")
