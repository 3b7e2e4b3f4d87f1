"""kofn as a library: coded all-reduce over an object store, and the codes behind it.

The public face of kofn's packages (``coding`` <- ``exchange`` <- ``worker``): everything
here is a re-export, so ``import kofn`` is the one import a user script needs.

>>> import numpy as np, kofn, tempfile
>>> store = kofn.LocalStore(tempfile.mkdtemp())
>>> code = kofn.make_code("plain", 1)
>>> with kofn.AllReduce(store, code, worker=0) as session:
...     session.allreduce({"w": np.ones(3)})["w"].tolist()
[1.0, 1.0, 1.0]

``kofn.to_numpy``, ``kofn.from_numpy`` and ``kofn.add_`` (the torch/numpy bridge of
:mod:`worker.bridge`) import torch on first use.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from coding.errors import KofnError, NotEnoughShardsError
from exchange import (
    Code,
    CorruptShardError,
    CountingStore,
    DecryptionError,
    EncryptedStore,
    Exchange,
    Keyring,
    LocalStore,
    RoundConfig,
    RoundResult,
    RoundTimeoutError,
    Store,
    code_class,
    code_names,
    make_code,
    open_store,
    register_code,
)
from exchange.session import AllReduce, AllReduceResult

try:
    __version__ = _metadata.version("kofn")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AllReduce",
    "AllReduceResult",
    "Code",
    "CorruptShardError",
    "CountingStore",
    "DecryptionError",
    "EncryptedStore",
    "Exchange",
    "KofnError",
    "Keyring",
    "LocalStore",
    "NotEnoughShardsError",
    "RoundConfig",
    "RoundResult",
    "RoundTimeoutError",
    "Store",
    "__version__",
    "add_",
    "code_class",
    "code_names",
    "from_numpy",
    "make_code",
    "open_store",
    "register_code",
    "to_numpy",
]

_LAZY = {"to_numpy": "worker.bridge", "from_numpy": "worker.bridge", "add_": "worker.bridge",
         "S3Store": "exchange.stores.s3"}


def __getattr__(name: str) -> object:
    if name in _LAZY:  # torch and boto3 load only when asked for
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
