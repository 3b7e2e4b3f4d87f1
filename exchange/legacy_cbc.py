"""The serverless-training paper's object encryption, kept for comparison only.

Format: the plaintext is PKCS#7-padded to 16-byte blocks; every block is encrypted with
AES-128-CBC under its own random 16-byte IV, the IV is appended to the block, and the
whole result is base64-encoded. Each 16-byte block thus becomes 32 bytes, then 42.67
characters: the data expands 8/3 = 2.67 times.

.. warning::
   This format is **weaker** than :mod:`exchange.crypto` and must not protect real data.
   It has no integrity check: a flipped bit decrypts silently to different plaintext,
   blocks can be reordered, dropped or spliced between objects, and nothing binds an
   object to its key. Use :class:`exchange.crypto.EncryptedStore` (AES-256-GCM).

A one-block CBC encryption is ``E_k(P xor IV)``, so the implementation encrypts all
blocks in one ECB call on ``P xor IV`` (numpy), which produces exactly the same bytes as
a per-block CBC loop without Python overhead; benchmarks then measure the format, not
the interpreter.
"""

from __future__ import annotations

import base64
import binascii
import secrets

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from exchange.errors import DecryptionError

__all__ = ["legacy_decrypt", "legacy_encrypt", "EXPANSION"]

BLOCK = 16
EXPANSION = 8 / 3  # 16 bytes -> 32 bytes (block + IV) -> 42.67 base64 characters


def _check_key(key: object) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != 16:
        size = len(key) if isinstance(key, (bytes, bytearray)) else type(key).__name__
        raise ValueError(f"Argument 'key' must be 16 bytes (AES-128), not {size}.")
    return bytes(key)


def legacy_encrypt(key: bytes, data: bytes | bytearray | memoryview) -> bytes:
    """Encrypt ``data`` in the paper's format (per-block random IV, then base64).

    Parameters
    ----------
    key : bytes
        A 16-byte AES-128 key.
    data : bytes-like
        The plaintext.

    Returns
    -------
    bytes
        ASCII base64 text, about 2.67 times ``len(data)``.
    """
    key = _check_key(key)
    raw = bytes(data)
    pad = BLOCK - len(raw) % BLOCK
    blocks = np.frombuffer(raw + bytes([pad]) * pad, dtype=np.uint8).reshape(-1, BLOCK)
    ivs = np.frombuffer(secrets.token_bytes(blocks.size), dtype=np.uint8).reshape(-1, BLOCK)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - see docstring
    ct = np.frombuffer(enc.update((blocks ^ ivs).tobytes()) + enc.finalize(), dtype=np.uint8)
    out = np.concatenate([ct.reshape(-1, BLOCK), ivs], axis=1)
    return base64.b64encode(out.tobytes())


def legacy_decrypt(key: bytes, blob: bytes | bytearray | memoryview, *, name: str = "<object>") -> bytes:
    """Decrypt the paper's format. Detects only malformed input, never tampering.

    Raises
    ------
    DecryptionError
        If the text is not base64 of whole 32-byte units or the padding is invalid.
    """
    key = _check_key(key)
    try:
        raw = base64.b64decode(bytes(blob), validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError(name, "not base64") from None
    if not raw or len(raw) % (2 * BLOCK):
        raise DecryptionError(name, "length is not a whole number of 32-byte units")
    units = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 2 * BLOCK)
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    x = np.frombuffer(dec.update(units[:, :BLOCK].tobytes()) + dec.finalize(), dtype=np.uint8)
    plain = (x.reshape(-1, BLOCK) ^ units[:, BLOCK:]).tobytes()
    pad = plain[-1]
    if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise DecryptionError(name, "bad padding")
    return plain[:-pad]
