"""Store back ends: one per file, plus wrappers (counting) and ``open_store(url)``."""

from exchange.stores.base import Store, check_key
from exchange.stores.local import LocalStore

__all__ = ["LocalStore", "Store", "check_key"]
