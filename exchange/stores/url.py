"""``open_store(url)``: a store from a URL or a plain path, by the URL's scheme.

The schemes form a registry (:data:`STORES`, ``scheme -> "module:from_url"``, imported on
first use), so a store back end is one module with a ``from_url(url, **options)`` plus one
:meth:`~exchange.registry.Registry.register` call.
"""

from __future__ import annotations

import os
import urllib.parse

from exchange.registry import Registry
from exchange.stores.base import Store
from exchange.stores.local import LocalStore

__all__ = ["STORES", "open_store"]

#: Store back ends by URL scheme.
STORES = Registry("store", {
    "file": "exchange.stores.local:from_url",
    "s3": "exchange.stores.s3:from_url",
    "memory": "exchange.stores.memory:from_url",
})


def open_store(url: str | os.PathLike[str], *, fsync: bool = False) -> Store:
    """Open the store a URL names.

    Parameters
    ----------
    url : str or os.PathLike
        ``file:///abs/path``, a plain path (``runs/store``), ``s3://bucket/prefix``,
        ``memory://NAME`` (this process only), or any scheme registered in :data:`STORES`.
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
    allowed = ", ".join(f"{s}://" for s in STORES.names()) + " or a plain path"
    if "://" not in url:
        if ":" in url.split("/", 1)[0] and not os.path.exists(url):
            raise ValueError(f"Argument 'url' must use one of {allowed}, not {url!r}.")
        return LocalStore(url, fsync=fsync)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in STORES:
        raise ValueError(f"Argument 'url' must use one of {allowed}, not {url!r}.")
    return STORES.load(scheme)(url, fsync=fsync)
