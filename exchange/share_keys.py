"""Per-aggregator keys: each contribution share sealed to its aggregator alone.

Split from :mod:`exchange.crypto` (the job's shared-key ``EncryptedStore``) so each stays
a readable size. :class:`AggregatorKeys` holds the X25519 key pairs of a job's aggregators
as one party sees them (every public key, the private keys it holds); :func:`seal_share`
and :func:`open_share` seal and open one share (ECIES on X25519, HKDF-SHA256, AES-256-GCM);
:class:`SealedShareStore` wraps a store so that every ``.../contrib/{j}/{w}.{a}`` object
(:func:`share_aggregator`) is sealed to aggregator ``j`` on ``put`` and opened on ``get``.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coding.validate import check_int
from exchange.crypto import KEY_SIZE, NONCE_SIZE, TAG_SIZE
from exchange.errors import DecryptionError, KeyFileError, NotKeyHolderError
from exchange.stores.base import Store, WrappedStore

__all__ = [
    "AggregatorKeys",
    "SealedShareStore",
    "open_share",
    "seal_share",
    "share_aggregator",
]

# -- per-aggregator keys ----------------------------------------------------------------------

SEAL_MAGIC = b"KOFS"
SEAL_VERSION = 1
_SEAL = struct.Struct(">4sBI32s")  # magic | version | aggregator u32 | ephemeral X25519 key
SEAL_OVERHEAD = _SEAL.size + TAG_SIZE  # 41 + 16 bytes
AGG_KEY_FORMAT = "kofn-aggregator-keys"
_SEAL_NONCE = bytes(NONCE_SIZE)  # every sealed object has its own key, so one nonce is safe
_CONTRIB = re.compile(r"(?:^|/)contrib/(\d+)/\d+(?:\.[0-9a-f]{1,32})?$")


def share_aggregator(key: str) -> int | None:
    """The aggregator a contribution share ``.../contrib/{j}/{w}[.{attempt}]`` is for, else None."""
    m = _CONTRIB.search(key)
    return int(m.group(1)) if m else None


class AggregatorKeys:
    """The X25519 key pairs of a job's aggregators, as one party sees them.

    Every party knows all ``n`` public keys; a party holds only the private keys of the
    aggregators it is (worker ``j`` holds key ``j``), so a share sealed to aggregator ``j``
    (:func:`seal_share`) opens only where key ``j`` is held.

    Parameters
    ----------
    public : sequence of bytes
        The 32-byte raw X25519 public key of each aggregator ``0 .. n-1``.
    private : mapping of int to bytes, optional
        Raw 32-byte private keys this party holds, by aggregator index.
    """

    def __init__(self, public: Sequence[bytes], private: Mapping[int, bytes] | None = None):
        from cryptography.hazmat.primitives.asymmetric.x25519 import (
            X25519PrivateKey,
            X25519PublicKey,
        )

        if isinstance(public, (bytes, bytearray, str)) or not isinstance(public, Iterable):
            raise TypeError(f"Argument 'public' must be a sequence of 32-byte keys, "
                            f"not {type(public).__name__}.")
        public = [bytes(k) for k in public]
        if not public:
            raise ValueError("Argument 'public' must hold at least 1 key, not 0.")
        for j, key in enumerate(public):
            if len(key) != KEY_SIZE:
                raise ValueError(f"Argument 'public[{j}]' must be {KEY_SIZE} bytes, not {len(key)}.")
        self._public = public
        self._pub = [X25519PublicKey.from_public_bytes(k) for k in public]
        self._private: dict[int, object] = {}
        for j, raw in (private or {}).items():
            j = check_int("private index", j, low=0, high=len(public) - 1, high_name="n-1")
            priv = X25519PrivateKey.from_private_bytes(bytes(raw))
            if priv.public_key().public_bytes_raw() != public[j]:
                raise ValueError(f"Argument 'private[{j}]' does not match public key {j}.")
            self._private[j] = priv

    @classmethod
    def generate(cls, n: int) -> AggregatorKeys:
        """Fresh key pairs for ``n`` aggregators (this object holds every private key)."""
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        n = check_int("n", n, low=1)
        privs = [X25519PrivateKey.generate() for _ in range(n)]
        return cls([p.public_key().public_bytes_raw() for p in privs],
                   {j: p.private_bytes_raw() for j, p in enumerate(privs)})

    @property
    def n(self) -> int:
        """Number of aggregators."""
        return len(self._public)

    @property
    def held(self) -> tuple[int, ...]:
        """The aggregators whose private keys this party holds."""
        return tuple(sorted(self._private))

    def public(self, j: int) -> bytes:
        """Aggregator ``j``'s raw public key."""
        return self._public[check_int("j", j, low=0, high=self.n - 1, high_name="n-1")]

    def only(self, *held: int) -> AggregatorKeys:
        """The view of a party holding just the private keys of ``held`` (all public keys)."""
        missing = [j for j in held if j not in self._private]
        if missing:
            raise ValueError(f"Argument 'held' names keys this party lacks: {missing}.")
        return AggregatorKeys(self._public, {j: self._private[j].private_bytes_raw() for j in held})

    def __repr__(self) -> str:  # never show private keys
        return f"AggregatorKeys(n={self.n}, held={list(self.held)})"

    def to_json(self) -> str:
        """Key-file text: every public key and the private keys held (secret if any)."""
        doc = {"format": AGG_KEY_FORMAT, "version": 1,
               "public": [base64.b64encode(k).decode() for k in self._public],
               "private": {str(j): base64.b64encode(p.private_bytes_raw()).decode()
                           for j, p in sorted(self._private.items())}}
        return json.dumps(doc) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "aggregator keys") -> AggregatorKeys:
        """Parse :meth:`to_json` output; raise :class:`KeyFileError` if malformed."""
        try:
            doc = json.loads(text)
            if doc.get("format") != AGG_KEY_FORMAT or doc.get("version") != 1:
                raise ValueError("not kofn aggregator keys (format/version)")
            public = [base64.b64decode(k, validate=True) for k in doc["public"]]
            private = {int(j): base64.b64decode(k, validate=True) for j, k in doc["private"].items()}
            return cls(public, private)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise KeyFileError(f"Cannot read {source}: {err}") from None

    def _shared_key(self, j: int, peer: bytes, *, sender: bool, eph: object = None) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        # sender: ephemeral private x aggregator public; aggregator: its private x ephemeral public
        secret = (eph.exchange(self._pub[j]) if sender
                  else self._private[j].exchange(X25519PublicKey.from_public_bytes(peer)))
        eph_pub = peer
        info = b"kofn share seal v1\x00" + j.to_bytes(4, "big") + eph_pub + self._public[j]
        return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(secret)


def seal_share(keys: AggregatorKeys, j: int, key: str, data: bytes | bytearray | memoryview) -> bytes:
    """Seal ``data`` (object ``key``) so that only aggregator ``j``'s private key opens it.

    ECIES on X25519 (RFC 7748), in the shape of HPKE base mode (RFC 9180): a fresh
    ephemeral key pair per object, HKDF-SHA256 over the shared secret bound to ``j``, both
    public keys and the version, and AES-256-GCM with the header and object key as AAD::

        magic "KOFS" | version u8 | j u32 | ephemeral public key (32) | ciphertext | tag
    """
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    j = check_int("j", j, low=0, high=keys.n - 1, high_name="n-1")
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    header = _SEAL.pack(SEAL_MAGIC, SEAL_VERSION, j, eph_pub)
    aead = AESGCM(keys._shared_key(j, eph_pub, sender=True, eph=eph))
    return header + aead.encrypt(_SEAL_NONCE, bytes(data), header + key.encode())


def open_share(keys: AggregatorKeys, j: int, key: str, blob: bytes | bytearray | memoryview) -> bytes:
    """Open a share sealed to aggregator ``j``, or raise :class:`DecryptionError`."""
    view = memoryview(blob).cast("B")
    if view.nbytes < SEAL_OVERHEAD:
        raise DecryptionError(key, f"object is {view.nbytes} bytes, shorter than a sealed share")
    header = bytes(view[:_SEAL.size])
    magic, version, to, eph_pub = _SEAL.unpack(header)
    if magic != SEAL_MAGIC or version != SEAL_VERSION:
        raise DecryptionError(key, "not a kofn sealed share (bad magic or version)")
    if to != j:
        raise DecryptionError(key, f"sealed to aggregator {to}, not {j}")
    if j not in keys._private:
        raise NotKeyHolderError(key, f"sealed to aggregator {j}, whose private key this party "
                                     "does not hold")
    try:
        aead = AESGCM(keys._shared_key(j, eph_pub, sender=False))
        return aead.decrypt(_SEAL_NONCE, view[_SEAL.size:], header + key.encode())
    except (InvalidTag, ValueError):
        raise DecryptionError(key) from None


class SealedShareStore(WrappedStore):
    """Wrap a store so that each contribution share is sealed to its aggregator alone.

    Keys of the form ``.../contrib/{j}/{w}.{a}`` (see :func:`share_aggregator`) are sealed with
    :func:`seal_share` to aggregator ``j`` on ``put`` and opened with its private key on
    ``get``; every other object passes through unchanged. A party without key ``j`` gets
    :class:`DecryptionError` for aggregator ``j``'s shares, which the round treats as an
    erasure, so in secure mode only the holder of key ``j`` can do aggregator ``j``'s job.

    Parameters
    ----------
    inner : Store
        Where the sealed objects go (usually an :class:`EncryptedStore`).
    keys : AggregatorKeys
        All public keys and the private keys this party holds.
    """

    def __init__(self, inner: Store, keys: AggregatorKeys):
        super().__init__(inner)
        if not isinstance(keys, AggregatorKeys):
            raise TypeError(f"Argument 'keys' must be AggregatorKeys, not {type(keys).__name__}.")
        self.keys = keys

    def __repr__(self) -> str:
        return f"SealedShareStore({self.inner!r}, {self.keys!r})"

    def put(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> None:
        """Seal ``data`` to its aggregator if ``key`` is a contribution share, then store it."""
        self.inner.put(key, self._seal(key, data), if_absent=if_absent)

    def put_parts(self, key: str, parts: Sequence[tuple[str, bytes | bytearray | memoryview]], *,
                  if_absent: bool = False) -> list[tuple[int, int]]:
        """Seal every part named as a contribution share to its aggregator; write them as one."""
        return self.inner.put_parts(key, [(name, self._seal(name, data)) for name, data in parts],
                                    if_absent=if_absent)

    def get_part(self, key: str, name: str, offset: int, length: int) -> bytes:
        """Read part ``name`` of ``key`` and open it if it is a share (as :meth:`get` does)."""
        return self._open(name, self.inner.get_part(key, name, offset, length))

    def _seal(self, key: str, data: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
        j = share_aggregator(key) if isinstance(key, str) else None
        if j is not None and j < self.keys.n:
            return seal_share(self.keys, j, key, data)
        return data

    def get(self, key: str) -> bytes:
        """Fetch ``key``, opening it with the aggregator's private key if it is a share."""
        return self._open(key, self.inner.get(key))

    def get_bounded(self, key: str, max_bytes: int) -> bytes:
        """``get``, with a sealed share bounded by ``max_bytes`` plus the seal's overhead."""
        extra = SEAL_OVERHEAD if share_aggregator(key) is not None else 0
        return self._open(key, self.inner.get_bounded(key, max_bytes + extra))

    def _open(self, key: str, blob: bytes) -> bytes:
        j = share_aggregator(key)
        if j is None:
            return blob
        if j >= self.keys.n:
            raise DecryptionError(key, f"aggregator {j} has no key (n={self.keys.n})")
        return open_share(self.keys, j, key, blob)




