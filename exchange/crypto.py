"""Authenticated encryption of stored objects: ``EncryptedStore(inner, keyring)``.

Every object is sealed with AES-256-GCM (NIST SP 800-38D) under a fresh random 96-bit
nonce, in chunks so that no single AES call or buffer exceeds ``chunk_size``::

    header  = magic "KOFN" | version u8 | algorithm u8 | key id (8 bytes)
              | chunk size u32 | nonce (12 bytes)                      -- 30 bytes
    chunk i = AES-GCM(key, nonce XOR i, plaintext chunk i,
                      AAD = header | object key | i u32 | final u8)  -- len + 16 bytes

Binding the header and the object key as associated data means a flipped bit anywhere,
an object copied under another key, reordered chunks and truncation at a chunk boundary
(the ``final`` flag) all fail authentication and raise :class:`DecryptionError` naming
the object. This is the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár,
"Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015.

Keys are 32 random bytes read from a key file (``kofn keygen``) or the environment
(``KOFN_KEY`` / ``KOFN_KEY_FILE``), never from code. A :class:`Keyring` holds several
keys: it encrypts with the primary one and decrypts by the key id in each header, so keys
can be rotated without re-encrypting old objects.

Sealing each contribution share to its own aggregator's key (``SealedShareStore``,
``AggregatorKeys``) is in :mod:`exchange.share_keys`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coding.validate import check_int
from exchange.errors import DecryptionError, KeyFileError
from exchange.stores.base import Store, WrappedStore, check_key

__all__ = [
    "EncryptedStore",
    "Keyring",
    "key_id",
    "load_keyring",
    "new_key",
    "open_sealed",
    "seal",
    "write_key_file",
    "HEADER_SIZE",
    "TAG_SIZE",
]

MAGIC = b"KOFN"
VERSION = 1
ALG_AES256GCM = 1
_HEADER = struct.Struct(">4sBB8sI12s")
_PREFIX = struct.Struct(">4sBB8sI")  # the header without its nonce: constant per key and chunk size
_INDEX_FINAL = struct.Struct(">IB")  # the AAD suffix: chunk index u32 | final u8
HEADER_SIZE = _HEADER.size  # 30
PREFIX_SIZE = _PREFIX.size  # 18
TAG_SIZE = 16
KEY_SIZE = 32
NONCE_SIZE = 12
DEFAULT_CHUNK = 1 << 20
KEY_FILE_FORMAT = "kofn-keyring"
_ONLY_CHUNK = _INDEX_FINAL.pack(0, 1)  # AAD suffix of chunk 0 when it is also the last
# Up to these sizes (measured crossovers), a copy costs less than building a view or an
# uninitialised output buffer, so put seals with bytes concatenation and get slices.
_PUT_CONCAT_MAX = 64 * 1024
_GET_SLICE_MAX = 8 * 1024
_urandom = os.urandom  # the nonce source: the OS CSPRNG (tests patch this name only)


def key_id(key: bytes) -> bytes:
    """The 8-byte id of a key: a truncated SHA-256 of it under a domain prefix."""
    return hashlib.sha256(b"kofn key id v1\x00" + bytes(key)).digest()[:8]


def new_key() -> bytes:
    """Return 32 fresh random bytes from the OS CSPRNG."""
    return secrets.token_bytes(KEY_SIZE)


class Keyring:
    """AES-256 keys by id; the primary key encrypts, any key decrypts its own objects.

    Parameters
    ----------
    keys : sequence of bytes
        32-byte keys. The first is the primary unless ``primary`` says otherwise.
    primary : bytes or str, optional
        The id (8 bytes, or 16 hex digits) of the key to encrypt with.
    """

    def __init__(self, keys: Sequence[bytes], *, primary: bytes | str | None = None):
        if isinstance(keys, (bytes, bytearray, str)) or not isinstance(keys, Iterable):
            raise TypeError("Argument 'keys' must be a sequence of 32-byte keys, "
                            f"not {type(keys).__name__}.")
        keys = list(keys)
        if not keys:
            raise ValueError("Argument 'keys' must hold at least 1 key, not 0.")
        self._aead: dict[bytes, AESGCM] = {}
        self._keys: dict[bytes, bytes] = {}
        for i, key in enumerate(keys):
            if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
                size = len(key) if isinstance(key, (bytes, bytearray)) else type(key).__name__
                raise ValueError(f"Argument 'keys[{i}]' must be {KEY_SIZE} bytes, not {size}.")
            kid = key_id(key)
            self._keys[kid] = bytes(key)
            self._aead[kid] = AESGCM(bytes(key))
        if primary is None:
            self._primary = key_id(keys[0])
        else:
            pid = bytes.fromhex(primary) if isinstance(primary, str) else bytes(primary)
            if pid not in self._keys:
                raise ValueError(f"Argument 'primary' must be the id of a key in the ring, "
                                 f"not {pid.hex()!r}.")
            self._primary = pid

    @property
    def primary(self) -> bytes:
        """The 8-byte id of the key that encrypts (read-only: a ring never changes)."""
        return self._primary

    def __repr__(self) -> str:  # never show key bytes
        ids = ", ".join(k.hex() for k in self._keys)
        return f"Keyring(ids=[{ids}], primary={self.primary.hex()})"

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def ids(self) -> list[str]:
        """The key ids as hex strings, primary first."""
        return [self.primary.hex()] + [k.hex() for k in self._keys if k != self.primary]

    def rotated(self) -> Keyring:
        """A new ring with a fresh primary key, keeping every old key for decryption."""
        return Keyring([new_key(), *(self._keys[bytes.fromhex(i)] for i in self.ids)])

    def aead(self, kid: bytes) -> AESGCM | None:
        """The AES-GCM instance of key ``kid``, or None if the ring lacks it."""
        return self._aead.get(kid)

    def to_json(self) -> str:
        """The key-file text (JSON); contains the secret keys."""
        doc = {
            "format": KEY_FILE_FORMAT,
            "version": 1,
            "primary": self.primary.hex(),
            "keys": [{"id": kid.hex(), "key": base64.b64encode(key).decode()}
                     for kid, key in self._keys.items()],
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "key file") -> Keyring:
        """Parse key-file text written by :meth:`to_json`."""
        try:
            doc = json.loads(text)
            if doc.get("format") != KEY_FILE_FORMAT or doc.get("version") != 1:
                raise ValueError("not a kofn keyring (format/version)")
            keys = []
            for entry in doc["keys"]:
                key = base64.b64decode(entry["key"], validate=True)
                if len(key) != KEY_SIZE or key_id(key).hex() != entry["id"]:
                    raise ValueError(f"key {entry.get('id')!r} is damaged")
                keys.append(key)
            return cls(keys, primary=doc["primary"])
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise KeyFileError(f"Cannot read {source}: {err}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keyring:
        """Load a key file, refusing one that others can read (like ssh does)."""
        path = Path(path).expanduser()
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except FileNotFoundError:
            raise KeyFileError(f"Key file {str(path)!r} does not exist; create one with "
                               "'kofn keygen --out FILE'.") from None
        except OSError as err:
            raise KeyFileError(f"Cannot read key file {str(path)!r}: {err.strerror}.") from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"Key file {str(path)!r} is readable by others "
                               f"(mode {stat.S_IMODE(mode):o}); run 'chmod 600 {path}'.")
        return cls.from_json(text, source=f"key file {str(path)!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring:
        """Keys from ``KOFN_KEY`` (base64 keys, comma-separated, primary first) or
        ``KOFN_KEY_FILE`` (a key-file path)."""
        env = os.environ if environ is None else environ
        if env.get("KOFN_KEY"):
            keys = []
            for i, part in enumerate(env["KOFN_KEY"].split(",")):
                try:
                    key = base64.b64decode(part.strip(), validate=True)
                except ValueError:
                    raise KeyFileError(f"KOFN_KEY entry {i} is not base64.") from None
                if len(key) != KEY_SIZE:
                    raise KeyFileError(f"KOFN_KEY entry {i} must decode to {KEY_SIZE} bytes, "
                                       f"not {len(key)}.")
                keys.append(key)
            return cls(keys)
        if env.get("KOFN_KEY_FILE"):
            return cls.from_file(env["KOFN_KEY_FILE"])
        raise KeyFileError("No encryption key: set KOFN_KEY_FILE (see 'kofn keygen') or KOFN_KEY.")


def load_keyring(path: str | os.PathLike[str] | None = None) -> Keyring:
    """A keyring from ``path`` if given, else from ``KOFN_KEY`` / ``KOFN_KEY_FILE``."""
    return Keyring.from_file(path) if path is not None else Keyring.from_env()


def write_key_file(path: str | os.PathLike[str], keyring: Keyring, *, force: bool = False) -> Path:
    """Write ``keyring`` to ``path`` with mode 0600; refuse to overwrite unless ``force``."""
    path = Path(path).expanduser()
    data = keyring.to_json().encode()
    if force:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FileExistsError(f"Key file {str(path)!r} exists; pass --force to overwrite "
                              "(objects encrypted with it become unreadable).") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _chunk_nonce(nonce: bytes, index: int) -> bytes:
    if not index:
        return nonce  # nonce XOR 0
    return (int.from_bytes(nonce, "big") ^ index).to_bytes(NONCE_SIZE, "big")


def _aad(header: bytes, key: bytes, index: int, final: bool) -> bytes:
    return header + key + (_ONLY_CHUNK if final and not index else _INDEX_FINAL.pack(index, final))


def _prefix(kid: bytes, chunk_size: int) -> bytes:
    """The first 18 header bytes, magic | version | algorithm | key id | chunk size."""
    return _PREFIX.pack(MAGIC, VERSION, ALG_AES256GCM, kid, chunk_size)


def _seal(aead: AESGCM, prefix: bytes, kb: bytes, data: bytes | bytearray | memoryview,
          chunk_size: int) -> memoryview:
    """:func:`seal` with the key's AES-GCM, header prefix and encoded object key given."""
    view = memoryview(data).cast("B")
    n = view.nbytes
    chunks = max(1, -(-n // chunk_size))
    nonce = _urandom(NONCE_SIZE)
    header = prefix + nonce
    dst = memoryview(np.empty(HEADER_SIZE + n + chunks * TAG_SIZE, dtype=np.uint8)).cast("B")
    dst[:HEADER_SIZE] = header
    pos = HEADER_SIZE
    last = chunks - 1
    for i in range(chunks):
        part = view[i * chunk_size : (i + 1) * chunk_size]
        end = pos + part.nbytes + TAG_SIZE
        aead.encrypt_into(_chunk_nonce(nonce, i), part, _aad(header, kb, i, i == last),
                          dst[pos:end])
        pos = end
    return dst


def seal(keyring: Keyring, key: str, data: bytes | bytearray | memoryview, *,
         chunk_size: int = DEFAULT_CHUNK) -> memoryview:
    """Encrypt ``data`` as object ``key``; returns header + chunks (see module docstring).

    The result is a read-only-by-convention byte ``memoryview`` over an uninitialised numpy
    buffer that the chunks are encrypted into, so sealing copies the data exactly once.
    """
    kid = keyring.primary
    return _seal(keyring.aead(kid), _prefix(kid, chunk_size), key.encode(), data, chunk_size)


def open_sealed(keyring: Keyring, key: str, blob: bytes | bytearray | memoryview) -> bytearray:
    """Decrypt and authenticate an object sealed by :func:`seal`, or raise DecryptionError."""
    view = memoryview(blob).cast("B")
    if view.nbytes < HEADER_SIZE + TAG_SIZE:
        raise DecryptionError(key, f"object is {view.nbytes} bytes, shorter than a header")
    header = bytes(view[:HEADER_SIZE])
    magic, version, alg, kid, chunk_size, nonce = _HEADER.unpack(header)
    if magic != MAGIC:
        raise DecryptionError(key, "not a kofn encrypted object (bad magic)")
    if version != VERSION or alg != ALG_AES256GCM:
        raise DecryptionError(key, f"unsupported format version {version}, algorithm {alg}")
    if chunk_size < 1:
        raise DecryptionError(key, "bad chunk size in header")
    aead = keyring.aead(kid)
    if aead is None:
        raise DecryptionError(key, f"key id {kid.hex()} is not in the keyring (wrong key)")
    body = view[HEADER_SIZE:]
    frame = chunk_size + TAG_SIZE
    chunks = max(1, -(-body.nbytes // frame))
    if body.nbytes - (chunks - 1) * frame < TAG_SIZE:  # a last chunk too short for its tag
        raise DecryptionError(key, "truncated or extended (last chunk shorter than a tag)")
    out = bytearray(body.nbytes - chunks * TAG_SIZE)
    dst = memoryview(out)
    kb = key.encode()
    for i in range(chunks):
        part = body[i * frame : (i + 1) * frame]
        try:
            aead.decrypt_into(_chunk_nonce(nonce, i), part,
                              _aad(header, kb, i, i == chunks - 1),
                              dst[i * chunk_size : i * chunk_size + part.nbytes - TAG_SIZE])
        except InvalidTag:
            raise DecryptionError(key) from None
    return out


class EncryptedStore(WrappedStore):
    """Wrap any store so that objects are sealed with AES-256-GCM before they leave.

    Parameters
    ----------
    inner : Store
        The store holding the ciphertext (keys and listing are passed through unchanged).
        It validates keys (every kofn store does, with :func:`check_key`): a bad key is
        refused by ``inner.put``/``inner.get`` with ``ValueError`` before anything is stored.
    keyring : Keyring
        Keys; the primary one encrypts, any of them decrypts.
    chunk_size : int, optional
        Plaintext bytes per authenticated chunk (4 KiB to 64 MiB; default 1 MiB).

    Notes
    -----
    Object keys (names) are not encrypted; object sizes leak up to 16 bytes per chunk.
    ``get`` returns a bytes-like object that compares equal to ``bytes``: ``bytes`` for
    objects of one chunk read as ``bytes``, else a ``bytearray`` (no copy of large objects).

    An object of at most one chunk takes a fast path: one AES-GCM call with the header
    prefix (magic to chunk size, constant per key) and the AAD suffix precomputed. It writes
    and reads exactly the bytes of :func:`seal` and :func:`open_sealed`, which handle the rest.
    """

    def __init__(self, inner: Store, keyring: Keyring, *, chunk_size: int = DEFAULT_CHUNK):
        super().__init__(inner)
        if not isinstance(keyring, Keyring):
            raise TypeError(f"Argument 'keyring' must be a Keyring, not {type(keyring).__name__}.")
        self._chunk = check_int("chunk_size", chunk_size, low=4096, high=64 << 20)
        self._keyring = keyring
        self._aead = keyring.aead(keyring.primary)
        self._prefix = _prefix(keyring.primary, self._chunk)
        # Header prefix -> AES-GCM of its key, for every key in the ring at our chunk size;
        # any other prefix (other chunk size, unknown key, damage) takes the general path.
        self._openers = {_prefix(kid, self._chunk): keyring.aead(kid)
                         for kid in map(bytes.fromhex, keyring.ids)}
        self._one_chunk = HEADER_SIZE + self._chunk + TAG_SIZE  # largest one-chunk object
        self._concat_max = min(self._chunk, _PUT_CONCAT_MAX)  # plaintext sealed by concatenation

    @property
    def keyring(self) -> Keyring:
        """The keys (read-only)."""
        return self._keyring

    @property
    def chunk_size(self) -> int:
        """Plaintext bytes per authenticated chunk (read-only)."""
        return self._chunk

    def __repr__(self) -> str:
        return f"EncryptedStore({self.inner!r}, {self._keyring!r})"

    def put(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> None:
        """Encrypt ``data`` bound to ``key`` and store it in ``inner``."""
        if type(key) is not str:
            check_key(key)  # raises; a str key is checked by inner.put before it stores
        self.inner.put(key, self._seal_one(key, data), if_absent=if_absent)

    def put_parts(self, key: str, parts: Sequence[tuple[str, bytes | bytearray | memoryview]], *,
                  if_absent: bool = False) -> list[tuple[int, int]]:
        """Encrypt each part bound to its own name, then write them as one object of ``inner``."""
        return self.inner.put_parts(key, [(check_key(name), self._seal_one(name, data))
                                          for name, data in parts], if_absent=if_absent)

    def get_part(self, key: str, name: str, offset: int, length: int) -> bytes | bytearray:
        """Read part ``name`` of ``key`` (one ranged GET) and decrypt it bound to ``name``."""
        return self._open(name, self.inner.get_part(key, name, offset, length))

    def _seal_one(self, key: str, data: bytes | bytearray | memoryview) -> bytes:
        kind = type(data)
        if (kind is bytes or kind is bytearray) and len(data) <= self._concat_max:
            nonce = _urandom(NONCE_SIZE)
            header = self._prefix + nonce
            return header + self._aead.encrypt(nonce, data, header + key.encode() + _ONLY_CHUNK)
        if isinstance(data, (bytes, bytearray, memoryview)):
            return _seal(self._aead, self._prefix, key.encode(), data, self._chunk)
        check_key(key)  # a bad key is reported first, as every store does
        raise TypeError(f"Argument 'data' must be bytes-like, not {type(data).__name__}.")

    def get(self, key: str) -> bytes | bytearray:
        """Fetch and decrypt ``key``; raise DecryptionError if it fails authentication."""
        if type(key) is not str:
            check_key(key)  # raises; a str key is checked by inner.get
        return self._open(key, self.inner.get(key))

    def get_bounded(self, key: str, max_bytes: int) -> bytes | bytearray:
        """``get``, refusing a plaintext over ``max_bytes`` (the ciphertext's bound, header and
        one tag per chunk of at least 4 KiB added, is checked by ``inner`` before reading)."""
        from exchange.errors import ObjectTooLargeError

        if type(key) is not str:
            check_key(key)
        max_bytes = check_int("max_bytes", max_bytes, low=0)
        blob = self.inner.get_bounded(key, max_bytes + HEADER_SIZE + TAG_SIZE * (max_bytes // 4096 + 2))
        data = self._open(key, blob)
        if len(data) > max_bytes:
            raise ObjectTooLargeError(key, len(data), max_bytes)
        return data

    def _open(self, key: str, blob: bytes | bytearray) -> bytes | bytearray:
        if type(blob) is bytes and HEADER_SIZE + TAG_SIZE <= (n := len(blob)) <= self._one_chunk:
            aead = self._openers.get(blob[:PREFIX_SIZE])
            if aead is not None:
                body = blob[HEADER_SIZE:] if n <= _GET_SLICE_MAX else memoryview(blob)[HEADER_SIZE:]
                try:
                    return aead.decrypt(blob[PREFIX_SIZE:HEADER_SIZE], body,
                                        blob[:HEADER_SIZE] + key.encode() + _ONLY_CHUNK)
                except InvalidTag:
                    raise DecryptionError(key) from None
        return open_sealed(self._keyring, key, blob)




