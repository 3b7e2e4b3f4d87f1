"""Coded matrix-multiplication jobs: the job spec and the master.

The master (:func:`run_master`) encodes ``A`` and ``B`` with the job's code
(:mod:`worker.matmul.codes`), uploads every subtask's operands as shards under the job
prefix (encrypted when the store is an :class:`~exchange.crypto.EncryptedStore`), publishes
the job manifest (the executors poll for it, see :mod:`worker.matmul.executor`), waits for
the first decodable set of results, decodes, marks the job ``done`` and writes the result.
Corrupt or undecryptable results are logged and counted as erasures; results that arrive
after the decode are ignored (the executors see ``done`` and drop them).

Time to result is measured from the manifest's publication (``t0``, after the operands are
uploaded) to the decoded product; encoding and uploading are reported separately.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from coding.errors import NotEnoughShardsError
from coding.gfp import gfp_random
from coding.validate import check_int, check_real
from exchange.errors import CorruptShardError, DecryptionError, RoundTimeoutError
from exchange.shards import ShardHeader, pack_shard, unpack_shard
from exchange.stores.base import Store
from worker.matmul.codes import Encoded, MatmulCode, code_class, make_code
from worker.matmul.executor import Backoff, Emulation, Manifest, keys, serve

__all__ = ["MatmulJob", "MatmulResult", "parse_size", "make_inputs", "new_job_id",
           "publish", "collect", "run_master", "ExecutorPool", "ThreadPool", "LocalPool",
           "RayPool"]

_JOB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_size(text: str) -> tuple[int, int, int]:
    """Parse ``M``, ``MxK2`` or ``MxK2xN2`` into ``(m, d, q)``.

    ``M`` is a square ``M x M`` times ``M x M`` product; ``MxK2`` is ``A (M x K2)`` times a
    vector ``x`` of length ``K2`` (``q = 0``); ``MxK2xN2`` is ``A (M x K2)`` times
    ``B (K2 x N2)``.
    """
    parts = str(text).lower().split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"Argument 'size' must look like M, MxK2 or MxK2xN2, not {text!r}.") \
            from None
    if not 1 <= len(dims) <= 3 or any(d < 1 for d in dims):
        raise ValueError(f"Argument 'size' must be 1 to 3 positive integers joined by 'x', "
                         f"not {text!r}.")
    if len(dims) == 1:
        return dims[0], dims[0], dims[0]
    if len(dims) == 2:
        return dims[0], dims[1], 0
    return dims[0], dims[1], dims[2]


@dataclass(frozen=True)
class MatmulJob:
    """One matmul job's settings.

    Parameters
    ----------
    code : str
        The scheme, one of :data:`worker.matmul.codes.CODES`.
    n : int
        Number of subtasks / workers.
    k, ka, kb, t : int
        Code parameters (see :func:`worker.matmul.codes.make_code`).
    size : (m, d, q)
        ``A`` is ``m x d``, ``B`` is ``d x q``; ``q = 0`` means a vector ``x``.
    p : int, optional
        Prime for exact GF(p) arithmetic (secure: default ``2**31 - 1``).
    field : {"real", "gfp"}
        Input kind: float64 inputs, or integers in ``[0, p)`` (exact product).
    frac_bits : int, optional
        Quantizer fractional bits for the secure code with real inputs.
    seed : int
        Seed of the inputs and of the real MDS generator.
    check : bool
        Compare the decoded product with a direct one.
    timeout : float
        Seconds to wait for a decodable set before ``RoundTimeoutError``.
    job : str
        Job id (letters, digits, ``._-``); empty for a fresh random id.
    """

    code: str = "mds"
    n: int = 8
    k: int | None = None
    ka: int = 1
    kb: int = 1
    t: int = 1
    size: tuple[int, int, int] = (512, 512, 512)
    p: int | None = None
    field: str = "real"
    frac_bits: int | None = None
    seed: int = 0
    check: bool = True
    timeout: float = 120.0
    job: str = ""

    def __post_init__(self) -> None:
        cls = code_class(self.code)  # one line naming the choices if unknown
        if self.field not in ("real", "gfp"):
            raise ValueError(f"Argument 'field' must be 'real' or 'gfp', not {self.field!r}.")
        if self.field == "gfp" and self.p is None and not cls.private:
            raise ValueError("Argument 'p' is required with field 'gfp'.")
        for i, v in enumerate(self.size):
            check_int(f"size[{i}]", v, low=0 if i == 2 else 1)
        check_real("timeout", self.timeout, low=0.0, low_open=True)
        if self.job and not _JOB_RE.match(self.job):
            raise ValueError(f"Argument 'job' must match {_JOB_RE.pattern}, not {self.job!r}.")

    def build_code(self) -> MatmulCode:
        """The code adapter (validates n against the recovery threshold, t < k, ...)."""
        return make_code(self.code, n=self.n, k=self.k, ka=self.ka, kb=self.kb, t=self.t,
                         p=self.p, frac_bits=self.frac_bits, seed=self.seed)


def new_job_id(prefix: str = "mm") -> str:
    """A fresh job id."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def make_inputs(spec: MatmulJob, p: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded inputs: standard normal float64, or uniform integers in ``[0, p)``.

    With ``q = 0`` the right operand is a vector of length ``d`` (``A @ x``).
    """
    m, d, q = spec.size
    rng = np.random.default_rng(spec.seed)
    shape_b = (d, q) if q else (d,)
    if spec.field == "gfp":
        return gfp_random((m, d), p, rng), gfp_random(shape_b, p, rng)
    return rng.standard_normal((m, d)), rng.standard_normal(shape_b)


@dataclass
class MatmulResult:
    """What one job produced.

    Attributes
    ----------
    job : str
        Job id.
    C : numpy.ndarray
        The decoded product.
    used : list of int
        Subtask indices the decoder used.
    arrivals : dict
        Seconds after ``t0`` at which each subtask's result was read (erasures excluded).
    erasures : dict
        Subtask index -> why its result was dropped.
    timings : dict
        ``encode_s``, ``upload_s``, ``time_to_result_s`` (``t0`` to decoded), ``decode_s``.
    check : dict or None
        ``{"ok", "max_abs_err", "rel_err", "tolerance"}`` against a direct product.
    """

    job: str
    C: np.ndarray
    used: list[int]
    arrivals: dict[int, float] = field(default_factory=dict)
    erasures: dict[int, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    check: dict | None = None

    def report(self, code: MatmulCode, spec: MatmulJob) -> dict:
        """A JSON-ready report."""
        return {"job": self.job, "code": code.to_json(), "size": list(spec.size),
                "field": spec.field, "used": self.used,
                "arrivals_s": {str(k): v for k, v in sorted(self.arrivals.items())},
                "erasures": {str(k): v for k, v in self.erasures.items()},
                "timings": self.timings, "check": self.check,
                "frac_bits": code.frac_bits}


def publish(store: Store, code: MatmulCode, enc: Encoded, *, job: str,
            assignment: dict[int, int] | None = None,
            delays: dict[int, float] | None = None, emulations: dict | None = None) -> Manifest:
    """Upload every subtask's operands and then the manifest; return the manifest.

    ``assignment`` maps subtask index -> executor id (default: subtask ``i`` to executor
    ``i``); subtasks missing from it are not published (a master computes them itself).
    ``delays`` injects stalls (executor id -> s); ``emulations`` (subtask -> Emulation) too.
    """
    assignment = {i: i for i in range(code.n)} if assignment is None else dict(assignment)
    cj = code.to_json()
    tasks = []
    shared = keys.input(job, "b", "shared")
    if enc.shared_b:
        hdr = ShardHeader(kind="merged", job=job, round=0, index=-1, code=cj)
        store.put(shared, pack_shard(hdr, enc.b))
    for i, w in sorted(assignment.items()):
        hdr = ShardHeader(kind="merged", job=job, round=0, index=i, worker=w, code=cj)
        store.put(keys.input(job, "a", i), pack_shard(hdr, enc.a[i]))
        b_key = shared
        if not enc.shared_b:
            b_key = keys.input(job, "b", i)
            store.put(b_key, pack_shard(hdr, enc.b[i]))
        tasks.append({"index": i, "worker": w, "a": keys.input(job, "a", i), "b": b_key})
    manifest = Manifest(job, cj, code.p, enc.shape, tuple(tasks), time.time(),
                        dict(delays or {}), dict(emulations or {}))
    store.put(keys.manifest(job), manifest.to_bytes())
    return manifest


def _read_result(store: Store, key: str, manifest: Manifest) -> tuple[int, np.ndarray]:
    shard = unpack_shard(store.get(key), key=key,
                         expect={"job": manifest.job, "kind": "contrib", "code": manifest.code})
    idx = shard.header.index
    if key != keys.result(manifest.job, idx):
        raise CorruptShardError(key, f"header index {idx} does not match the key")
    return idx, shard.payload


def collect(store: Store, code: MatmulCode, manifest: Manifest, *, timeout: float,
            local: queue.Queue | None = None, poll_max: float = 0.01,
            log: Callable[[str], None] = lambda s: None):
    """Wait for the first decodable set of results.

    Parameters
    ----------
    local : queue.Queue, optional
        ``(index, product)`` pairs the master computed itself, merged with the store's.

    Returns
    -------
    (results, arrivals, erasures, chosen)
        ``results`` maps index -> product; ``chosen`` is the decodable subset.

    Raises
    ------
    NotEnoughShardsError
        If so many results were erased that no decodable set remains.
    RoundTimeoutError
        If ``timeout`` passes first.
    """
    results: dict[int, np.ndarray] = {}
    arrivals: dict[int, float] = {}
    erasures: dict[int, str] = {}
    seen: set[str] = set()
    backoff = Backoff(0.0005, poll_max)
    deadline = manifest.t0 + timeout
    while True:
        got = False
        while local is not None and not local.empty():
            i, prod = local.get_nowait()
            results[i], arrivals[i], got = prod, time.time() - manifest.t0, True
        for key in store.list(keys.results(manifest.job)):
            if key in seen:
                continue
            seen.add(key)
            got = True
            try:
                i, prod = _read_result(store, key, manifest)
            except (CorruptShardError, DecryptionError) as err:
                i = int(key.rsplit("/", 1)[1]) if key.rsplit("/", 1)[1].isdigit() else -1
                erasures[i] = str(err)
                log(f"master: dropped result {key} as an erasure: {err}")
                continue
            except FileNotFoundError:
                continue
            results.setdefault(i, prod)
            arrivals.setdefault(i, time.time() - manifest.t0)
        chosen = code.select(results)
        if chosen is not None:
            return results, arrivals, erasures, chosen
        if erasures and not code.can_still_decode(erasures):
            raise NotEnoughShardsError(code.needed, code.n - len(erasures), "results")
        if time.time() > deadline:
            missing = [i for i in range(code.n) if i not in results]
            raise RoundTimeoutError(missing)
        if got:
            backoff.reset()
        else:
            backoff.wait()


def _check(code: MatmulCode, spec: MatmulJob, A, B, C, frac_bits: int | None) -> dict:
    ref = code.direct(A, B)
    if code.p is not None and C.dtype.kind in "iu":
        ok = bool(np.array_equal(C, ref))
        err = 0.0 if ok else float(np.max(np.abs(C - ref)))
        return {"ok": ok, "exact": True, "max_abs_err": err, "rel_err": err, "tolerance": 0.0}
    diff = np.asarray(C, dtype=np.float64) - ref
    rel = float(np.linalg.norm(diff) / max(np.linalg.norm(ref), 1e-300))
    tol = 1e-9
    if frac_bits is not None:  # quantization: each term off by <= |a| d + |b| d + d^2
        f = frac_bits
        delta = 2.0 ** -(f + 1)
        ba, bb = float(np.max(np.abs(A))), float(np.max(np.abs(B)))
        tol_abs = A.shape[1] * (ba * delta + bb * delta + delta * delta)
        mx = float(np.max(np.abs(diff)))
        return {"ok": mx <= tol_abs, "exact": False, "max_abs_err": mx, "rel_err": rel,
                "tolerance": tol_abs, "tolerance_kind": "max abs (quantization bound)"}
    return {"ok": rel <= tol, "exact": False, "max_abs_err": float(np.max(np.abs(diff))),
            "rel_err": rel, "tolerance": tol, "tolerance_kind": "relative Frobenius"}


def run_master(store: Store, spec: MatmulJob, A: np.ndarray | None = None,
               B: np.ndarray | None = None, *, code: MatmulCode | None = None,
               assignment: dict[int, int] | None = None,
               on_publish: Callable[[Encoded, Manifest, queue.Queue], object] | None = None,
               delays: dict[int, float] | None = None, cleanup: bool = True,
               poll_max: float = 0.01, emulations: dict | None = None,
               log: Callable[[str], None] = lambda s: None) -> MatmulResult:
    """Run one job end to end: encode, upload, publish, wait, decode, mark done, write.

    Parameters
    ----------
    store : Store
        Where the job lives (wrap it in ``EncryptedStore`` to encrypt every object).
    spec : MatmulJob
        The job.
    A, B : numpy.ndarray, optional
        Inputs; seeded random ones of ``spec.size`` by default.
    code : MatmulCode, optional
        A prebuilt adapter (default ``spec.build_code()``).
    assignment : dict, optional
        Subtask -> executor id; subtasks left out are the master's own.
    on_publish : callable, optional
        ``on_publish(encoded, manifest, queue)`` is called right after the manifest is
        published: it may notify executors directly, and start the master's own
        computation of the subtasks left out of ``assignment`` (for example in a thread),
        which puts ``(index, product)`` pairs on the queue.
    delays, emulations : dict, optional
        Stalls, executor id -> extra s (benchmarks, tests); subtask -> its Emulation.
    cleanup : bool
        Delete the job's operands and worker results after decoding (the manifest, the
        ``done`` marker and the result stay).
    """
    code = spec.build_code() if code is None else code
    job = spec.job or new_job_id()
    if A is None or B is None:
        A, B = make_inputs(spec, code.p)
    A, B = np.asarray(A), np.asarray(B)
    vector = B.ndim == 1
    B2 = B[:, None] if vector else B
    t_enc = time.perf_counter()
    enc = code.encode(A, B2)
    t_up = time.perf_counter()
    manifest = publish(store, code, enc, job=job, assignment=assignment, delays=delays,
                       emulations=emulations)
    t_pub = time.perf_counter()
    log(f"master: published job {job} ({code.name}, n={code.n}, needed={code.needed})")
    local_q: queue.Queue | None = None
    if on_publish is not None:
        local_q = queue.Queue()
        on_publish(enc, manifest, local_q)
    try:
        results, arrivals, erasures, chosen = collect(
            store, code, manifest, timeout=spec.timeout, local=local_q, poll_max=poll_max,
            log=log)
        t_dec = time.perf_counter()
        C = code.decode({i: results[i] for i in chosen}, enc.shape, frac_bits=enc.frac_bits)
        ttr = time.time() - manifest.t0
    finally:
        store.put(keys.done(job), pack_shard(ShardHeader(kind="done", job=job, round=0)))
    dec_s = time.perf_counter() - t_dec
    C = C[:, 0] if vector else C
    store.put(keys.final(job), pack_shard(
        ShardHeader(kind="merged", job=job, round=0, code=code.to_json()),
        C if C.dtype.kind != "i" else C.astype(np.int64)))
    out = MatmulResult(job, C, chosen, arrivals, erasures, {
        "encode_s": t_up - t_enc, "upload_s": t_pub - t_up, "time_to_result_s": ttr,
        "decode_s": dec_s})
    if spec.check:
        out.check = _check(code, spec, A, B2, C[:, None] if vector else C, enc.frac_bits)
    if cleanup:
        store.delete([k for k in store.list(f"matmul/job/{job}/")
                      if "/in/" in k or "/out/" in k])
    return out


# -- launching executors ------------------------------------------------------------------

class ExecutorPool:
    """Executors started before a job is published, stopped with the pool's stop marker.

    Use as a context manager. :meth:`start` returns only once every executor has written
    its ready marker, so start-up cost stays out of the measured time to result.
    Subclasses start threads (:class:`ThreadPool`), OS processes (:class:`LocalPool`) or
    Ray tasks (:class:`RayPool`).
    """

    def __init__(self, store: Store, emulations: list[Emulation], *, poll_max: float = 0.02,
                 start_timeout: float = 120.0):
        self.store = store
        self.emulations = list(emulations)
        self.pool = uuid.uuid4().hex[:10]
        self.poll_max = poll_max
        self.start_timeout = start_timeout

    @property
    def n(self) -> int:
        return len(self.emulations)

    def _launch(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _join(self, timeout: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self) -> ExecutorPool:
        self._launch()
        deadline = time.time() + self.start_timeout
        backoff = Backoff(0.005, 0.1)
        want = {keys.ready(self.pool, i) for i in range(self.n)}
        while not want <= set(self.store.list(f"matmul/pool/{self.pool}/ready/")):
            if time.time() > deadline:
                self.stop()
                raise RoundTimeoutError(sorted(want))
            self._check_alive()
            backoff.wait()
        return self

    def _check_alive(self) -> None:
        """Raise if an executor died during start-up (overridden where that is knowable)."""

    def stop(self, timeout: float = 10.0) -> None:
        self.store.put(keys.stop(self.pool), b"stop")
        self._join(timeout)
        self.store.delete(self.store.list(f"matmul/pool/{self.pool}/"))

    def __enter__(self) -> ExecutorPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ThreadPool(ExecutorPool):
    """Executors as threads of this process (tests, and ``--launcher thread``)."""

    def _launch(self) -> None:
        self._threads = [
            threading.Thread(target=serve, args=(self.store, i, emu),
                             kwargs={"pool": self.pool, "poll_max": self.poll_max},
                             daemon=True, name=f"matmul-executor-{i}")
            for i, emu in enumerate(self.emulations)]
        for th in self._threads:
            th.start()

    def _join(self, timeout: float) -> None:
        for th in self._threads:
            th.join(timeout)


# ``python -m worker.matmul.executor`` would import the module twice (the package imports
# it first); this runs the same ``main``.
_EXECUTOR_MAIN = "import sys; from worker.matmul.executor import main; sys.exit(main())"


class LocalPool(ExecutorPool):
    """Executors as OS processes: ``python -m worker.matmul.executor`` each.

    Parameters
    ----------
    url : str
        The store URL the processes open.
    keyring : Keyring or None
        Encryption keys, handed over in a 0600 key file (``KOFN_KEY_FILE``); ``None`` for
        a plain store.
    """

    def __init__(self, store: Store, emulations: list[Emulation], *, url: str,
                 keyring: object = None, poll_max: float = 0.02, start_timeout: float = 120.0,
                 verbose: bool = False):
        super().__init__(store, emulations, poll_max=poll_max, start_timeout=start_timeout)
        self.url, self.keyring, self.verbose = url, keyring, verbose
        self.procs: list[subprocess.Popen] = []

    def _launch(self) -> None:
        # One BLAS thread per executor: they share the machine's cores.
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        self._tmp = tempfile.TemporaryDirectory(prefix="kofn-matmul-")
        if self.keyring is not None:
            from exchange.crypto import write_key_file

            path = write_key_file(os.path.join(self._tmp.name, "key.json"), self.keyring)
            env["KOFN_KEY_FILE"] = str(path)
            env.pop("KOFN_KEY", None)
        for i, emu in enumerate(self.emulations):
            cmd = [sys.executable, "-c", _EXECUTOR_MAIN, "--store", self.url,
                   "--worker", str(i), "--pool", self.pool, "--emulation", emu.to_json(),
                   "--poll-max", str(self.poll_max)]
            if self.keyring is None:
                cmd.append("--no-encrypt")
            if self.verbose:
                cmd.append("--verbose")
            self.procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL))

    def _check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise RuntimeError(f"Executor {i} exited with status {proc.returncode} "
                                   "during start-up.")

    def kill(self, worker: int) -> None:
        """Kill executor ``worker`` (SIGKILL), as a crashed device."""
        self.procs[worker].kill()
        self.procs[worker].wait()

    def _join(self, timeout: float) -> None:
        end = time.time() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, end - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._tmp.cleanup()


class RayPool(ExecutorPool):
    """Executors as Ray tasks, spread over the nodes of a cluster.

    Without ``address`` (and no Ray connection yet) the pool starts a local cluster on
    127.0.0.1 with no dashboard; with one it joins that cluster, checks its nodes
    (:func:`worker.launchers.ray_launcher.check_nodes`) and ships kofn's code to them.
    After the pool stops, :attr:`nodes` holds the node id each executor ran on.
    """

    def __init__(self, store: Store, emulations: list[Emulation], *, url: str,
                 keyring: object = None, poll_max: float = 0.02, start_timeout: float = 180.0,
                 num_cpus: int = 2, address: str | None = None):
        super().__init__(store, emulations, poll_max=poll_max, start_timeout=start_timeout)
        self.url, self.keyring, self.num_cpus, self.address = url, keyring, num_cpus, address
        self._owns_ray = False
        self.nodes: list[str | None] = []

    def _launch(self) -> None:
        import ray

        from worker.launchers.ray_launcher import check_nodes, runtime_env

        if not ray.is_initialized():
            if self.address is None:
                ray.init(address="local", include_dashboard=False, num_cpus=self.num_cpus,
                         log_to_driver=False, _node_ip_address="127.0.0.1",
                         runtime_env=runtime_env())
            else:
                ray.init(address=self.address, log_to_driver=False, runtime_env=runtime_env())
            self._owns_ray = True
        if self.address is not None:
            check_nodes()
        remote = ray.remote(num_cpus=0, max_retries=0, scheduling_strategy="SPREAD")(_ray_serve)
        key_json = None if self.keyring is None else self.keyring.to_json()
        self._refs = [remote.remote(self.url, i, emu.to_json(), self.pool, key_json,
                                    self.poll_max)
                      for i, emu in enumerate(self.emulations)]

    def _join(self, timeout: float) -> None:
        import ray

        done: set = set()
        try:
            ready, _ = ray.wait(self._refs, num_returns=len(self._refs), timeout=timeout)
            done = set(ready)
            self.nodes = [ray.get(ref)[1] if ref in done else None for ref in self._refs]
        finally:
            # Cancel only what is still running: a forced cancel of a task whose reply is
            # being processed can trip a fatal check in Ray's core worker and kill this
            # process (ray-project/ray#54846).
            from worker.launchers.ray_launcher import cancel_running

            cancel_running([ref for ref in self._refs if ref not in done])
            if self._owns_ray:
                ray.shutdown()


def _ray_serve(url: str, worker: int, emulation: str, pool: str, key_json: str | None,
               poll_max: float) -> tuple[int, str]:
    import ray

    from exchange.crypto import EncryptedStore, Keyring
    from exchange.stores.url import open_store

    store = open_store(url)
    if key_json is not None:
        store = EncryptedStore(store, Keyring.from_json(key_json))
    rc = serve(store, worker, Emulation.from_json(emulation), pool=pool, poll_max=poll_max)
    return rc, ray.get_runtime_context().get_node_id()
