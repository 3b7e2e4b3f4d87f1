"""Cipher speed comparison, after the serverless training paper's table, plus the cost of
``EncryptedStore`` over raw AES-GCM.

    python -m benchmarks.encryption --quick   # 1 KB, 1 MB, 16 MB; RSA at 1 KB only
    python -m benchmarks.encryption           # 1 KB, 1 MB, 64 MB; RSA up to 1 MB

Writes results/encryption/encryption.{json,md} (``--quick``: results/tmp/encryption/, which
git ignores, so a quick check never overwrites the reference). Ciphers, each encrypting
and decrypting the same random buffer:

- ``aes256gcm-raw``: one ``AESGCM.encrypt`` call on the whole buffer (the floor);
- ``aes256gcm-raw-store``: the same job done by hand through the same in-memory dict store:
  ``put("obj", nonce + AESGCM.encrypt(nonce, data, None))`` with a fresh ``os.urandom(12)``
  nonce, and ``get`` then ``AESGCM.decrypt(blob[:12], blob[12:], None)`` (no header, no
  key binding, no chunking: what ``EncryptedStore`` adds is its overhead over this). Above
  64 KiB (put) and 8 KiB (get) it avoids the copies instead: ``encrypt_into`` an
  uninitialised buffer, ``decrypt`` of a ``memoryview``, whichever is faster at that size;
- ``EncryptedStore``: ``put``/``get`` through :class:`exchange.crypto.EncryptedStore`
  over an in-memory dict store (chunked AES-256-GCM, header, key bound as AAD);
- ``paper-aes128cbc``: the paper's format, :mod:`exchange.legacy_cbc`;
- ``3des-cbc``: TripleDES-CBC with PKCS#7 padding (``cryptography.hazmat.decrepit``);
- ``rsa2048-oaep``: RSA-2048 OAEP/SHA-256 in 190-byte chunks; run only at sizes that
  finish in seconds, and nothing is extrapolated: larger sizes are reported as not run.

Times are the best of several runs after a warm-up (benchmarks._common.best_time).
``EncryptedStore``'s overhead is reported over both baselines, (a) the bare ``AESGCM`` call
and (b) ``aes256gcm-raw-store``; the 10% target is judged on (b) at every size.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable

import numpy as np
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as apad
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks._common import best_time, machine_info, markdown_table, progress, write_results
from exchange.crypto import EncryptedStore, Keyring, new_key
from exchange.legacy_cbc import legacy_decrypt, legacy_encrypt
from exchange.stores.base import Store

KB, MB = 1000, 1000 * 1000
TARGET_OVERHEAD = 0.10  # EncryptedStore vs (a) raw AES-GCM at >= 1 MB, (b) the raw store: all sizes
RAW = "aes256gcm-raw"
RAW_STORE = "aes256gcm-raw-store"
STORE = "EncryptedStore"
RSA_CHUNK = 190  # OAEP/SHA-256 payload limit of a 2048-bit key


class _DictStore(Store):
    """An in-memory store, so the benchmark measures crypto and not I/O."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes | bytearray] = {}

    def put(self, key, data, *, if_absent=False) -> None:
        if if_absent and key in self.objects:
            raise FileExistsError(key)
        self.objects[key] = data

    def get(self, key):
        try:
            return self.objects[key]
        except KeyError:
            raise FileNotFoundError(key) from None

    def list(self, prefix=""):
        return sorted(k for k in self.objects if k.startswith(prefix))

    def delete(self, keys: Iterable[str]) -> None:
        for k in keys:
            self.objects.pop(k, None)


SMALL = 10 * KB  # sizes timed as a loop of ``_INNER`` operations
_INNER = 200


def _loop(fn: Callable[[], object], n: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn()
    return run


def _timed(enc: Callable[[], object], dec: Callable[[], object], size: int) -> tuple[float, float]:
    """Seconds per encrypt and per decrypt of one ``size``-byte buffer."""
    inner = _INNER if size <= SMALL else 1
    # At least 3 timed runs, more while under a second: slow ciphers stay affordable.
    t_enc = best_time(_loop(enc, inner), repeat=3, min_time=1.0) / inner
    t_dec = best_time(_loop(dec, inner), repeat=3, min_time=1.0) / inner
    return t_enc, t_dec


def _aes_raw(data: bytes):
    aead, nonce = AESGCM(new_key()), os.urandom(12)
    ct = aead.encrypt(nonce, data, None)
    return (lambda: aead.encrypt(os.urandom(12), data, None)), (lambda: aead.decrypt(nonce, ct, None))


# Measured crossovers: below these sizes a bytes copy is cheaper than building a buffer or a
# view, above them the baseline avoids the copy (it is chosen once per size, not per call).
_RAW_CONCAT_MAX = 64 * 1024
_RAW_SLICE_MAX = 8 * 1024


def _raw_store(data: bytes):
    aead, store, urandom = AESGCM(new_key()), _DictStore(), os.urandom
    n = len(data)

    if n <= _RAW_CONCAT_MAX:
        def put() -> None:
            nonce = urandom(12)
            store.put("obj", nonce + aead.encrypt(nonce, data, None))
    else:
        def put() -> None:
            nonce = urandom(12)
            blob = memoryview(np.empty(12 + n + 16, dtype=np.uint8))
            blob[:12] = nonce
            aead.encrypt_into(nonce, data, None, blob[12:])
            store.put("obj", blob)

    if n <= _RAW_SLICE_MAX:
        def get() -> bytes:
            b = store.get("obj")
            return aead.decrypt(b[:12], b[12:], None)
    else:
        def get() -> bytes:
            b = store.get("obj")
            return aead.decrypt(b[:12], memoryview(b)[12:], None)

    put()
    if get() != data:
        raise AssertionError("the raw-store baseline does not round-trip")
    return put, get


def _store(data: bytes):
    store = EncryptedStore(_DictStore(), Keyring([new_key()]))
    store.put("obj", data)
    if store.get("obj") != data:
        raise AssertionError("EncryptedStore does not round-trip")
    return (lambda: store.put("obj", data)), (lambda: store.get("obj"))


def _paper(data: bytes):
    key = os.urandom(16)
    blob = legacy_encrypt(key, data)
    return (lambda: legacy_encrypt(key, data)), (lambda: legacy_decrypt(key, blob))


def _tdes(data: bytes):
    key, iv = os.urandom(24), os.urandom(8)

    def enc() -> bytes:
        p = padding.PKCS7(64).padder()
        e = Cipher(TripleDES(key), modes.CBC(iv)).encryptor()
        return e.update(p.update(data) + p.finalize()) + e.finalize()

    ct = enc()

    def dec() -> bytes:
        d = Cipher(TripleDES(key), modes.CBC(iv)).decryptor()
        u = padding.PKCS7(64).unpadder()
        return u.update(d.update(ct) + d.finalize()) + u.finalize()

    return enc, dec


_RSA_KEY = None


def _rsa(data: bytes):
    global _RSA_KEY
    if _RSA_KEY is None:
        _RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = _RSA_KEY
    pub = priv.public_key()
    oaep = apad.OAEP(mgf=apad.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    chunks = [data[i : i + RSA_CHUNK] for i in range(0, len(data), RSA_CHUNK)]
    cts = [pub.encrypt(c, oaep) for c in chunks]
    return (lambda: [pub.encrypt(c, oaep) for c in chunks]), (lambda: [priv.decrypt(c, oaep) for c in cts])


CIPHERS = {
    RAW: _aes_raw,
    RAW_STORE: _raw_store,
    STORE: _store,
    "paper-aes128cbc": _paper,
    "3des-cbc": _tdes,
    "rsa2048-oaep": _rsa,
}


def run(sizes: list[int], rsa_max: int) -> list[dict]:
    rows = []
    for size in sizes:
        data = os.urandom(size)
        for name, make in CIPHERS.items():
            if name == "rsa2048-oaep" and size > rsa_max:
                rows.append({"cipher": name, "bytes": size, "ran": False})
                continue
            progress(f"{name} {size} bytes")
            enc, dec = make(data)
            t_enc, t_dec = (_timed(enc, dec, size) if name != "rsa2048-oaep"
                            else (best_time(enc, repeat=1), best_time(dec, repeat=1)))
            rows.append({"cipher": name, "bytes": size, "ran": True,
                         "encrypt_s": t_enc, "decrypt_s": t_dec,
                         "encrypt_MBps": size / t_enc / MB, "decrypt_MBps": size / t_dec / MB})
    return rows


def overheads(rows: list[dict]) -> list[dict]:
    """EncryptedStore's time over (a) the bare AESGCM call and (b) the raw-store baseline."""
    by = {(r["cipher"], r["bytes"]): r for r in rows if r["ran"]}
    out = []
    for (cipher, size), r in by.items():
        if cipher != STORE:
            continue
        raw, raw_store = by[(RAW, size)], by[(RAW_STORE, size)]
        out.append({"bytes": size,
                    "encrypt_overhead": r["encrypt_s"] / raw["encrypt_s"] - 1,
                    "decrypt_overhead": r["decrypt_s"] / raw["decrypt_s"] - 1,
                    "target_applies": size >= MB,
                    "put_overhead_vs_raw_store": r["encrypt_s"] / raw_store["encrypt_s"] - 1,
                    "get_overhead_vs_raw_store": r["decrypt_s"] / raw_store["decrypt_s"] - 1,
                    "store_encrypt_us": r["encrypt_s"] * 1e6,
                    "store_decrypt_us": r["decrypt_s"] * 1e6,
                    "raw_encrypt_us": raw["encrypt_s"] * 1e6,
                    "raw_decrypt_us": raw["decrypt_s"] * 1e6,
                    "raw_store_put_us": raw_store["encrypt_s"] * 1e6,
                    "raw_store_get_us": raw_store["decrypt_s"] * 1e6})
    return out


def _within(o: dict, enc: str, dec: str) -> bool:
    return o[enc] <= TARGET_OVERHEAD and o[dec] <= TARGET_OVERHEAD


def _us(t: float) -> str:
    return f"{t:.2f} us" if t < 1000 else f"{t / 1000:.2f} ms"


def _label(size: int) -> str:
    return f"{size // MB} MB" if size >= MB else f"{size // KB} KB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (about 30 s)")
    args = ap.parse_args(argv)
    sizes = [KB, MB, 16 * MB] if args.quick else [KB, MB, 64 * MB]
    rsa_max = KB if args.quick else MB
    rows = run(sizes, rsa_max)
    ovh = overheads(rows)
    table = markdown_table(
        ["cipher", "size", "encrypt MB/s", "decrypt MB/s"],
        [[r["cipher"], _label(r["bytes"]),
          r["encrypt_MBps"] if r["ran"] else "not run", r["decrypt_MBps"] if r["ran"] else "not run"]
         for r in rows])
    otable = markdown_table(
        ["size", "EncryptedStore.put vs AESGCM.encrypt", "EncryptedStore.get vs AESGCM.decrypt",
         "put / encrypt", "get / decrypt"],
        [[_label(o["bytes"]), f"{o['encrypt_overhead']:+.1%}", f"{o['decrypt_overhead']:+.1%}",
          f"{_us(o['store_encrypt_us'])} / {_us(o['raw_encrypt_us'])}",
          f"{_us(o['store_decrypt_us'])} / {_us(o['raw_decrypt_us'])}"]
         for o in ovh])
    stable = markdown_table(
        ["size", "EncryptedStore.put vs raw-store put", "EncryptedStore.get vs raw-store get",
         "put / raw put", "get / raw get", f"<= {TARGET_OVERHEAD:.0%}"],
        [[_label(o["bytes"]), f"{o['put_overhead_vs_raw_store']:+.1%}",
          f"{o['get_overhead_vs_raw_store']:+.1%}",
          f"{_us(o['store_encrypt_us'])} / {_us(o['raw_store_put_us'])}",
          f"{_us(o['store_decrypt_us'])} / {_us(o['raw_store_get_us'])}",
          "met" if _within(o, "put_overhead_vs_raw_store", "get_overhead_vs_raw_store")
          else "NOT met"]
         for o in ovh])
    met = all(_within(o, "encrypt_overhead", "decrypt_overhead")
              for o in ovh if o["target_applies"])
    met_store = all(_within(o, "put_overhead_vs_raw_store", "get_overhead_vs_raw_store")
                    for o in ovh)
    small = min(ovh, key=lambda o: o["bytes"])
    md = (f"# Encryption throughput ({'quick' if args.quick else 'full'})\n\n{table}\n\n"
          f"## EncryptedStore overhead over raw AES-256-GCM (target <= "
          f"{TARGET_OVERHEAD:.0%} for objects >= 1 MB: {'met' if met else 'NOT met'})\n\n"
          f"(a) Over the bare `AESGCM.encrypt`/`decrypt` call on the buffer (no store).\n\n"
          f"{otable}\n\n"
          f"At {_label(small['bytes'])}, EncryptedStore.put costs "
          f"{small['encrypt_overhead']:+.0%} and get {small['decrypt_overhead']:+.0%} over the "
          f"bare AESGCM call (which draws its `os.urandom(12)` nonce too, but makes no store "
          f"call and builds no header or AAD).\n\n"
          f"## EncryptedStore overhead over the raw-store baseline (target <= "
          f"{TARGET_OVERHEAD:.0%} at every size: {'met' if met_store else 'NOT met'})\n\n"
          f"(b) Over `{RAW_STORE}`: nonce + AESGCM through the same in-memory store.\n\n"
          f"{stable}\n\nRSA-2048-OAEP runs only up to {_label(rsa_max)}; larger sizes were "
          f"not run and are not extrapolated.\n")
    folder = write_results("encryption", {"machine": machine_info(), "quick": args.quick,
                                          "rows": rows, "overhead": ovh,
                                          "target_overhead": TARGET_OVERHEAD,
                                          "target_met": met,
                                          "target_met_vs_raw_store": met_store}, md,
                          quick=args.quick)
    print(md)
    print(f"wrote {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
