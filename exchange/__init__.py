"""Object stores, encryption, the shard format and the coded scatter-reduce round.

Workers that cannot talk to each other exchange coded updates through a :class:`Store`
(``LocalStore`` or ``S3Store``, optionally wrapped in ``EncryptedStore``); because the codes
are linear, a round completes from any sufficient set of contributions and aggregators.
Imports only :mod:`coding` among kofn's packages, and never torch.
"""

from .codes import Code, code_class, code_names, make_code, register_code
from .crypto import EncryptedStore, Keyring, load_keyring, new_key, write_key_file
from .errors import (
    CorruptShardError,
    DecryptionError,
    KeyFileError,
    RoundBehindError,
    RoundTimeoutError,
)
from .layout import TensorLayout, TensorSpec, flatten, unflatten
from .reduce import MODES, CodeSpec, coded_reduce, decode_aggregate, encode_update, reference_round
from .round import Exchange, RoundConfig, RoundResult, RoundStats
from .session import AllReduce, AllReduceResult
from .shards import Shard, ShardHeader, pack_shard, unpack_shard
from .stores import CountingStore, LocalStore, Store, StoreStats, open_store

__all__ = [
    "AllReduce",
    "AllReduceResult",
    "MODES",
    "Code",
    "CodeSpec",
    "CorruptShardError",
    "CountingStore",
    "DecryptionError",
    "EncryptedStore",
    "Exchange",
    "KeyFileError",
    "Keyring",
    "LocalStore",
    "RoundBehindError",
    "RoundConfig",
    "RoundResult",
    "RoundStats",
    "RoundTimeoutError",
    "Shard",
    "ShardHeader",
    "Store",
    "StoreStats",
    "TensorLayout",
    "TensorSpec",
    "code_class",
    "code_names",
    "coded_reduce",
    "decode_aggregate",
    "encode_update",
    "flatten",
    "load_keyring",
    "make_code",
    "new_key",
    "open_store",
    "pack_shard",
    "reference_round",
    "register_code",
    "unflatten",
    "unpack_shard",
    "write_key_file",
]


def __getattr__(name: str) -> object:
    if name == "S3Store":  # boto3 is imported only when S3 is used
        from .stores.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
