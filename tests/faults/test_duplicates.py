"""Idempotent rounds: a repeated, interrupted or concurrent publish never changes the sum.

Before attempts, a republish overwrote a worker's shares with freshly masked ones; in
``secure`` mode aggregators that had combined the first shares and those that read the
second disagreed, and the decoded sum was off by millions with no error. Now each publish
writes under its own attempt token and the done marker (written once) names the attempt
that counts; these cases assert the decoded total equals the fault-free run's, bit for
bit, on the local store and on the real Ceph RGW.
"""

from __future__ import annotations

import multiprocessing as mp
import threading

import numpy as np
import pytest

from exchange.reduce import CodeSpec
from exchange.round import Exchange, RoundConfig
from exchange.stores.base import Store
from exchange.stores.local import LocalStore
from tests.faults.table import record

N = 4
L = 301
DUP = 2
SPECS = [CodeSpec("secure", N, k=2, t=1), CodeSpec("mds", N, k=3), CodeSpec("plain", N)]


def _config(spec: CodeSpec, job: str = "job") -> RoundConfig:
    return RoundConfig(job=job, code=spec, deadline_s=20.0, poll_max_s=0.02, takeover_after_s=0.5)


def _updates(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(N, L))


def _clean_total(tmp_path, spec: CodeSpec, ups: np.ndarray) -> np.ndarray:
    store = LocalStore(tmp_path / "clean")
    with Exchange(store, _config(spec)) as ex:
        for w in range(N):
            ex.publish(0, w, ups[w], rng=np.random.default_rng([1, w]))
        for j in range(N):
            ex.aggregate(0, j)
        return ex.collect(0).total


def _finish(store: Store, spec: CodeSpec, job: str = "job") -> np.ndarray:
    with Exchange(store, _config(spec, job)) as ex:
        for j in range(N):
            ex.aggregate(0, j)
        return ex.collect(0).total


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.mode)
def test_republish_after_done_changes_nothing(tmp_path, spec):
    """A worker restarted after publishing publishes round 0 again, with fresh masks."""
    ups = _updates(1)
    clean = _clean_total(tmp_path, spec, ups)
    store = LocalStore(tmp_path / "run")
    with Exchange(store, _config(spec)) as ex:
        for w in range(N):
            ex.publish(0, w, ups[w], rng=np.random.default_rng([1, w]))
        again = ex.publish(0, DUP, ups[DUP] * 3.0, rng=np.random.default_rng(99))
        ex.aggregate(0, 0)  # some aggregators combine before, some after, the repeat
    with Exchange(store, _config(spec)) as ex:
        later = ex.publish(0, DUP, ups[DUP] + 1.0, rng=np.random.default_rng(98))
    assert again.duplicates == 1 and later.duplicates == 1 and later.puts == 0
    np.testing.assert_array_equal(_finish(store, spec), clean)
    if spec.mode == "secure":
        record("worker republishes a round it already published (restart), secure",
               "the done marker exists, so the repeat writes nothing", 0, "none", "")


class _DiesAfter(Store):
    """A store whose process 'dies' (raises) after ``puts`` more writes: a SIGKILL mid-upload."""

    def __init__(self, inner: Store, puts: int):
        self.inner, self.left = inner, puts
        self.lock = threading.Lock()

    def put(self, key, data, *, if_absent=False):
        with self.lock:
            if self.left <= 0:
                raise ConnectionError("killed")
            self.left -= 1
        return self.inner.put(key, data, if_absent=if_absent)

    def get(self, key):
        return self.inner.get(key)

    def list(self, prefix):
        return self.inner.list(prefix)

    def exists(self, key):
        return self.inner.exists(key)

    def delete(self, keys):
        return self.inner.delete(keys)


@pytest.mark.parametrize("spec", SPECS[:2], ids=lambda s: s.mode)
def test_restart_mid_upload_uses_one_attempt(tmp_path, spec):
    """Worker DUP dies after writing its shares, before its done marker; its restart
    publishes with new masks."""
    ups = _updates(2)
    clean = _clean_total(tmp_path, spec, ups)
    store = LocalStore(tmp_path / "run")
    with Exchange(store, _config(spec)) as ex:
        for w in range(N):
            if w != DUP:
                ex.publish(0, w, ups[w], rng=np.random.default_rng([1, w]))
    with Exchange(_DiesAfter(store, 1), _config(spec)) as ex, pytest.raises(ConnectionError):
        ex.publish(0, DUP, ups[DUP], rng=np.random.default_rng(7))
    with Exchange(store, _config(spec)) as ex:
        assert ex.publish(0, DUP, ups[DUP], rng=np.random.default_rng([1, DUP])).duplicates == 0
    np.testing.assert_array_equal(_finish(store, spec), clean)
    if spec.mode == "secure":
        record("worker killed with its shares uploaded but no done marker, then restarted, secure",
               "the half-written attempt has no done marker and is never read; "
               "the restart's attempt counts", 0, "none", "")


def _duplicate(root: str, spec: CodeSpec, update: list[float], seed: int, start, queue) -> None:
    with Exchange(LocalStore(root), _config(spec)) as ex:
        start.wait(10)
        stats = ex.publish(0, DUP, np.asarray(update), rng=np.random.default_rng(seed))
    queue.put(stats.duplicates)


@pytest.mark.parametrize("spec", SPECS[:2], ids=lambda s: s.mode)
def test_concurrent_duplicate_processes_count_once(tmp_path, spec):
    """Two live processes publish worker DUP's index at once, with different masks and
    different updates (a retrain that is not bit-reproducible): exactly one counts, and
    the total is the sum with that one's update, never a mix."""
    ups = _updates(3)
    other = ups[DUP] * -2.0
    store = LocalStore(tmp_path / "run")
    with Exchange(store, _config(spec)) as ex:
        for w in range(N):
            if w != DUP:
                ex.publish(0, w, ups[w], rng=np.random.default_rng([1, w]))
    ctx = mp.get_context("fork")
    start, queue = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_duplicate, args=(str(tmp_path / "run"), spec, u.tolist(), seed, start, queue))
             for u, seed in ((ups[DUP], 11), (other, 12))]
    for p in procs:
        p.start()
    start.set()
    dups = sorted(queue.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert dups == [0, 1]
    total = _finish(store, spec)
    sums = [ups.sum(0), ups.sum(0) - ups[DUP] + other]
    errors = [float(np.max(np.abs(total - s))) for s in sums]
    assert min(errors) < 1e-6 * float(np.max(np.abs(sums[0]))), errors
    leftovers = [k for k in store.list("kofn/job/r00000000/contrib/") if f"/{DUP}." in k]
    assert len(leftovers) == 1  # the losing attempt deleted its shares' object
    if spec.mode == "secure":
        record("two live processes publish the same worker index at once, secure",
               "both write under their own attempt; the done marker counts one, "
               "the other deletes its shares and logs that it was dropped", 0, "none",
               "round 0 worker 2: another publish of this worker finished first "
               "(a restart or a duplicate process); this one is dropped")


def test_republish_on_rgw(tmp_path, s3_store):
    """The repeat publish on the real Ceph RGW: conditional PUTs make the marker single."""
    spec = SPECS[0]
    ups = _updates(4)
    clean = _clean_total(tmp_path, spec, ups)
    with Exchange(s3_store, _config(spec)) as ex:
        for w in range(N):
            ex.publish(0, w, ups[w], rng=np.random.default_rng([1, w]))
        ex.aggregate(0, 1)
    with Exchange(s3_store, _config(spec)) as ex:
        assert ex.publish(0, DUP, ups[DUP] * 5, rng=np.random.default_rng(5)).duplicates == 1
    np.testing.assert_array_equal(_finish(s3_store, spec), clean)
