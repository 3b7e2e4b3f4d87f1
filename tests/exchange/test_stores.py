"""The store contract, run against every back end (fsspec's tests/abstract pattern).

``StoreContract`` holds the tests; each subclass provides a ``store`` fixture with an
empty namespace. ``TestS3Store`` runs against the real S3 server (Ceph RGW on loopback,
or ``KOFN_S3_ENDPOINT``) from ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from exchange.crypto import EncryptedStore, Keyring, new_key
from exchange.stores import CountingStore, LocalStore, Store, open_store


class StoreContract:
    """Behaviour every ``Store`` must have. Subclasses define the ``store`` fixture."""

    large_size = 20 << 20  # above S3Store's multipart threshold
    many = 300  # keys in the listing test; S3 uses > 1000 to cross a page and a batch

    def test_round_trip_bytes_like(self, store: Store) -> None:
        store.put("a/b", b"hello")
        store.put("a/c", bytearray(b"world"))
        store.put("a/d", memoryview(b"xyz"))
        store.put("e", b"")
        assert store.get("a/b") == b"hello"
        assert store.get("a/c") == b"world"
        assert store.get("a/d") == b"xyz"
        assert store.get("e") == b""
        assert store.exists("a/b") and not store.exists("a/zz")

    def test_missing_key(self, store: Store) -> None:
        with pytest.raises(FileNotFoundError, match="no/such"):
            store.get("no/such")
        assert not store.exists("no/such")
        store.delete(["no/such"])  # deleting a missing key is not an error

    def test_bad_keys_and_args(self, store: Store) -> None:
        for bad in ("", "/abs", "a//b", "../up", "a/./b", "a\\b"):
            with pytest.raises(ValueError, match="Argument 'key'"):
                store.put(bad, b"x")
        with pytest.raises(TypeError, match="Argument 'data'"):
            store.put("k", "text")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Argument 'keys'"):
            store.delete("k")  # type: ignore[arg-type]
        assert store.list() == []

    def test_overwrite_replaces(self, store: Store) -> None:
        store.put("k", b"one")
        store.put("k", b"two-longer")
        assert store.get("k") == b"two-longer"
        store.put("k", b"3")
        assert store.get("k") == b"3"

    def test_if_absent(self, store: Store) -> None:
        store.put("k", b"first", if_absent=True)
        with pytest.raises(FileExistsError, match="k"):
            store.put("k", b"second", if_absent=True)
        assert store.get("k") == b"first"

    def test_if_absent_race_has_one_winner(self, store: Store) -> None:
        barrier = threading.Barrier(16)

        def attempt(i: int) -> int | None:
            barrier.wait()
            try:
                store.put("race", f"writer-{i:02d}".encode() * 100, if_absent=True)
            except FileExistsError:
                return None
            return i

        with ThreadPoolExecutor(16) as pool:
            winners = [w for w in pool.map(attempt, range(16)) if w is not None]
        assert len(winners) == 1
        assert store.get("race") == f"writer-{winners[0]:02d}".encode() * 100

    def test_readers_never_see_partial_overwrites(self, store: Store) -> None:
        size = 256 << 10
        versions = [bytes([v]) * size for v in range(4)]
        store.put("atomic", versions[0])
        stop = threading.Event()
        seen: list[bytes] = []

        def write() -> None:
            for r in range(12):
                store.put("atomic", versions[r % 4])
            stop.set()

        def read() -> None:  # at least once, even if a fast store's writer is already done
            while True:
                seen.append(bytes(store.get("atomic")))
                if stop.is_set():
                    break

        threads = [threading.Thread(target=write), threading.Thread(target=read)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen, "the reader never ran"
        assert all(s in versions for s in seen)

    def test_list_prefixes(self, store: Store) -> None:
        keys = ["r1/s0", "r1/s1", "r1/s10", "r10/s0", "r2/x/y", "top"]
        for k in keys:
            store.put(k, k.encode())
        assert store.list() == sorted(keys)
        assert store.list("r1/") == ["r1/s0", "r1/s1", "r1/s10"]
        assert store.list("r1") == ["r1/s0", "r1/s1", "r1/s10", "r10/s0"]  # mid-name
        assert store.list("r1/s1") == ["r1/s1", "r1/s10"]
        assert store.list("r2/") == ["r2/x/y"]
        assert store.list("nothing") == []
        store.delete(["r1/s1", "top"])
        assert store.list() == ["r1/s0", "r1/s10", "r10/s0", "r2/x/y"]

    def test_list_paginates_and_delete_batches(self, store: Store) -> None:
        keys = [f"many/{i:05d}" for i in range(self.many)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: store.put(k, b"."), keys))
        assert store.list("many/") == keys
        store.delete(keys)
        assert store.list("many/") == []

    def test_large_object(self, store: Store) -> None:
        data = os.urandom(self.large_size)
        store.put("big", data)
        assert store.get("big") == data
        assert store.get_range("big", 5 << 20, 100) == data[5 << 20 : (5 << 20) + 100]
        store.delete(["big"])
        assert not store.exists("big")

    def test_get_range(self, store: Store) -> None:
        store.put("r", b"0123456789")
        assert store.get_range("r", 2, 3) == b"234"
        assert store.get_range("r", 8, 10) == b"89"
        assert store.get_range("r", 0, 0) == b""
        with pytest.raises(FileNotFoundError):
            store.get_range("missing", 0, 1)
        with pytest.raises(ValueError, match="Argument 'start'"):
            store.get_range("r", -1, 1)


    def test_get_bounded_refuses_larger_objects(self, store: Store) -> None:
        from exchange.errors import ObjectTooLargeError

        store.put("bounded", b"x" * 5000)
        assert store.get_bounded("bounded", 5000) == b"x" * 5000
        with pytest.raises(ObjectTooLargeError, match="'bounded' is 5000 bytes, more than the 4999"):
            store.get_bounded("bounded", 4999)
        with pytest.raises(FileNotFoundError):
            store.get_bounded("missing", 10)


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path) -> Store:
        with LocalStore(tmp_path / "store") as s:
            yield s

    def test_no_temp_files_left(self, store: LocalStore) -> None:
        store.put("a/b", b"1")
        with pytest.raises(FileExistsError):
            store.put("a/b", b"2", if_absent=True)
        assert sorted(os.listdir(store.root / "a")) == ["b"]

    def test_delete_prunes_empty_dirs(self, store: LocalStore) -> None:
        store.put("x/y/z", b"1")
        store.delete(["x/y/z"])
        assert os.listdir(store.root) == []

    def test_fsync_flag(self, tmp_path) -> None:
        s = LocalStore(tmp_path / "f", fsync=True)
        s.put("k", b"v")
        assert s.get("k") == b"v"

    def test_root_is_a_file(self, tmp_path) -> None:
        (tmp_path / "file").write_bytes(b"")
        with pytest.raises(NotADirectoryError, match="Argument 'root'"):
            LocalStore(tmp_path / "file")


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self, request) -> Store:
        from exchange.stores.memory import MemoryStore

        name = f"test-{request.node.name}"
        yield MemoryStore(name)
        MemoryStore.drop(name)

    def test_one_name_is_one_space(self, store) -> None:
        from exchange.stores.memory import MemoryStore

        store.put("k", bytearray(b"v"))
        assert MemoryStore(store.name).get("k") == b"v"
        assert open_store(f"memory://{store.name}").get("k") == b"v"
        assert not MemoryStore(store.name + "-other").exists("k")


class TestEncryptedStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path) -> Store:
        return EncryptedStore(LocalStore(tmp_path / "enc"), Keyring([new_key()]))


class TestCountingStore(StoreContract):
    large_size = 6 << 20

    @pytest.fixture
    def store(self, tmp_path) -> Store:
        return CountingStore(LocalStore(tmp_path / "cnt"))

    def test_counts(self, store: CountingStore) -> None:
        store.put("a", b"12345")
        store.get("a")
        store.get_range("a", 0, 2)
        store.list()
        with pytest.raises(FileNotFoundError):
            store.get("b")
        store.delete(["a", "b"])
        s = store.stats
        assert (s.puts, s.gets, s.lists, s.deletes, s.deleted_keys) == (1, 3, 1, 1, 2)
        assert (s.bytes_up, s.bytes_down, s.errors) == (5, 7, 1)
        assert store.reset().puts == 1 and store.stats.puts == 0


@pytest.mark.s3
class TestS3Store(StoreContract):
    many = 1100  # > 1000: crosses a ListObjectsV2 page and a DeleteObjects batch

    @pytest.fixture
    def store(self, s3_prefix, s3_bucket) -> Store:
        from exchange.stores.s3 import S3Store

        # a 16 MiB threshold, so that the 20 MiB object goes multipart and ranged
        with S3Store(s3_bucket, s3_prefix, multipart_threshold=16 << 20,
                     multipart_chunksize=8 << 20) as store:
            yield store

    def test_default_threshold_sends_a_share_in_one_request(self, s3_store) -> None:
        data = os.urandom(20 << 20)
        s3_store.put("one", bytearray(data))
        assert s3_store.get("one") == data
        head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store._full("one"))
        assert "-" not in head["ETag"].strip('"')  # a multipart ETag ends in "-<parts>"

    def test_missing_bucket_is_one_line(self, s3_env) -> None:
        from exchange.stores.s3 import S3Store

        with S3Store("kofn-no-such-bucket-1a2b") as s:
            with pytest.raises(FileNotFoundError, match="kofn-no-such-bucket-1a2b") as info:
                s.put("k", b"x")
            assert "\n" not in str(info.value)
            with pytest.raises(FileNotFoundError, match="does not exist"):
                s.list()

    def test_bad_credentials_leave_nothing(self, s3_env, s3_bucket, s3_prefix, monkeypatch) -> None:
        from exchange.stores.s3 import S3Store

        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        with S3Store(s3_bucket, s3_prefix) as bad:
            with pytest.raises(PermissionError, match="credentials") as info:
                bad.put("k", b"x")
            assert "\n" not in str(info.value)
            with pytest.raises(PermissionError):
                bad.put("big", os.urandom(17 << 20))
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_env.secret_key)
        with S3Store(s3_bucket, s3_prefix) as good:
            assert good.list() == []

    def test_open_store_s3_url(self, s3_env, s3_bucket, s3_prefix) -> None:
        with open_store(f"s3://{s3_bucket}/{s3_prefix}") as s:
            s.put("u", b"via-url")
            assert s.list() == ["u"]
            assert s.get("u") == b"via-url"

    def test_encrypted_over_s3(self, s3_store) -> None:
        enc = EncryptedStore(s3_store, Keyring([new_key()]))
        enc.put("secret", b"payload" * 1000)
        assert enc.get("secret") == b"payload" * 1000
        assert b"payload" not in s3_store.get("secret")


class TestOpenStore:
    def test_plain_path_and_file_url(self, tmp_path) -> None:
        a = open_store(str(tmp_path / "p"))
        b = open_store(f"file://{tmp_path / 'p'}")
        c = open_store(tmp_path / "p")
        assert isinstance(a, LocalStore) and a.root == b.root == c.root

    @pytest.mark.parametrize("url", ["http://x/y", "gs://bucket/x", "s3://", "s3:///p",
                                     "file://host/p", "s3://Bad_Bucket/x", "", "ftp:x"])
    def test_bad_urls_are_one_line(self, url) -> None:
        with pytest.raises(ValueError, match="Argument '(url|bucket)'") as info:
            open_store(url)
        assert "\n" not in str(info.value)

    def test_s3_url_prefix(self) -> None:
        from exchange.stores.s3 import S3Store

        s = open_store("s3://my-bucket/runs/7")
        assert isinstance(s, S3Store) and (s.bucket, s.prefix) == ("my-bucket", "runs/7/")
