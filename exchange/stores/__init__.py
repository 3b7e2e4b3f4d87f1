"""Store back ends: one per file, plus wrappers (counting) and ``open_store(url)``.

``S3Store`` is imported lazily (``from exchange.stores.s3 import S3Store`` or via this
package's attribute) so that local-only users do not pay for importing boto3.
"""

from exchange.stores.base import Store, check_key
from exchange.stores.counting import CountingStore, StoreStats
from exchange.stores.local import LocalStore
from exchange.stores.memory import MemoryStore
from exchange.stores.url import STORES, open_store

__all__ = ["STORES", "CountingStore", "LocalStore", "MemoryStore", "S3Store", "Store", "StoreStats",
           "check_key", "open_store"]


def __getattr__(name: str) -> object:
    if name == "S3Store":
        from exchange.stores.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
