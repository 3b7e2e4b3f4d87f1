"""Generic matmul task executors: fetch a subtask, compute, upload the result.

An executor is a long-lived worker that talks to the master only through the store. It
polls ``matmul/manifest/`` (exponential backoff) for new jobs, runs the subtasks a job
assigns to it, and uploads each product as a self-describing shard
(:mod:`exchange.shards`). Before computing, while emulating a delay and before uploading it
checks the job's ``done`` marker, so a task that was already decoded is dropped.

Store layout of one job ``J`` (every object encrypted when the store is an
:class:`~exchange.crypto.EncryptedStore`)::

    matmul/manifest/J             JSON: code, shape, tasks [{index, worker, a, b}], t0,
                                  and optional per-subtask emulations
    matmul/job/J/in/a/<i>         shard: left operand of subtask i
    matmul/job/J/in/b/<i|shared>  shard: right operand (one shared object for row codes)
    matmul/job/J/out/<i>          shard: worker product of subtask i (kind "contrib")
    matmul/job/J/result           shard: the decoded product (kind "merged")
    matmul/job/J/done             marker: decoded, executors stop working on J

Heterogeneous workers are emulated on one machine with :class:`Emulation`: a speed factor
stretches the real compute time, and a shifted-exponential delay (the law
:meth:`offload.model.Instance.completion_params` gives) pads the finish time measured from
the job's start. An executor has its own emulation, but a job's manifest may carry one per
subtask (``emulations``, subtask index -> :class:`Emulation`) that replaces it for that
subtask only: one long-lived executor can then play a different device in every job
(:mod:`worker.matmul.experiment` runs hundreds of jobs on one pool that way).

Run one executor with ``python -m worker.matmul.executor --store URL --worker I``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from coding.validate import check_int, check_real
from exchange.errors import CorruptShardError, DecryptionError
from exchange.shards import ShardHeader, pack_shard, unpack_shard
from exchange.stores.base import Store
from worker.matmul.codes import worker_product

__all__ = ["Backoff", "Emulation", "Manifest", "TaskStatus", "keys", "read_manifest",
           "run_task", "serve", "main"]

ROOT = "matmul"
MANIFEST_FORMAT = "kofn-matmul-job/1"


class keys:  # noqa: N801 - a namespace of key builders
    """Object keys of the matmul store layout (see the module docstring)."""

    manifests = f"{ROOT}/manifest/"

    @staticmethod
    def manifest(job: str) -> str:
        return f"{ROOT}/manifest/{job}"

    @staticmethod
    def input(job: str, role: str, i: int | str) -> str:
        return f"{ROOT}/job/{job}/in/{role}/{i}"

    @staticmethod
    def results(job: str) -> str:
        return f"{ROOT}/job/{job}/out/"

    @staticmethod
    def result(job: str, i: int) -> str:
        return f"{ROOT}/job/{job}/out/{i:05d}"

    @staticmethod
    def done(job: str) -> str:
        return f"{ROOT}/job/{job}/done"

    @staticmethod
    def final(job: str) -> str:
        return f"{ROOT}/job/{job}/result"

    @staticmethod
    def ready(pool: str, worker: int) -> str:
        return f"{ROOT}/pool/{pool}/ready/{worker}"

    @staticmethod
    def stop(pool: str) -> str:
        return f"{ROOT}/pool/{pool}/stop"


class Backoff:
    """Exponential backoff between ``low`` and ``high`` seconds (doubling each wait)."""

    def __init__(self, low: float = 0.001, high: float = 0.05):
        self.low = check_real("low", low, low=0.0, low_open=True)
        self.high = check_real("high", high, low=self.low)
        self._next = self.low

    def reset(self) -> None:
        self._next = self.low

    def wait(self) -> None:
        time.sleep(self._next)
        self._next = min(self.high, self._next * 2)


@dataclass(frozen=True)
class Emulation:
    """How one executor emulates a slower, straggling or faulty device.

    Parameters
    ----------
    speed : float
        Speed factor in (0, 1]: after a real compute of ``c`` seconds the executor sleeps
        ``c * (1/speed - 1)`` more, so it runs ``1/speed`` times slower.
    delay : float
        Fixed extra seconds before uploading (a stall).
    shift, rate : float
        Shifted-exponential finish time measured from the job's start ``t0``: the result
        is not uploaded before ``t0 + shift + Exp(rate)`` (``rate = 0``: no tail). With an
        offload instance, ``shift = scale * (t_i + C/f_i)`` and ``rate = mu_i f_i / C /
        scale`` (``scale`` is the time scale, see :mod:`worker.matmul.experiment`).
    dead : bool
        Never upload anything (a killed worker).
    drop : float
        Probability of silently dropping each subtask (a crash before the upload).
    corrupt : bool
        Flip one payload byte after packing, so the checksum fails at the master.
    seed : int
        Seed of the exponential draws.
    """

    speed: float = 1.0
    delay: float = 0.0
    shift: float = 0.0
    rate: float = 0.0
    dead: bool = False
    drop: float = 0.0
    corrupt: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_real("speed", self.speed, low=0.0, high=1.0, low_open=True)
        check_real("delay", self.delay, low=0.0)
        check_real("shift", self.shift, low=0.0)
        check_real("rate", self.rate, low=0.0)
        check_real("drop", self.drop, low=0.0, high=1.0)
        check_int("seed", self.seed, low=0)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Emulation:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"Argument 'emulation' must be a JSON object, not {text!r}.")
        return cls(**data)


@dataclass(frozen=True)
class Manifest:
    """A job as the executors see it (parsed from JSON, never unpickled)."""

    job: str
    code: dict
    p: int | None
    shape: tuple[int, int]
    tasks: tuple[dict, ...]
    t0: float
    #: Injected stalls, executor id -> extra seconds (benchmarks and tests; normally empty).
    delays: dict = field(default_factory=dict)
    #: Subtask index -> :class:`Emulation` its executor runs it under (instead of its own).
    emulations: dict = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps({"format": MANIFEST_FORMAT, "job": self.job, "code": self.code,
                           "p": self.p, "shape": list(self.shape), "tasks": list(self.tasks),
                           "t0": self.t0,
                           "delays": {str(k): v for k, v in self.delays.items()},
                           "emulations": {str(k): asdict(v)
                                          for k, v in self.emulations.items()}}).encode()

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> Manifest:
        try:
            obj = json.loads(bytes(data))
            if obj.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {obj.get('format')!r}")
            tasks = tuple({"index": int(t["index"]), "worker": int(t["worker"]),
                           "a": str(t["a"]), "b": str(t["b"])} for t in obj["tasks"])
            p = None if obj["p"] is None else int(obj["p"])
            delays = {int(k): float(v) for k, v in obj.get("delays", {}).items()}
            emus = {int(k): Emulation(**v) for k, v in obj.get("emulations", {}).items()}
            return cls(str(obj["job"]), dict(obj["code"]), p,
                       (int(obj["shape"][0]), int(obj["shape"][1])), tasks, float(obj["t0"]),
                       delays, emus)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise CorruptShardError(key, f"malformed job manifest ({err})") from None


def read_manifest(store: Store, key: str) -> Manifest:
    """Read and parse one job manifest."""
    return Manifest.from_bytes(store.get(key), key)


class TaskStatus:
    """What :func:`run_task` did with a subtask."""

    UPLOADED = "uploaded"
    SKIPPED = "skipped"  # the job was decoded before the task started
    LATE = "late"  # the job was decoded while the task ran; result dropped
    DEAD = "dead"  # emulated dead worker
    FAILED = "failed"  # inputs unreadable


def _sleep_unless_done(store: Store, job: str, until: float, slice_s: float = 0.05) -> bool:
    """Sleep until wall time ``until``; return False early if the job gets decoded."""
    while True:
        left = until - time.time()
        if left <= 0:
            return True
        time.sleep(min(left, slice_s))
        if left > slice_s and store.exists(keys.done(job)):
            return False


def _fetch(store: Store, manifest: Manifest, task: dict, role: str) -> np.ndarray:
    key = task[role]
    expect = {"job": manifest.job, "code": manifest.code}
    return unpack_shard(store.get(key), key=key, expect=expect).payload


def run_task(store: Store, manifest: Manifest, task: dict, worker: int,
             emulation: Emulation = Emulation(), *, rng: np.random.Generator | None = None,
             log: Callable[[str], None] = lambda s: None) -> str:
    """Run one subtask: fetch, compute, emulate, upload the result shard.

    Returns
    -------
    str
        One of the :class:`TaskStatus` values.
    """
    job, index = manifest.job, task["index"]
    if emulation.dead:
        return TaskStatus.DEAD
    if store.exists(keys.done(job)):
        return TaskStatus.SKIPPED
    if rng is None:  # a fresh draw per job and subtask, reproducible from the seed
        rng = np.random.default_rng([emulation.seed, index, zlib.crc32(job.encode())])
    try:
        a = _fetch(store, manifest, task, "a")
        b = _fetch(store, manifest, task, "b")
    except (CorruptShardError, DecryptionError, FileNotFoundError) as err:
        log(f"worker {worker}: job {job} task {index}: unreadable input ({err})")
        return TaskStatus.FAILED
    if emulation.drop > 0 and rng.random() < emulation.drop:
        return TaskStatus.DEAD
    start = time.time()
    product = worker_product(a, b, manifest.p)
    compute = time.time() - start
    stall = emulation.delay + manifest.delays.get(worker, 0.0)
    until = time.time() + compute * (1.0 / emulation.speed - 1.0) + stall
    if emulation.shift > 0 or emulation.rate > 0:
        tail = rng.exponential(1.0 / emulation.rate) if emulation.rate > 0 else 0.0
        until = max(until, manifest.t0 + emulation.shift + tail)
    if not _sleep_unless_done(store, job, until) or store.exists(keys.done(job)):
        return TaskStatus.LATE
    header = ShardHeader(kind="contrib", job=job, round=0, index=index, worker=worker,
                         code=manifest.code, contributors=(worker,))
    blob = pack_shard(header, product)
    if emulation.corrupt:
        blob = blob[:-1] + bytes([blob[-1] ^ 0xFF])
    store.put(keys.result(job, index), blob)
    log(f"worker {worker}: job {job} task {index}: uploaded after {compute:.4f} s compute")
    return TaskStatus.UPLOADED


def serve(store: Store, worker: int, emulation: Emulation = Emulation(), *, pool: str = "",
          poll_max: float = 0.02, idle_timeout: float = 600.0, max_age: float = 3600.0,
          log: Callable[[str], None] = lambda s: None) -> int:
    """Serve jobs until the pool's stop marker appears or ``idle_timeout`` passes idle.

    Announces itself with ``matmul/pool/<pool>/ready/<worker>`` first, so a launcher can
    wait for every executor before publishing a job (process start-up then stays out of
    the measured time to result); the marker holds ``{"pid": ...}``, the executor's process
    id. Jobs older than ``max_age`` seconds are ignored. A subtask the manifest gives an
    emulation of its own runs under that one instead of ``emulation``.

    Returns
    -------
    int
        Number of subtasks whose results it uploaded.
    """
    worker = check_int("worker", worker, low=0)
    started = time.time()
    parent = os.getppid()
    seen: set[str] = set()
    uploaded, last_work = 0, time.time()
    backoff = Backoff(0.001, poll_max)
    if pool:
        store.put(keys.ready(pool, worker), json.dumps({"pid": os.getpid()}).encode())
    while True:
        if pool and store.exists(keys.stop(pool)):
            return uploaded
        if time.time() - last_work > idle_timeout or os.getppid() != parent:
            return uploaded
        new = [k for k in store.list(keys.manifests) if k not in seen]
        for key in new:
            seen.add(key)
            try:
                manifest = read_manifest(store, key)
            except (CorruptShardError, DecryptionError, FileNotFoundError) as err:
                log(f"worker {worker}: skipping job {key}: {err}")
                continue
            if manifest.t0 < started - max_age:
                continue
            for task in manifest.tasks:
                if task["worker"] == worker:
                    emu = manifest.emulations.get(task["index"], emulation)
                    status = run_task(store, manifest, task, worker, emu, log=log)
                    uploaded += status == TaskStatus.UPLOADED
            last_work = time.time()
        if new:
            backoff.reset()
        else:
            backoff.wait()


def _open(url: str, encrypt: bool) -> Store:
    from exchange.stores.url import open_store

    store = open_store(url)
    if encrypt:
        from exchange.crypto import EncryptedStore, Keyring

        store = EncryptedStore(store, Keyring.from_env())
    return store


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m worker.matmul.executor``."""
    ap = argparse.ArgumentParser(prog="python -m worker.matmul.executor",
                                 description="Run one matmul task executor.")
    ap.add_argument("--store", required=True, help="store URL or path")
    ap.add_argument("--worker", type=int, required=True, help="this executor's worker id")
    ap.add_argument("--pool", default="", help="pool id (ready/stop markers)")
    ap.add_argument("--emulation", default="{}", help="Emulation as JSON")
    ap.add_argument("--no-encrypt", action="store_true",
                    help="plain store (default: encrypted, key from KOFN_KEY/KOFN_KEY_FILE)")
    ap.add_argument("--poll-max", type=float, default=0.02)
    ap.add_argument("--idle-timeout", type=float, default=600.0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.verbose else (lambda s: None)
    store = _open(args.store, not args.no_encrypt)
    serve(store, args.worker, Emulation.from_json(args.emulation), pool=args.pool,
          poll_max=args.poll_max, idle_timeout=args.idle_timeout, log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())

