"""The coded round over a LocalStore: N threads, stragglers, dead workers, tampering."""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from coding.errors import NotEnoughShardsError
from exchange.errors import RoundBehindError, RoundTimeoutError
from exchange.reduce import CodeSpec, quantize_limbs
from exchange.round import Exchange, RoundConfig
from exchange.stores.base import WrappedStore
from exchange.stores.counting import CountingStore
from exchange.stores.local import LocalStore

HAS_GRADIENT = importlib.util.find_spec("coding.gradient") is not None
HAS_SHAMIR = importlib.util.find_spec("coding.shamir") is not None
needs_gradient = pytest.mark.skipif(not HAS_GRADIENT, reason="coding.gradient not written yet")
needs_shamir = pytest.mark.skipif(not HAS_SHAMIR, reason="coding.shamir not written yet")

N = 4
L = 257
RTOL = 1e-9


def _config(spec: CodeSpec, **kw) -> RoundConfig:
    base = dict(job="job", code=spec, deadline_s=5.0, poll_max_s=0.02, takeover_after_s=0.05)
    base.update(kw)
    return RoundConfig(**base)


def _updates(seed: int = 0, n: int = N, length: int = L) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, length))


def _rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _run(store, cfg, updates, roles=None, r=0):
    """Run one round with a thread per worker; roles: ok | slow | dead | publish-only."""
    roles = roles or {}
    results, errors = {}, {}

    def worker(w: int) -> None:
        role = roles.get(w, "ok")
        if role == "dead":
            return
        if role == "slow":
            time.sleep(0.3)
        try:
            with Exchange(store, cfg) as ex:
                if role == "publish-only":
                    ex.publish(r, w, updates[w])
                else:
                    results[w] = ex.run(r, w, updates[w])
        except Exception as err:  # noqa: BLE001 - reported by the test
            errors[w] = err

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(len(updates))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def _gradient_f(n: int, s: int, partials: np.ndarray) -> np.ndarray:
    from coding.gradient import GradientCode

    code = GradientCode(n, s)
    return np.stack([np.asarray(code.coefficients(i), float) @ partials[list(code.partitions(i))]
                     for i in range(n)])


# -- every mode, everyone healthy ---------------------------------------------------------

@pytest.mark.parametrize("spec", [CodeSpec("plain", N), CodeSpec("mds", N, k=2), CodeSpec("backup", N, s=1)],
                         ids=lambda s: s.mode)
def test_healthy_round_is_exact(tmp_path, spec):
    ups = _updates(1)
    results, errors = _run(LocalStore(tmp_path), _config(spec), ups)
    assert not errors and len(results) == N
    for res in results.values():
        assert res.n_terms == len(res.contributors)
        assert _rel(res.total, ups[list(res.contributors)].sum(0)) < RTOL
        assert res.stats.puts >= 3 and res.stats.bytes_up > 0  # shares, done marker, merged
    if spec.mode != "backup":
        assert all(res.contributors == tuple(range(N)) for res in results.values())


@needs_shamir
def test_secure_round_is_exact_at_limb_level(tmp_path):
    spec = CodeSpec("secure", N, k=2, t=1)
    ups = _updates(2) * 10
    results, errors = _run(LocalStore(tmp_path), _config(spec), ups)
    assert not errors
    exact_q = np.stack([quantize_limbs(u, spec) for u in ups]).sum(0)
    want = np.zeros(L, dtype=np.int64)
    for i in reversed(range(spec.n_limbs)):
        want = (want << spec.limb_bits) + exact_q[i]
    want -= N * (1 << (spec.frac_bits + spec.int_bits))
    for res in results.values():
        got_q = np.rint(res.total * 2.0**spec.frac_bits).astype(np.int64)
        np.testing.assert_array_equal(got_q, want)  # exact in GF(p), so exact in fixed point
        assert np.max(np.abs(res.total - ups.sum(0))) <= N * 2.0 ** -(spec.frac_bits + 1)


@needs_gradient
@pytest.mark.parametrize("mode, k", [("gradient", None), ("gradient+mds", 2)])
def test_gradient_round_tolerates_a_dead_trainer(tmp_path, mode, k):
    spec = CodeSpec(mode, N, s=1, k=k)
    partials = _updates(3)
    f = _gradient_f(N, 1, partials)
    results, errors = _run(LocalStore(tmp_path), _config(spec), f, roles={2: "dead"})
    assert not errors and set(results) == {0, 1, 3}
    for res in results.values():
        assert res.n_terms == N
        assert _rel(res.total, partials.sum(0)) < RTOL


# -- stragglers and dead workers ----------------------------------------------------------

@pytest.mark.parametrize("spec", [CodeSpec("plain", N), CodeSpec("mds", N, k=3)], ids=lambda s: s.mode)
def test_straggler_is_waited_for(tmp_path, spec):
    ups = _updates(4)
    results, errors = _run(LocalStore(tmp_path), _config(spec), ups, roles={1: "slow"})
    assert not errors and len(results) == N
    for res in results.values():
        assert _rel(res.total, ups.sum(0)) < RTOL


def test_backup_drops_the_straggler(tmp_path):
    ups = _updates(5)
    results, errors = _run(LocalStore(tmp_path), _config(CodeSpec("backup", N, s=1)), ups,
                           roles={3: "slow"})
    assert not errors
    fast = [res for w, res in results.items() if w != 3]
    assert all(res.contributors == (0, 1, 2) for res in fast)
    assert _rel(fast[0].total, ups[:3].sum(0)) < RTOL


def test_mds_survives_dead_aggregators_without_takeover(tmp_path):
    spec = CodeSpec("mds", N, k=2)
    ups = _updates(6)
    cfg = _config(spec, takeover_after_s=60.0)
    results, errors = _run(LocalStore(tmp_path), cfg, ups, roles={0: "publish-only", 3: "publish-only"})
    assert not errors
    for res in results.values():
        assert set(res.aggregators) == {1, 2} and res.stats.takeovers == 0
        assert _rel(res.total, ups.sum(0)) < RTOL


def test_plain_dead_aggregator_is_taken_over(tmp_path):
    ups = _updates(7)
    results, errors = _run(LocalStore(tmp_path), _config(CodeSpec("plain", N)), ups,
                           roles={2: "publish-only"})
    assert not errors
    assert sum(res.stats.takeovers for res in results.values()) >= 1
    for res in results.values():
        np.testing.assert_allclose(res.total, ups.sum(0), rtol=1e-12)


def test_dead_trainer_times_out_naming_it(tmp_path):
    cfg = _config(CodeSpec("mds", N, k=2), deadline_s=0.3)
    with Exchange(LocalStore(tmp_path), cfg) as ex:
        for w in (0, 1, 3):
            ex.publish(0, w, np.ones(8))
        with pytest.raises(RoundTimeoutError, match="done/2") as info:
            ex.aggregate(0, 0)
        assert info.value.missing == ["done/2"]
        with pytest.raises(RoundTimeoutError, match="merged/0"):
            Exchange(LocalStore(tmp_path), _config(cfg.code, deadline_s=0.2, takeover_after_s=9)).collect(0)


def test_quorum_tolerates_a_dead_trainer(tmp_path):
    ups = _updates(8)
    results, errors = _run(LocalStore(tmp_path), _config(CodeSpec("mds", N, k=2), quorum=N - 1), ups,
                           roles={1: "dead"})
    assert not errors
    for res in results.values():
        assert res.contributors == (0, 2, 3)
        assert _rel(res.total, ups[[0, 2, 3]].sum(0)) < RTOL


# -- tampering ----------------------------------------------------------------------------

def _flip(root: Path, key: str, pos: int = -3) -> None:
    """Flip byte ``pos`` of object ``key``."""
    path = root.joinpath(*key.split("/"))
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x40
    path.write_bytes(bytes(data))


def _flip_share(root: Path, cfg, r: int, j: int, w: int, pos: int = -3) -> None:
    """Flip byte ``pos`` of worker ``w``'s share for aggregator ``j`` (a part of its object)."""
    with Exchange(LocalStore(root), cfg) as ex:
        key, _, offset, length = ex.share_location(r, j, w)
    path = root.joinpath(*key.split("/"))
    data = bytearray(path.read_bytes())
    data[offset + pos % length] ^= 0x40
    path.write_bytes(bytes(data))


def _publish_all(store, cfg, ups, r=0):
    with Exchange(store, cfg) as ex:
        for w in range(len(ups)):
            ex.publish(r, w, ups[w])
        return ex.round_prefix(r)


@pytest.mark.parametrize("spec", [CodeSpec("mds", N, k=2),
                                  pytest.param(CodeSpec("secure", N, k=2, t=1), marks=needs_shamir)],
                         ids=lambda s: s.mode)
def test_tampered_contribution_is_an_erasure(tmp_path, spec):
    store = LocalStore(tmp_path)
    cfg = _config(spec)
    ups = _updates(9)
    _publish_all(store, cfg, ups)
    _flip_share(tmp_path, cfg, 0, 1, 2)
    with Exchange(store, cfg) as ex:
        for j in (0, 2, 3):
            ex.aggregate(0, j)
        with pytest.raises(Exception, match="contrib/1/2"):
            ex.aggregate(0, 1)
        res = ex.collect(0)
    assert 1 not in res.aggregators
    tol = 1e-8 if spec.mode == "secure" else RTOL
    assert _rel(res.total, ups.sum(0)) < tol


@pytest.mark.parametrize("spec", [CodeSpec("mds", N, k=3), CodeSpec("plain", N)], ids=lambda s: s.mode)
def test_tampered_merged_shard_is_rebuilt_or_decoded_around(tmp_path, spec):
    store = LocalStore(tmp_path)
    cfg = _config(spec)
    ups = _updates(10)
    rp = _publish_all(store, cfg, ups)
    with Exchange(store, cfg) as ex:
        for j in range(N):
            ex.aggregate(0, j)
        _flip(tmp_path, f"{rp}merged/1", pos=30)  # a header byte
        res = ex.collect(0)
    assert _rel(res.total, ups.sum(0)) < RTOL


def test_tampered_input_without_slack_fails_clearly(tmp_path):
    store = LocalStore(tmp_path)
    cfg = _config(CodeSpec("plain", N))
    _publish_all(store, cfg, _updates(11))
    _flip_share(tmp_path, cfg, 0, 2, 0)
    with Exchange(store, cfg) as ex:
        with pytest.raises(NotEnoughShardsError, match="aggregators with intact inputs"):
            ex.collect(0)


# -- layouts, rounds, housekeeping --------------------------------------------------------

def test_dict_updates_come_back_as_tensors(tmp_path):
    rng = np.random.default_rng(12)
    ups = [{"w": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=2)} for _ in range(N)]
    results, errors = _run(LocalStore(tmp_path), _config(CodeSpec("mds", N, k=3)), ups)
    assert not errors
    tensors = results[0].tensors
    assert tensors["w"].dtype == np.float32 and tensors["w"].shape == (3, 4)
    np.testing.assert_allclose(tensors["w"], sum(u["w"].astype(float) for u in ups), rtol=1e-6)
    np.testing.assert_allclose(tensors["b"], sum(u["b"] for u in ups), rtol=1e-9)


def test_old_rounds_are_deleted_and_restart_resumes(tmp_path):
    store = LocalStore(tmp_path)
    cfg = _config(CodeSpec("mds", N, k=2), keep_rounds=2)
    ex = Exchange(store, cfg)
    assert ex.latest_complete_round() is None
    for r in range(4):
        _, errors = _run(store, cfg, _updates(r), r=r)
        assert not errors
    assert ex.completed_rounds() == [2, 3]
    assert store.list(ex.round_prefix(1)) == [] and store.list(ex.round_prefix(2))
    # a restarted worker finds the latest round and can still re-read its result
    fresh = Exchange(LocalStore(tmp_path), cfg)
    assert fresh.latest_complete_round() == 3
    assert _rel(fresh.collect(3).total, _updates(3).sum(0)) < RTOL


def test_request_counts_and_bytes_match_the_formulas(tmp_path):
    """The formulas of docs/exchange.md, with phases run one after another."""
    for spec in (CodeSpec("plain", N), CodeSpec("mds", N, k=2), CodeSpec("backup", N, s=1)):
        store = CountingStore(LocalStore(tmp_path / spec.mode))
        cfg = _config(spec, keep_rounds=0)
        ups = _updates(13)
        exs = [Exchange(store, cfg) for _ in range(N)]
        pub = [exs[w].publish(0, w, ups[w]) for w in range(N)]
        agg = [exs[w].aggregate(0, w) for w in range(N)]
        col = [exs[w].collect(0).stats for w in range(N)]
        m = spec.share_length(L) * 8
        c = spec.contributions_needed
        header = 1024  # every object's prefix + JSON header is below this
        for w in range(N):
            # one HEAD (counted as a GET): is this worker's done marker there already? Then
            # two PUTs: all N shares as one object, and the done marker with their index
            assert (pub[w].puts, pub[w].gets, pub[w].lists) == (2, 1, 0)
            assert N * m <= pub[w].bytes_up <= N * (m + header) + header + 16 * N
            # waiting LISTs nothing: one GET per done marker (all N found in one look); only a
            # quorum below n needs the members object (w=0 writes it, the others read it)
            agree = spec.needs_consensus and c < N
            assert (agg[w].puts, agg[w].lists) == (1 + agree, 0)
            # its own marker's attempt is known from its publish
            assert agg[w].gets == (N - 1) + c + (agree and w > 0)
            assert c * m <= agg[w].bytes_down <= c * (m + header) + header
            assert m <= agg[w].bytes_up <= m + 2 * header
            g = spec.merged_needed if spec.mode == "mds" else N
            # the GETs that find them, and a HEAD of the complete marker: only the first
            # collector writes it
            assert (col[w].puts, col[w].gets, col[w].lists) == (int(w == 0), g + 1, 0)
            assert g * m <= col[w].bytes_down <= g * (m + header)
        agree = spec.needs_consensus and c < N
        assert store.stats.puts == 2 * N + N + N * agree + 1  # O(N): 3-4 per worker and round


def _process_worker(root: str, w: int, queue) -> None:
    cfg = _config(CodeSpec("mds", 3, k=2))
    with Exchange(LocalStore(root), cfg) as ex:
        res = ex.run(0, w, _updates(14, n=3)[w])
    queue.put((w, res.total.tolist()))


def test_multi_process_round(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(str(tmp_path), w, queue)) for w in range(3)]
    for p in procs:
        p.start()
    got = dict(queue.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    exact = _updates(14, n=3).sum(0)
    for total in got.values():
        assert _rel(np.array(total), exact) < RTOL


# -- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(job="a/b"), "'job'"),
        (dict(deadline_s=0), "'deadline_s'"),
        (dict(poll_min_s=0.1, poll_max_s=0.01), "'poll_max_s'"),
        (dict(keep_rounds=-1), "'keep_rounds' must be at least 0"),
        (dict(threads=0), "'threads' must be at least 1"),
        (dict(quorum=5), "'quorum' must be at most n=4, not 5"),
    ],
)
def test_bad_round_config(kwargs, match):
    base = dict(job="job", code=CodeSpec("mds", N, k=2))
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        RoundConfig(**base)


def test_bad_round_config_for_backup_quorum_and_types(tmp_path):
    with pytest.raises(ValueError, match="'quorum' must be n-s=3"):
        RoundConfig(job="j", code=CodeSpec("backup", N, s=1), quorum=4)
    with pytest.raises(TypeError, match="'code'"):
        RoundConfig(job="j", code={"mode": "plain"})
    ex = Exchange(LocalStore(tmp_path), _config(CodeSpec("plain", N)))
    with pytest.raises(ValueError, match="'worker' must be at most n-1=3, not 4"):
        ex.publish(0, 4, np.ones(3))
    with pytest.raises(ValueError, match="'r' must be at least 0"):
        ex.collect(-1)
    with pytest.raises(TypeError, match="'store'"):
        Exchange("/tmp", _config(CodeSpec("plain", N)))


class _CleanedUpMidTakeover(WrappedStore):
    """The first part read of round 0 finds the round cleaned up under it: round ``keep`` has
    just completed and its completer deleted round 0 (the race of a late collector)."""

    def __init__(self, inner, base: str, keep: int, ahead: int):
        super().__init__(inner)
        self.base, self.keep, self.ahead, self.fired = base, keep, ahead, False

    def put(self, key, data, *, if_absent=False):
        self.inner.put(key, data, if_absent=if_absent)

    def get(self, key):
        return self.inner.get(key)

    def get_part(self, key, name, offset, length):
        if not self.fired:
            self.fired = True
            rp = f"{self.base}r00000000/"
            self.inner.delete([k for k in self.inner.list(rp)])
            # the others are keep (or more: older complete markers are gone too) rounds on
            self.inner.put(f"{self.base}complete/r{self.keep + self.ahead:08d}", b"x")
        return self.inner.get_part(key, name, offset, length)


@pytest.mark.parametrize("ahead", [0, 3])
def test_a_round_cleaned_up_during_a_takeover_is_behind_not_broken(tmp_path, ahead):
    spec = CodeSpec("mds", N, k=2)
    cfg = _config(spec, keep_rounds=2, takeover_after_s=0.0)
    ups = _updates(21)
    with Exchange(LocalStore(tmp_path), cfg) as ex:
        for w in range(N):
            ex.publish(0, w, ups[w])
        base = ex.round_prefix(0)[: -len("r00000000/")]
    store = _CleanedUpMidTakeover(LocalStore(tmp_path), base, 2, ahead)
    with Exchange(store, cfg) as ex:
        for w in range(N):  # this collector saw every done marker before the cleanup
            ex.share_location(0, 0, w)
        with pytest.raises(RoundBehindError):
            ex.collect(0)
    assert store.fired
