"""EncryptedStore, the key file helpers, ``kofn keygen`` and the legacy CBC format."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exchange.crypto as crypto
from exchange.crypto import (
    HEADER_SIZE,
    TAG_SIZE,
    EncryptedStore,
    Keyring,
    key_id,
    new_key,
    open_sealed,
    seal,
    write_key_file,
)
from exchange.errors import DecryptionError, KeyFileError
from exchange.legacy_cbc import EXPANSION, legacy_decrypt, legacy_encrypt
from exchange.stores import LocalStore, Store
from worker.cli import main as kofn

CHUNK = 4096  # small chunks so chunking is exercised on small objects


@pytest.fixture
def inner(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "inner")


@pytest.fixture
def ring() -> Keyring:
    return Keyring([new_key()])


@pytest.fixture
def enc(inner, ring) -> EncryptedStore:
    return EncryptedStore(inner, ring, chunk_size=CHUNK)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=3 * CHUNK + 50), key=st.sampled_from(["k", "a/b", "r/0/s1"]))
def test_seal_round_trip(data: bytes, key: str) -> None:
    ring = Keyring([bytes(range(32))])
    blob = seal(ring, key, data, chunk_size=CHUNK)
    chunks = max(1, -(-len(data) // CHUNK))
    assert len(blob) == HEADER_SIZE + len(data) + chunks * TAG_SIZE
    assert open_sealed(ring, key, blob) == data


def test_round_trip_and_ciphertext_at_rest(enc, inner) -> None:
    enc.put("w", b"weights" * 100)
    assert enc.get("w") == b"weights" * 100
    raw = inner.get("w")
    assert raw[:4] == b"KOFN" and b"weights" not in raw


def test_fresh_nonce_each_put(enc, inner) -> None:
    enc.put("a", b"same plaintext")
    first = inner.get("a")
    enc.put("a", b"same plaintext")
    assert inner.get("a") != first
    assert first[18:30] != inner.get("a")[18:30]  # the nonce field differs


def test_key_is_bound_as_aad(enc, inner) -> None:
    enc.put("round/1/shard0", b"payload")
    inner.put("round/1/shard1", inner.get("round/1/shard0"))  # copy under another key
    with pytest.raises(DecryptionError, match="round/1/shard1"):
        enc.get("round/1/shard1")


@pytest.mark.parametrize("where", [0, 5, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 100, -1])
def test_tampered_byte(enc, inner, where) -> None:
    enc.put("t", os.urandom(2 * CHUNK + 7))
    blob = bytearray(inner.get("t"))
    blob[where] ^= 0x01
    inner.put("t", blob)
    with pytest.raises(DecryptionError, match="'t'") as info:
        enc.get("t")
    assert "\n" not in str(info.value)


def test_wrong_key(enc, inner) -> None:
    enc.put("w", b"secret")
    other = EncryptedStore(inner, Keyring([new_key()]))
    with pytest.raises(DecryptionError, match="'w'.*not in the keyring"):
        other.get("w")


def test_truncation_detected(enc, inner) -> None:
    enc.put("big", os.urandom(3 * CHUNK))  # exactly 3 full chunks
    blob = inner.get("big")
    frame = CHUNK + TAG_SIZE
    for cut in (HEADER_SIZE + 2 * frame, HEADER_SIZE + frame, len(blob) - 1, HEADER_SIZE + 3):
        inner.put("cut", blob[:cut])
        with pytest.raises(DecryptionError):
            EncryptedStore(inner, enc.keyring).get("cut")


def test_chunks_cannot_be_reordered(enc, inner) -> None:
    enc.put("r", os.urandom(3 * CHUNK))
    blob = inner.get("r")
    frame = CHUNK + TAG_SIZE
    c0 = blob[HEADER_SIZE : HEADER_SIZE + frame]
    c1 = blob[HEADER_SIZE + frame : HEADER_SIZE + 2 * frame]
    inner.put("r", blob[:HEADER_SIZE] + c1 + c0 + blob[HEADER_SIZE + 2 * frame :])
    with pytest.raises(DecryptionError):
        enc.get("r")


def test_large_object_chunked(inner, ring) -> None:
    store = EncryptedStore(inner, ring)  # default 1 MiB chunks
    data = os.urandom((5 << 20) + 3)
    store.put("large", data)
    assert len(inner.get("large")) == HEADER_SIZE + len(data) + 6 * TAG_SIZE
    assert store.get("large") == data


def test_not_encrypted_object(enc, inner) -> None:
    inner.put("plain", b"this was never encrypted by kofn, only stored" * 2)
    with pytest.raises(DecryptionError, match="bad magic"):
        enc.get("plain")
    inner.put("tiny", b"x")
    with pytest.raises(DecryptionError, match="shorter"):
        enc.get("tiny")


def test_rotation_decrypts_old_objects(inner) -> None:
    old = Keyring([new_key()])
    EncryptedStore(inner, old).put("o", b"old")
    new = old.rotated()
    assert new.primary != old.primary and len(new) == 2
    store = EncryptedStore(inner, new)
    store.put("n", b"new")
    assert store.get("o") == b"old" and store.get("n") == b"new"
    assert inner.get("n")[6:14] == new.primary
    with pytest.raises(DecryptionError):
        EncryptedStore(inner, old).get("n")


# The one-chunk fast path of EncryptedStore.put/get: same bytes, same checks.

ONE_CHUNK_SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1]


@pytest.mark.parametrize("size", ONE_CHUNK_SIZES)
def test_fast_path_round_trip(enc, inner, size) -> None:
    data = os.urandom(size)
    enc.put("f/x", data)
    chunks = max(1, -(-size // CHUNK))
    assert len(inner.get("f/x")) == HEADER_SIZE + size + chunks * TAG_SIZE
    assert enc.get("f/x") == data
    enc.put("f/y", bytearray(data))
    enc.put("f/z", memoryview(data))
    assert enc.get("f/y") == data and enc.get("f/z") == data


@pytest.mark.parametrize("size", [crypto._GET_SLICE_MAX - HEADER_SIZE - TAG_SIZE + 1,
                                  crypto._PUT_CONCAT_MAX, crypto._PUT_CONCAT_MAX + 1,
                                  crypto.DEFAULT_CHUNK, crypto.DEFAULT_CHUNK + 1])
def test_fast_path_thresholds_default_chunk(inner, ring, size) -> None:
    store = EncryptedStore(inner, ring)
    data = os.urandom(size)
    store.put("d", data)
    assert store.get("d") == data


def _fixed_nonce(monkeypatch) -> bytes:
    nonce = bytes(range(100, 112))
    monkeypatch.setattr(crypto, "_urandom", lambda n: nonce[:n])
    return nonce


def _forbid_general_path(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the general path ran for a one-chunk object")

    monkeypatch.setattr(crypto, "_seal", fail)
    monkeypatch.setattr(crypto, "open_sealed", fail)


@pytest.mark.parametrize("size", ONE_CHUNK_SIZES)
@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_fast_path_writes_what_seal_writes(enc, inner, ring, monkeypatch, size, kind) -> None:
    data = os.urandom(size)
    nonce = _fixed_nonce(monkeypatch)
    expected = bytes(seal(ring, "r/0/s1", data, chunk_size=CHUNK))  # the general chunked path
    assert expected[18:30] == nonce
    if size <= CHUNK:
        _forbid_general_path(monkeypatch)
    enc.put("r/0/s1", kind(data))
    assert inner.get("r/0/s1") == expected
    assert enc.get("r/0/s1") == data
    monkeypatch.undo()
    assert open_sealed(ring, "r/0/s1", inner.get("r/0/s1")) == data


def test_fast_path_reads_objects_sealed_by_seal(enc, inner, ring, monkeypatch) -> None:
    data = os.urandom(100)
    inner.put("old", bytes(seal(ring, "old", data, chunk_size=CHUNK)))  # written before
    _forbid_general_path(monkeypatch)
    assert enc.get("old") == data


def test_fast_path_every_byte_tampered(enc, inner) -> None:
    enc.put("small/obj", os.urandom(40))
    blob = inner.get("small/obj")
    for where in range(len(blob)):
        for bad in (bytearray(blob), bytearray(blob[:where]) + bytearray(blob[where + 1 :])):
            if len(bad) == len(blob):
                bad[where] ^= 0x80
            inner.put("small/obj", bytes(bad))
            with pytest.raises(DecryptionError, match="'small/obj'") as info:
                enc.get("small/obj")
            assert "\n" not in str(info.value)
    for extra in (b"\x00", b"\x00" * TAG_SIZE):
        inner.put("small/obj", blob + extra)
        with pytest.raises(DecryptionError, match="'small/obj'"):
            enc.get("small/obj")


def test_extended_chunked_object_raises_decryption_error(enc, inner) -> None:
    enc.put("c", os.urandom(2 * CHUNK))  # two full chunks, then a stray byte or two
    blob = inner.get("c")
    for extra in (b"\x00", b"\x00" * (TAG_SIZE - 1)):
        inner.put("c", blob + extra)
        with pytest.raises(DecryptionError, match="'c'"):
            enc.get("c")


def test_fast_path_object_copied_under_another_key(enc, inner) -> None:
    enc.put("round/1/shard0", b"x" * 10)
    inner.put("round/1/shard1", inner.get("round/1/shard0"))
    with pytest.raises(DecryptionError, match="'round/1/shard1'"):
        enc.get("round/1/shard1")


def test_fast_path_unknown_key_id(enc, inner) -> None:
    enc.put("u", b"small")
    with pytest.raises(DecryptionError, match="'u'.*not in the keyring"):
        EncryptedStore(inner, Keyring([new_key()]), chunk_size=CHUNK).get("u")
    blob = bytearray(inner.get("u"))
    blob[6:14] = bytes(8)  # a key id the ring does not hold
    inner.put("u", bytes(blob))
    with pytest.raises(DecryptionError, match="'u'.*key id 0000000000000000 is not in the keyring"):
        enc.get("u")


def test_other_chunk_size_and_rotated_keys(inner, ring) -> None:
    small = EncryptedStore(inner, ring, chunk_size=CHUNK)
    small.put("a", b"written with 4 KiB chunks")
    small.put("b", os.urandom(3 * CHUNK))
    rotated = EncryptedStore(inner, ring.rotated())  # 1 MiB chunks, old key not primary
    assert rotated.get("a") == b"written with 4 KiB chunks"
    assert rotated.get("b") == small.get("b")


@pytest.mark.parametrize("bad", ["../x", "", "/a", "a//b", "a/./b", None, 3])
def test_bad_key_raises_and_stores_nothing(enc, inner, bad) -> None:
    for data in (b"x", os.urandom(3 * CHUNK), "not bytes"):
        with pytest.raises(ValueError, match="Argument 'key'"):
            enc.put(bad, data)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Argument 'key'"):
        enc.get(bad)  # type: ignore[arg-type]
    assert inner.list() == []
    with pytest.raises(TypeError, match="Argument 'data' must be bytes-like, not str"):
        enc.put("k", "not bytes")  # type: ignore[arg-type]


class _ListStore(Store):
    """Returns objects as bytearray or memoryview, which take the general path."""

    def __init__(self, kind) -> None:
        self.kind, self.objects = kind, {}

    def put(self, key, data, *, if_absent=False) -> None:
        self.objects[key] = bytes(data)

    def get(self, key):
        return self.kind(self.objects[key])

    def list(self, prefix=""):
        return sorted(self.objects)

    def delete(self, keys) -> None:
        for k in keys:
            self.objects.pop(k, None)


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_inner_returning_other_bytes_like(ring, kind) -> None:
    store = EncryptedStore(_ListStore(kind), ring, chunk_size=CHUNK)
    for size in (0, 10, CHUNK + 1):
        data = os.urandom(size)
        store.put("k", data)
        assert store.get("k") == data


def test_store_settings_are_read_only(enc, ring) -> None:
    assert enc.keyring is ring and enc.chunk_size == CHUNK
    with pytest.raises(AttributeError):
        enc.keyring = Keyring([new_key()])  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ring.primary = bytes(8)  # type: ignore[misc]


def test_keyring_validation() -> None:
    with pytest.raises(ValueError, match=r"Argument 'keys\[0\]' must be 32 bytes, not 16"):
        Keyring([b"k" * 16])
    with pytest.raises(ValueError, match="at least 1 key"):
        Keyring([])
    with pytest.raises(TypeError, match="Argument 'keys'"):
        Keyring(b"x" * 32)
    with pytest.raises(ValueError, match="Argument 'primary'"):
        Keyring([new_key()], primary="00" * 8)
    key = new_key()
    assert key.hex() not in repr(Keyring([key])) and key_id(key).hex() in repr(Keyring([key]))


def test_store_validation(inner, ring) -> None:
    with pytest.raises(TypeError, match="Argument 'inner'"):
        EncryptedStore("dir", ring)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Argument 'keyring'"):
        EncryptedStore(inner, new_key())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Argument 'chunk_size' must be at least 4096, not 10"):
        EncryptedStore(inner, ring, chunk_size=10)


def test_key_file_round_trip(tmp_path) -> None:
    ring = Keyring([new_key(), new_key()])
    path = write_key_file(tmp_path / "k.key", ring)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Keyring.from_file(path)
    assert loaded.ids == ring.ids and loaded.primary == ring.primary
    with pytest.raises(FileExistsError, match="--force"):
        write_key_file(path, ring)
    write_key_file(path, Keyring([new_key()]), force=True)
    assert Keyring.from_file(path).primary != ring.primary


def test_key_file_errors(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        Keyring.from_file(tmp_path / "none.key")
    path = write_key_file(tmp_path / "k.key", Keyring([new_key()]))
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        Keyring.from_file(path)
    path.chmod(0o600)
    path.write_text("{not json")
    with pytest.raises(KeyFileError, match="Cannot read key file"):
        Keyring.from_file(path)


def test_keys_from_env(tmp_path) -> None:
    k1, k2 = new_key(), new_key()
    env = {"KOFN_KEY": f"{base64.b64encode(k1).decode()}, {base64.b64encode(k2).decode()}"}
    ring = Keyring.from_env(env)
    assert ring.primary == key_id(k1) and len(ring) == 2
    path = write_key_file(tmp_path / "k.key", Keyring([k2]))
    assert Keyring.from_env({"KOFN_KEY_FILE": str(path)}).primary == key_id(k2)
    with pytest.raises(KeyFileError, match="KOFN_KEY_FILE"):
        Keyring.from_env({})
    with pytest.raises(KeyFileError, match="32 bytes"):
        Keyring.from_env({"KOFN_KEY": base64.b64encode(b"short").decode()})
    with pytest.raises(KeyFileError, match="not base64"):
        Keyring.from_env({"KOFN_KEY": "!!!"})


def test_kofn_keygen(tmp_path, capsys) -> None:
    out = tmp_path / "k.key"
    assert kofn(["keygen", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    first = Keyring.from_file(out)
    assert kofn(["keygen", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert kofn(["keygen", "--out", str(out), "--rotate"]) == 0
    rotated = Keyring.from_file(out)
    assert len(rotated) == 2 and first.primary.hex() in rotated.ids
    assert kofn(["keygen", "--out", str(out), "--force"]) == 0
    assert len(Keyring.from_file(out)) == 1


def test_legacy_cbc_round_trip_and_expansion() -> None:
    key = os.urandom(16)
    for n in (0, 1, 15, 16, 17, 1000):
        data = os.urandom(n)
        assert legacy_decrypt(key, legacy_encrypt(key, data)) == data
    data = os.urandom(1 << 20)
    ratio = len(legacy_encrypt(key, data)) / len(data)
    assert ratio == pytest.approx(EXPANSION, rel=1e-3) and ratio == pytest.approx(2.67, abs=0.01)


def test_legacy_cbc_has_no_integrity() -> None:
    key = os.urandom(16)
    data = b"A" * 64
    raw = bytearray(base64.b64decode(legacy_encrypt(key, data)))
    raw[32 + 16] ^= 0x01  # flip a bit of block 1's IV
    out = legacy_decrypt(key, base64.b64encode(raw))  # no error: silently wrong
    assert out != data and len(out) == len(data)
    with pytest.raises(ValueError, match="Argument 'key' must be 16 bytes"):
        legacy_encrypt(b"short", data)
    with pytest.raises(DecryptionError):
        legacy_decrypt(key, b"@@@")


# -- per-aggregator keys --------------------------------------------------------------------

def test_sealed_share_opens_only_with_its_aggregators_key():
    from exchange.share_keys import AggregatorKeys, open_share, seal_share

    keys = AggregatorKeys.generate(3)
    blob = seal_share(keys, 1, "a/contrib/1/0", b"share")
    assert open_share(keys.only(1), 1, "a/contrib/1/0", blob) == b"share"
    with pytest.raises(DecryptionError, match="does not hold"):
        open_share(keys.only(0, 2), 1, "a/contrib/1/0", blob)
    with pytest.raises(DecryptionError, match="sealed to aggregator 1, not 2"):
        open_share(keys, 2, "a/contrib/1/0", blob)
    with pytest.raises(DecryptionError):  # bound to its object key
        open_share(keys, 1, "a/contrib/1/9", blob)
    for pos in (4, 10, 40, len(blob) - 1):  # header, ephemeral key, ciphertext, tag
        bad = bytearray(blob)
        bad[pos] ^= 1
        with pytest.raises(DecryptionError):
            open_share(keys, 1, "a/contrib/1/0", bytes(bad))
    with pytest.raises(DecryptionError, match="shorter"):
        open_share(keys, 1, "a/contrib/1/0", blob[:20])
    back = AggregatorKeys.from_json(keys.only(2).to_json())
    assert back.held == (2,) and back.public(0) == keys.public(0)
    assert repr(back) == "AggregatorKeys(n=3, held=[2])"
    with pytest.raises(KeyFileError):
        AggregatorKeys.from_json('{"format": "nope"}')
    other = json.loads(AggregatorKeys.generate(3).to_json())
    with pytest.raises(ValueError, match="does not match"):
        AggregatorKeys([keys.public(j) for j in range(3)],
                       {0: base64.b64decode(other["private"]["0"])})
    with pytest.raises(ValueError, match="lacks"):
        keys.only(0).only(1)


def test_sealed_share_store_routes_only_contributions(tmp_path):
    from exchange.share_keys import AggregatorKeys, SealedShareStore, share_aggregator

    assert share_aggregator("p/j/r00000001/contrib/3/2") == 3
    assert share_aggregator("p/j/r00000001/merged/3") is None
    raw = LocalStore(tmp_path)
    keys = AggregatorKeys.generate(2)
    store = SealedShareStore(raw, keys.only(0))
    store.put("x/contrib/1/0", b"to one")
    store.put("x/merged/1", b"public")
    assert raw.get("x/merged/1") == b"public"
    assert b"to one" not in raw.get("x/contrib/1/0")
    assert SealedShareStore(raw, keys.only(1)).get("x/contrib/1/0") == b"to one"
    with pytest.raises(DecryptionError):
        store.get("x/contrib/1/0")
