"""How close can any Python wrapper get to raw AES-GCM on a 1 KB object?

Times, side by side in one run (best of 7 loops of 200,000 calls), the `get` of a 1000-byte
object four ways: the raw store baseline of ``benchmarks.encryption`` (nonce + AES-GCM,
no associated data), ``EncryptedStore.get``, a minimal wrapper that authenticates the
header and the object key as associated data with everything precomputed (no checks, no
key lookup: a floor for the issue's format), and the bare ``AESGCM.decrypt`` with and
without 38 bytes of associated data.

    python scripts/bench_small_aead.py
"""

import os
import timeit

from benchmarks.encryption import _DictStore
from exchange.crypto import _ONLY_CHUNK, EncryptedStore, Keyring, new_key

N = 200_000


def main() -> None:
    data = os.urandom(1000)
    ring = Keyring([new_key()])
    store = EncryptedStore(_DictStore(), ring)
    store.put("obj", data)
    inner, aead = store.inner, ring.aead(ring.primary)
    raw = _DictStore()
    nonce = os.urandom(12)
    raw.put("obj", nonce + aead.encrypt(nonce, data, None))
    blob = inner.get("obj")
    aad = blob[:30] + b"obj" + _ONLY_CHUNK
    ct, ct_aad = aead.encrypt(nonce, data, None), aead.encrypt(nonce, data, aad)

    def raw_get() -> bytes:
        b = raw.get("obj")
        return aead.decrypt(b[:12], b[12:], None)

    def minimal_get() -> bytes:
        b = inner.get("obj")
        return aead.decrypt(b[18:30], b[30:], b[:30] + b"obj" + _ONLY_CHUNK)

    cases = {
        "raw-store get (no AAD)": raw_get,
        "EncryptedStore.get": lambda: store.get("obj"),
        "minimal header+key-AAD get": minimal_get,
        "bare decrypt, no AAD": lambda: aead.decrypt(nonce, ct, None),
        "bare decrypt, 38-byte AAD": lambda: aead.decrypt(nonce, ct_aad, aad),
    }
    times = {name: min(timeit.repeat(fn, number=N, repeat=7)) / N for name, fn in cases.items()}
    base = times["raw-store get (no AAD)"]
    for name, t in times.items():
        print(f"{name:28s} {t * 1e6:6.3f} us  {t / base - 1:+6.1%} vs raw-store get")


if __name__ == "__main__":
    main()
