"""Coded matmul jobs: adapters (no I/O), the master with executors through an encrypted
store, erasures (dead, stalled, corrupt, tampered, late) and one-line CLI errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from coding.errors import NotEnoughShardsError, OverflowRiskError
from coding.gfp import gfp_matmul
from coding.privacy import independence_test
from exchange.crypto import EncryptedStore, Keyring, new_key
from exchange.stores.local import LocalStore
from worker.cli import main as kofn
from worker.matmul import Emulation, LocalPool, MatmulJob, ThreadPool, make_code, run_master
from worker.matmul.codes import MATMUL_CODES
from worker.matmul.codes.rows import UncodedMatmul
from worker.matmul.executor import Manifest, TaskStatus, keys, run_task
from worker.matmul.jobs import publish

P = 65521  # small prime for exact GF(p) checks

# (code, make_code kwargs): every code with N - K >= 1 spare subtasks.
CASES = [
    ("uncoded", dict(n=4)),
    ("replication", dict(n=6, k=3)),
    ("mds", dict(n=7, k=4)),
    ("poly", dict(n=8, ka=2, kb=2)),
    ("secure", dict(n=7, ka=2, kb=1, t=1)),
    ("matdot", dict(n=7, k=3)),
    ("secure-matdot", dict(n=7, k=2, t=1)),
    ("gasp", dict(n=12, ka=2, kb=2, t=2)),
]
REAL = [c for c in CASES if c[0] in ("uncoded", "replication", "mds", "poly", "matdot")]


@pytest.fixture
def store(tmp_path):
    return EncryptedStore(LocalStore(tmp_path / "store"), Keyring([new_key()]))


def _inputs(rng, shape=(37, 23, 11), p=None):
    m, d, q = shape
    if p is None:
        return rng.standard_normal((m, d)), rng.standard_normal((d, q))
    return rng.integers(0, p, (m, d)), rng.integers(0, p, (d, q))


def _products(code, enc):
    return {i: (enc.a[i] @ enc.b_of(i) if code.p is None else
                gfp_matmul(enc.a[i], enc.b_of(i), code.p)) for i in range(code.n)}


def _rel(C, ref):
    return np.linalg.norm(C - ref) / np.linalg.norm(ref)


# -- adapters: round trips without I/O --------------------------------------------------------

@pytest.mark.parametrize("name,kw", REAL)
@pytest.mark.parametrize("seed", range(3))
def test_real_codes_decode_from_any_decodable_set(name, kw, seed):
    rng = np.random.default_rng(seed)
    A, B = _inputs(rng)
    code = make_code(name, **kw)
    enc = code.encode(A, B)
    res = _products(code, enc)
    order = list(rng.permutation(code.n))
    chosen = code.select(order)
    C = code.decode({i: res[i] for i in chosen}, enc.shape)
    assert _rel(C, A @ B) <= 1e-9


@pytest.mark.parametrize("name,kw", [(c, dict(kw, p=P)) for c, kw in CASES])
def test_gfp_codes_decode_exactly(name, kw):
    rng = np.random.default_rng(1)
    A, B = _inputs(rng, p=P)
    code = make_code(name, **kw)
    enc = code.encode(A, B, rng=rng)
    res = _products(code, enc)
    for _ in range(3):
        chosen = code.select(list(rng.permutation(code.n)))
        C = code.decode({i: res[i] for i in chosen}, enc.shape)
        np.testing.assert_array_equal(C, gfp_matmul(A, B, P))


def test_replication_needs_one_copy_of_each_block():
    code = make_code("replication", n=6, k=3)
    assert code.select([0, 3, 1, 4]) is None  # block 2 missing
    assert code.select([0, 3, 1, 5]) == [0, 1, 5]
    assert code.can_still_decode([0, 1, 2]) and not code.can_still_decode([0, 3])


def test_secure_real_inputs_are_quantized_within_bound():
    rng = np.random.default_rng(2)
    A, B = _inputs(rng)
    code = make_code("secure", n=5, ka=1, kb=1, t=1)
    enc = code.encode(A, B, rng=rng)
    res = _products(code, enc)
    C = code.decode({i: res[i] for i in code.select([4, 2, 0])}, enc.shape,
                    frac_bits=enc.frac_bits)
    f = enc.frac_bits
    assert f is not None and f >= 10
    bound = A.shape[1] * (np.abs(A).max() + np.abs(B).max() + 1) * 2.0 ** -(f + 1)
    assert np.abs(C - A @ B).max() <= bound


@pytest.mark.parametrize("name,kw", [("secure", dict(n=5, ka=1, kb=1, t=1)),
                                     ("secure-matdot", dict(n=5, k=1, t=1)),
                                     ("gasp", dict(n=5, ka=1, kb=1, t=1))])
def test_decode_uses_the_jobs_metadata_not_the_last_encode(name, kw):
    # Job 1 (5x5, entries ~1) is decoded after job 2 (3x3, entries ~1000) was encoded with
    # fewer fractional bits: shape and frac_bits come from job 1's Encoded.
    rng = np.random.default_rng(6)
    code = make_code(name, **kw)
    A1, B1 = rng.standard_normal((5, 4)), rng.standard_normal((4, 5))
    job1 = code.encode(A1, B1, rng=rng)
    job2 = code.encode(1000 * rng.standard_normal((3, 4)), rng.standard_normal((4, 3)), rng=rng)
    assert job2.frac_bits < job1.frac_bits
    res = _products(code, job1)
    C = code.decode({i: res[i] for i in code.select(range(code.n))}, job1.shape,
                    frac_bits=job1.frac_bits)
    assert C.shape == (5, 5) and np.abs(C - A1 @ B1).max() <= 1e-3


# -- privacy: what any t workers see is independent of the inputs ---------------------------

def _views(code, secret, rng, draws, who, part):
    out = np.empty((draws, len(who)), dtype=np.int64)
    for r in range(draws):
        enc = code.encode(secret[0], secret[1], rng=rng)
        share = enc.a if part == "a" else enc.b
        out[r] = [share[w].reshape(-1)[0] for w in who]
    return out


@pytest.mark.parametrize("t", [1, 2])
def test_secure_inputs_seen_by_any_t_workers_are_independent(t):
    # A-shares depend only on (A, R) and B-shares only on (B, S), with R and S drawn
    # independently, so the joint view is independent of (A, B) when each part is.
    p = 7
    code = make_code("secure", n=(1 + t) * 2 - 1, ka=1, kb=1, t=t, p=p)
    s1 = (np.array([[0]]), np.array([[0]]))
    s2 = (np.array([[5]]), np.array([[3]]))
    rng = np.random.default_rng(3)
    for who in itertools.combinations(range(code.n), t):
        for part in "ab":
            res = independence_test(
                lambda s, g, d, who=who, part=part: _views(code, s, g, d, who, part), s1, s2,
                p=p,
                draws=max(300, 6 * p ** t), rng=rng)
            assert res.passed, (who, part, res)


@pytest.mark.parametrize("name,kw", [("secure-matdot", dict(n=5, k=1)),
                                     ("gasp", dict(n=5, ka=1, kb=1))])
def test_matdot_and_gasp_inputs_seen_by_one_worker_are_independent(name, kw):
    p = 7
    code = make_code(name, t=1, p=p, **kw)
    s1 = (np.array([[0]]), np.array([[0]]))
    s2 = (np.array([[5]]), np.array([[3]]))
    rng = np.random.default_rng(5)
    for who in range(code.n):
        for part in "ab":
            res = independence_test(
                lambda s, g, d, who=who, part=part: _views(code, s, g, d, (who,), part), s1,
                s2, p=p, draws=300, rng=rng)
            assert res.passed, (name, who, part, res)


def test_privacy_check_detects_t_plus_one_colluders():
    p = 7
    code = make_code("secure", n=3, ka=1, kb=1, t=1, p=p)
    s1, s2 = (np.array([[0]]), np.array([[0]])), (np.array([[5]]), np.array([[3]]))
    res = independence_test(lambda s, g, d: _views(code, s, g, d, (0, 1), "a"), s1, s2, p=p,
                            draws=400, rng=np.random.default_rng(4))
    assert not res.passed


# -- the master with executors through the encrypted store ---------------------------------

def _spec(name, kw, **extra):
    return MatmulJob(code=name, n=kw["n"], k=kw.get("k"), ka=kw.get("ka", 1),
                     kb=kw.get("kb", 1), t=kw.get("t", 1), p=kw.get("p"),
                     size=(37, 23, 11), **extra)


@pytest.mark.parametrize("name,kw", CASES[1:])
@pytest.mark.parametrize("fault", ["dead", "stall"])
def test_jobs_decode_with_n_minus_k_workers_down(store, name, kw, fault):
    code = make_code(name, **kw)
    spare = code.n - code.needed
    if name == "replication":  # down: the second copy of each block but one
        down = set(range(code.params["k"], code.n))
    else:
        down = set(range(spare))
    emus = [Emulation(dead=fault == "dead", delay=30.0 if fault == "stall" else 0.0)
            if i in down else Emulation() for i in range(code.n)]
    with ThreadPool(store, emus, poll_max=0.005):
        res = run_master(store, _spec(name, kw, timeout=20.0))
    assert res.check["ok"], res.check
    assert not set(res.used) & down


@pytest.mark.parametrize("name,kw", [(c, dict(kw, p=P)) for c, kw in CASES[2:4] + CASES[5:]])
def test_gfp_jobs_are_exact(store, name, kw):
    spec = _spec(name, kw, field="gfp")
    with ThreadPool(store, [Emulation()] * kw["n"], poll_max=0.005):
        res = run_master(store, spec)
    assert res.check["exact"] and res.check["ok"]


class _Negated(UncodedMatmul):
    """A code of this test file's own: worker ``i`` computes ``(-A_i) @ B``."""

    name = "negated-test"

    def _code_blocks(self, blocks):
        return -blocks

    def _blocks_of(self, R, chosen):
        return -R


def test_a_code_registered_from_a_test_file_runs_a_job(store):
    MATMUL_CODES.register(_Negated.name, _Negated, replace=True)
    code = make_code(_Negated.name, n=3)
    assert type(code) is _Negated and code.needed == 3
    with ThreadPool(store, [Emulation()] * 3, poll_max=0.005):
        res = run_master(store, MatmulJob(code=_Negated.name, n=3, k=3, size=(7, 5, 4)))
    assert res.check["ok"], res.check


def test_vector_product(store):
    spec = MatmulJob(code="mds", n=5, k=3, size=(40, 17, 0))
    with ThreadPool(store, [Emulation()] * 5, poll_max=0.005):
        res = run_master(store, spec)
    assert res.C.shape == (40,) and res.check["ok"]


def test_corrupt_result_is_an_erasure(store):
    emus = [Emulation(corrupt=i == 0) for i in range(5)]
    logs = []
    with ThreadPool(store, emus, poll_max=0.005):
        res = run_master(store, MatmulJob(code="mds", n=5, k=4, size=(20, 8, 4)),
                         log=logs.append)
    assert 0 not in res.used and res.check["ok"]
    # The corrupt result may or may not be read before four good ones arrive.
    assert set(res.erasures) <= {0}


def test_too_many_corrupt_results_fail_fast(store):
    emus = [Emulation(corrupt=i < 2) for i in range(5)]
    with ThreadPool(store, emus, poll_max=0.005), pytest.raises(NotEnoughShardsError):
        run_master(store, MatmulJob(code="mds", n=5, k=4, size=(20, 8, 4), timeout=20.0))


def test_tampered_result_is_an_erasure(tmp_path):
    inner = LocalStore(tmp_path / "s")
    store = EncryptedStore(inner, Keyring([new_key()]))
    code = make_code("mds", n=4, k=3)
    A, B = _inputs(np.random.default_rng(5), (12, 5, 3))
    manifest = publish(store, code, code.encode(A, B), job="tamper")
    for task in manifest.tasks:
        assert run_task(store, manifest, task, task["worker"]) == TaskStatus.UPLOADED
    blob = bytearray(inner.get(keys.result("tamper", 1)))
    blob[-5] ^= 1
    inner.put(keys.result("tamper", 1), bytes(blob))
    from worker.matmul.jobs import collect

    _, _, erasures, chosen = collect(store, code, manifest, timeout=5.0)
    assert 1 not in chosen and "decrypt" in erasures[1].lower()


def test_tasks_of_decoded_jobs_are_skipped_or_dropped(store):
    code = make_code("mds", n=3, k=2)
    A, B = _inputs(np.random.default_rng(6), (8, 4, 2))
    manifest = publish(store, code, code.encode(A, B), job="late")
    import threading

    timer = threading.Timer(0.2, lambda: store.put(keys.done("late"), b"done"))
    timer.start()
    # An emulated hour-long stall must end as soon as the job is decoded: run the task in a
    # thread and check it returned (a liveness bound far from any speed claim).
    status: list[TaskStatus] = []
    worker = threading.Thread(target=lambda: status.append(
        run_task(store, manifest, manifest.tasks[0], 0, Emulation(delay=3600.0))), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the done marker did not interrupt the emulated stall"
    assert status == [TaskStatus.LATE]
    assert run_task(store, manifest, manifest.tasks[1], 1) == TaskStatus.SKIPPED
    assert store.list(keys.results("late")) == []


def test_manifest_is_json_and_malformed_ones_are_corrupt():
    m = Manifest("j", {"code": "mds"}, None, (3, 2), ({"index": 0, "worker": 0, "a": "x",
                                                        "b": "y"},), 1.0)
    assert Manifest.from_bytes(m.to_bytes(), "k") == m
    from exchange.errors import CorruptShardError

    with pytest.raises(CorruptShardError):
        Manifest.from_bytes(b"\x80\x04K\x01.", "k")  # a pickle is refused, never loaded


@pytest.mark.slow  # five Python processes start (numpy import) on shared cores: 10-45 s
def test_local_processes_with_killed_workers(tmp_path):
    ring = Keyring([new_key()])
    root = tmp_path / "store"
    store = EncryptedStore(LocalStore(root), ring)
    with LocalPool(store, [Emulation()] * 5, url=str(root), keyring=ring) as pool:
        pool.kill(0)
        pool.kill(3)
        res = run_master(store, MatmulJob(code="mds", n=5, k=3, size=(30, 20, 10),
                                          timeout=60.0))
    assert res.check["ok"] and not {0, 3} & set(res.used)


# -- validation: one pytest.raises per bad argument ------------------------------------------

@pytest.mark.parametrize("kw,exc,match", [
    (dict(code="poly", n=3, ka=2, kb=2), ValueError, "'n' must be at least ka\\*kb=4"),
    (dict(code="mds", n=3, k=4), ValueError, "'k' must be at most n=3"),
    (dict(code="secure", n=4, ka=1, kb=1, t=2), ValueError,
     "'n' must be at least \\(ka\\+t\\)\\*\\(kb\\+1\\)-1=5"),
    (dict(code="secure", n=8, k=2, t=2), ValueError, "'t' must be at most k-1=1"),
    (dict(code="replication", n=5, k=2), ValueError, "multiple of k=2"),
    (dict(code="uncoded", n=4, k=3), ValueError, "'n' must equal k=3"),
    (dict(code="bogus", n=4), ValueError, "'code' must be one of"),
    (dict(code="matdot", n=4, k=3), ValueError, "'n' must be at least 2k-1=5"),
    (dict(code="secure-matdot", n=4, k=2, t=1), ValueError, "'n' must be at least 2k\\+2t-1=5"),
    (dict(code="gasp", n=26, ka=4, kb=4, t=2), ValueError,
     "'n' must be at least the GASP threshold=27"),
    (dict(code="mds", n=4, k=2, p=12), ValueError, "'p' must be a prime"),
])
def test_make_code_rejects(kw, exc, match):
    with pytest.raises(exc, match=match):
        make_code(kw.pop("code"), **kw)


def test_shapes_that_do_not_multiply():
    with pytest.raises(ValueError, match="do not multiply"):
        make_code("mds", n=4, k=2).encode(np.ones((4, 3)), np.ones((2, 2)))


def test_p_too_small_for_quantized_range():
    code = make_code("secure", n=5, ka=1, kb=1, t=1, p=11)
    with pytest.raises(OverflowRiskError, match="too small for the quantized range"):
        code.encode(np.full((2, 30), 3.0), np.full((30, 2), 3.0))


@pytest.mark.parametrize("argv,match", [
    (["--code", "poly", "--n", "4", "--ka", "2", "--kb", "3"], "'n' must be at least ka*kb=6"),
    (["--code", "secure", "--n", "8", "--k", "2", "--t", "2"], "'t' must be at most k-1=1"),
    (["--code", "secure", "--n", "8", "--ka", "2", "--p", "11"], "too small for the quantized"),
    (["--size", "4x"], "'size' must"),
    (["--code", "mds", "--plan", "nope"], "'policy' must be one of"),
    (["--code", "poly", "--plan", "igp"], "'code' must be 'mds' with --plan"),
    (["--code", "gasp", "--n", "10", "--ka", "2", "--kb", "2", "--t", "2"],
     "'n' must be at least the GASP threshold=11"),
])
def test_cli_one_line_errors(tmp_path, capsys, argv, match):
    rc = kofn(["matmul", "--store", str(tmp_path / "s"), "--launcher", "thread",
               "--size", "20x10x5", *argv] if "--size" not in argv else
              ["matmul", "--store", str(tmp_path / "s"), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("kofn: error:") and "\n" not in err
    assert match in err


@pytest.mark.parametrize("argv", [
    ["--code", "matdot", "--n", "6", "--k", "3"],
    ["--code", "secure-matdot", "--n", "6", "--k", "2", "--t", "1"],
    ["--code", "gasp", "--n", "12", "--ka", "2", "--kb", "2", "--t", "2"],
])
def test_cli_runs_matdot_and_gasp_with_a_stalled_worker(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    rc = kofn(["matmul", *argv, "--size", "30x20x10", "--store", "st", "--launcher", "thread",
               "--straggle", "worker=1,delay=30", "--report", "r.json"])
    assert rc == 0 and "check ok" in capsys.readouterr().out
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["check"]["ok"] and 1 not in report["used"]


def test_cli_shapes_that_do_not_multiply(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.ones((4, 3)))
    np.save(tmp_path / "b.npy", np.ones((2, 2)))
    rc = kofn(["matmul", "--store", str(tmp_path / "s"), "--launcher", "thread",
               "--a", str(tmp_path / "a.npy"), "--b", str(tmp_path / "b.npy")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "do not multiply" in err and "\n" not in err


def test_cli_runs_a_job_and_writes_a_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = kofn(["matmul", "--code", "mds", "--n", "5", "--k", "3", "--size", "30x20x10",
               "--store", "st", "--launcher", "thread", "--straggle", "worker=1,delay=30",
               "--straggle", "dead:worker=2", "--report", "r.json"])
    out = capsys.readouterr().out
    assert rc == 0 and "check ok" in out
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["check"]["ok"] and not {1, 2} & set(report["used"])
    assert report["encrypted"] is True
