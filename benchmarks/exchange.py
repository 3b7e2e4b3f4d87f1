"""Exchange benchmark: coded round latency per mode, one straggler, goodput against raw I/O.

    python -m benchmarks.exchange            # N=6, 10 MB and 100 MB, LocalStore and Ceph RGW
    python -m benchmarks.exchange --quick    # 10 MB, LocalStore only, one repetition
    python -m benchmarks.exchange --no-s3    # LocalStore only
    python -m benchmarks.exchange --modes secure secure+sealed --out exchange-sealed

Writes ``results/exchange/exchange.{json,md}`` for the full run (``--quick``:
``results/exchange-quick/``; a run with ``--modes``, ``--sizes``, ``--reps`` or ``--no-s3``:
``results/exchange-partial/``, or ``--out NAME``) and one progress line per case on stderr.
``secure+sealed`` is ``secure`` as ``kofn train`` runs it: every share sealed to its
aggregator, each worker process holding only its own private key.

Workers. ``N = 6`` worker *processes* (spawned once, reused by every case), each with its
own store client, as separate machines would be; a round starts on a barrier. Each worker
plays its two roles at once, as a worker that trains on its accelerator while a CPU thread
serves its aggregator slot: the *trainer* (publish its update) and the *aggregator*
(``Exchange.aggregate`` of its own slot, in a thread), then it collects the sum. Updates are
multiples of one random vector, so every worker checks its decoded sum against the exact
answer (``max_err``).

Stragglers. Worker ``N - 1`` is delayed by ``DELAY`` seconds in the role each mode's code
is built to tolerate (docs/exchange.md): its *trainer* in ``plain``, ``backup``,
``gradient`` and ``gradient+mds`` (in ``plain`` the delay cannot be hidden: the exact sum
needs every update), its *aggregator* in ``mds`` and ``secure`` (an exact sum over all
``N`` trainers cannot skip one, but any ``k`` / ``k + t`` merged shards decode).
The round time is when the last *non-straggling* worker holds the sum.

Goodput. ``bytes`` is every object byte the round's PUTs and GETs moved (CountingStore,
headers and markers included); goodput is ``bytes / round time``. The raw baseline moves
the same bytes with the same request pattern and parallelism and no protocol: each
worker PUTs objects of the sizes it wrote (its ``n`` contributions as one object, and one
merged shard), a barrier, then GETs what it read (its part of ``c`` workers' contribution
objects by ranged GET, and ``g`` merged shards, written by other workers), ``RoundConfig.threads`` at a time; on S3 with plain
boto3 ``put_object``/``get_object`` on the same server, locally with the store's
``put``/``get``. ``ratio = goodput / raw throughput``.

Traffic. Request counts and payload bytes are compared with docs/exchange.md's formulas
(no-straggler rounds; the formulas assume no failures and no takeovers).

Targets (the issue's acceptance): with the straggler, ``mds``, ``gradient`` and ``secure``
within 1.2x of their no-straggler time and ``plain`` at least ``DELAY`` slower; goodput at
least 0.5x raw.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks._common import machine_info, markdown_table, progress, write_results
from exchange.reduce import CodeSpec
from exchange.round import Exchange, RoundConfig, RoundStats
from exchange.stores.base import Store
from exchange.stores.counting import CountingStore
from exchange.stores.local import LocalStore

N = 6
DELAY = 2.0
THREADS = 8  # RoundConfig.threads, and the raw baseline's parallelism per worker
SLOW = N - 1
SLOW_ROLE = {"plain": "trainer", "backup": "trainer", "mds": "aggregator", "gradient": "trainer",
             "gradient+mds": "trainer", "secure": "aggregator", "secure+sealed": "aggregator"}
SEALED = frozenset({"secure+sealed"})  # cases whose shares are sealed per aggregator
TARGETS = {"mds": 1.2, "gradient": 1.2, "secure": 1.2,
           "secure+sealed": 1.2}  # straggler / no-straggler time
GOODPUT_TARGET = 0.5
_HEADER = 448  # about the bytes of a shard's prefix and JSON header
REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "scripts" / "s3-server"


def specs() -> dict[str, CodeSpec]:
    """The codes benchmarked at N=6 (each tolerates one slow worker)."""
    return {
        "plain": CodeSpec("plain", N),
        "backup": CodeSpec("backup", N, s=1),
        "mds": CodeSpec("mds", N, k=4),
        "gradient": CodeSpec("gradient", N, s=1),
        "gradient+mds": CodeSpec("gradient+mds", N, s=1, k=4),
        "secure": CodeSpec("secure", N, k=3, t=1),
        # what kofn train runs in secure mode: each share sealed to its aggregator
        # (X25519 + AES-GCM, exchange.share_keys.SealedShareStore); each worker holds only
        # its own private key
        "secure+sealed": CodeSpec("secure", N, k=3, t=1),
    }


# -- stores -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoreSpec:
    """Where a case's objects live: a LocalStore root, or an S3 bucket and key prefix."""

    kind: str
    location: str
    prefix: str = ""

    def open(self) -> Store:
        if self.kind == "local":
            return LocalStore(self.location)
        from exchange.stores.s3 import S3Store

        return S3Store(self.location, prefix=self.prefix)


def new_store_spec(kind: str, bucket: str) -> StoreSpec:
    if kind == "local":
        return StoreSpec("local", tempfile.mkdtemp(prefix="kofn-bench-"))
    return StoreSpec("s3", bucket, f"bench-{uuid.uuid4().hex[:12]}/")


def wipe(spec: StoreSpec) -> None:
    """Delete everything a case wrote (RGW's memstore keeps it in RAM otherwise)."""
    if spec.kind == "local":
        shutil.rmtree(spec.location, ignore_errors=True)
        return
    with spec.open() as store:
        store.delete(store.list(""))
    rgw_gc()


def rgw_gc() -> None:
    """Empty the local RGW's garbage queue, if this is the scripts/s3-server one.

    RGW deletes the tail of an object over 4 MiB lazily (after ``rgw_gc_obj_min_wait``, two
    hours by default), and the memstore OSD keeps it in RAM until then: 100 MB rounds
    would fill it within a few cases.
    """
    deps = Path(os.environ.get("KOFN_CEPH_DEPS", REPO / ".deps" / "ceph"))
    run = Path(os.environ.get("KOFN_CEPH_RUN", REPO / ".deps" / "ceph-run"))
    admin = deps / "usr" / "bin" / "radosgw-admin"
    if not admin.exists() or not (run / "ceph.conf").exists():
        return
    lib = deps / "usr" / "lib" / "x86_64-linux-gnu"
    paths = [lib, lib / "ceph", deps / "lib" / "x86_64-linux-gnu", lib / "ceph" / "compressor",
             lib / "ceph" / "crypto"]
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(map(str, paths)),
               CEPH_CONF=str(run / "ceph.conf"))
    subprocess.run([str(admin), "-n", "client.rgw", "gc", "process", "--include-all"], env=env,
                   capture_output=True, timeout=300, check=False)


# -- tasks, run inside the worker processes --------------------------------------------------

@dataclass(frozen=True)
class RoundTask:
    """One coded round of ``mode`` on ``length``-entry updates, straggler ``slow`` (-1: none)."""

    store: StoreSpec
    mode: str
    length: int
    job: str
    slow: int = -1
    keys: str = ""  # secure+sealed: every aggregator's key pair (AggregatorKeys JSON)

    def run(self, w: int, barrier, cache: dict) -> dict:
        spec = specs()[self.mode]
        base = _base(self.length, cache)
        update = base * _coefficient(spec, w)
        cfg = RoundConfig(job=self.job, code=spec, deadline_s=60.0, takeover_after_s=3.0,
                          keep_rounds=0, threads=THREADS)
        role = SLOW_ROLE[self.mode] if w == self.slow else ""
        inner = self.store.open()
        if self.keys:
            from exchange.share_keys import AggregatorKeys, SealedShareStore

            inner = SealedShareStore(inner, AggregatorKeys.from_json(self.keys).only(w))
        counting = CountingStore(inner)
        with counting, Exchange(counting, cfg) as ex:
            barrier.wait()
            start = time.monotonic()
            phases: list[RoundStats] = []
            agg = threading.Thread(target=_aggregate, args=(ex, w, role == "aggregator", phases))
            agg.start()
            if role == "trainer":
                time.sleep(DELAY)
            stats = ex.publish(0, w, update)
            agg.join()
            result = ex.collect(0)
            end = time.monotonic()
            for part in phases:
                stats = stats + part
            stats = stats + result.stats
        # the total covers the partials g_j of the contributors, or of all n partitions
        # when the code recovers the full sum from fewer (gradient codes)
        who = result.contributors
        covered = who if spec.n_terms(who) == len(who) else range(spec.n)
        want = float(sum(j + 1 for j in covered))
        sample = slice(0, None, max(1, self.length // 4096))
        err = float(np.max(np.abs(result.total[sample] - want * base[sample]), initial=0.0))
        return {"start": start, "end": end, "store": counting.stats.as_dict(),
                "phases": stats.as_dict(),
                "max_err": err, "contributors": list(result.contributors)}


def _aggregate(ex: Exchange, w: int, slow: bool, out: list[RoundStats]) -> None:
    if slow:
        time.sleep(DELAY)
    out.append(ex.aggregate(0, w))


def _base(length: int, cache: dict) -> np.ndarray:
    if cache.get("length") != length:
        cache.clear()
        cache["base"] = np.random.default_rng(12345).normal(size=length)
        cache["length"] = length
    return cache["base"]


def _coefficient(spec: CodeSpec, w: int) -> float:
    """Worker w's update is ``coefficient * base``: the combination ``f_w = sum_j c_j g_j``
    its code asks for (:meth:`~exchange.codes.base.Code.coefficients`) of the partials
    ``g_j = (j + 1) base`` of its partitions; ``(w + 1) base`` for the uncoded trainers."""
    return float(sum(c * (p + 1) for c, p in zip(spec.coefficients(w), spec.partitions(w), strict=True)))


@dataclass(frozen=True)
class RawTask:
    """The raw baseline: PUT objects of ``put_sizes``, barrier, GET ``get_plan`` objects.

    ``get_plan`` holds (owner offset, object index): worker ``w`` reads object ``i`` of worker
    ``(w + offset) % N``, or if ``i < 0`` part ``w`` (``part_size`` bytes from ``w *
    part_size``) of its object 0 with one ranged GET, as aggregator ``w`` reads its share
    of every worker's shares object.
    """

    store: StoreSpec
    put_sizes: tuple[int, ...]
    get_plan: tuple[tuple[int, int], ...]
    part_size: int = 0
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def run(self, w: int, barrier, cache: dict) -> dict:
        put, get, get_range = self._io()
        blobs = [_blob(size, cache) for size in self.put_sizes]

        def read(item: tuple[int, int]) -> bytes:
            off, i = item
            key = f"raw-{self.name}/{(w + off) % N}/{max(i, 0)}"
            return get(key) if i >= 0 else get_range(key, w * self.part_size, self.part_size)

        with cf.ThreadPoolExecutor(THREADS) as pool:
            barrier.wait()
            start = time.monotonic()
            list(pool.map(put, [f"raw-{self.name}/{w}/{i}" for i in range(len(blobs))], blobs))
            barrier.wait()
            got = sum(map(len, pool.map(read, self.get_plan)))
            end = time.monotonic()
        return {"start": start, "end": end, "bytes": sum(self.put_sizes) + got}

    def _io(self):
        if self.store.kind == "local":
            store = self.store.open()
            return (lambda k, b: store.put(k, b)), store.get, store.get_range
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "s3", config=Config(max_pool_connections=32, s3={"addressing_style": "path"},
                                request_checksum_calculation="when_required",
                                response_checksum_validation="when_required"))
        bucket, prefix = self.store.location, self.store.prefix

        def put(key: str, data: bytes) -> None:
            client.put_object(Bucket=bucket, Key=prefix + key, Body=data)

        def get(key: str) -> bytes:
            return client.get_object(Bucket=bucket, Key=prefix + key)["Body"].read()

        def get_range(key: str, start: int, length: int) -> bytes:
            return client.get_object(Bucket=bucket, Key=prefix + key,
                                     Range=f"bytes={start}-{start + length - 1}")["Body"].read()

        return put, get, get_range


def _blob(size: int, cache: dict) -> bytes:
    key = ("blob", size)
    if key not in cache:
        cache[key] = np.random.default_rng(size).bytes(size)
    return cache[key]


def _worker_main(w: int, tasks, results, barrier) -> None:
    cache: dict = {}
    while (task := tasks.get()) is not None:
        try:
            results.put((w, task.run(w, barrier, cache)))
        except BaseException as err:  # noqa: BLE001 - reported by the parent
            barrier.abort()
            results.put((w, f"{type(err).__name__}: {err}"))


class Workers:
    """``N`` spawned worker processes that run the same task together."""

    def __init__(self):
        ctx = mp.get_context("spawn")
        self.barrier = ctx.Barrier(N)
        self.results = ctx.Queue()
        self.tasks = [ctx.Queue() for _ in range(N)]
        self.procs = [ctx.Process(target=_worker_main, daemon=True,
                                  args=(w, self.tasks[w], self.results, self.barrier))
                      for w in range(N)]
        for proc in self.procs:
            proc.start()

    def run(self, task) -> list[dict]:
        for q in self.tasks:
            q.put(task)
        out: dict[int, dict] = {}
        errors = []
        for _ in range(N):
            w, res = self.results.get(timeout=600)
            if isinstance(res, str):
                errors.append(f"worker {w}: {res}")
            else:
                out[w] = res
        if errors:
            self.barrier.reset()
            raise RuntimeError("; ".join(errors))
        return [out[w] for w in range(N)]

    def close(self) -> None:
        for q in self.tasks:
            q.put(None)
        for proc in self.procs:
            proc.join(timeout=30)


# -- cases --------------------------------------------------------------------------------------

def formulas(spec: CodeSpec, length: int) -> dict[str, int]:
    """docs/exchange.md: requests and payload bytes of one round of N workers, no failures."""
    n = spec.n
    item = np.dtype(spec.share_dtype).itemsize
    payload = spec.share_length(length) * item
    member = spec.needs_consensus  # a members object per round
    c = spec.check_quorum(None)  # contributions each aggregator reads
    g = spec.merged_needed
    # per worker: its n shares as one object and its done marker; its merged shard (and the
    # members object where the code needs consensus on a quorum below n); the complete
    # marker, which a collector writes only if its HEAD misses: N PUTs when all collectors
    # race, the most this counts, 1 when they come one after another
    agree = member and c < n
    return {"puts": N * (2 + (2 if agree else 1) + 1),
            "gets": N * (c + g + 1) + (N - 1 if agree else 0),
            "payload_up": N * (n + 1) * payload, "payload_down": N * (c + g) * payload,
            "c": c, "g": g, "payload": payload}


def run_round(workers: Workers, kind: str, bucket: str, mode: str, length: int, slow: int) -> dict:
    store = new_store_spec(kind, bucket)
    try:
        keys = ""
        if mode in SEALED:
            from exchange.share_keys import AggregatorKeys

            keys = AggregatorKeys.generate(N).to_json()
        outs = workers.run(RoundTask(store, mode, length, f"b{uuid.uuid4().hex[:8]}", slow, keys))
    finally:
        wipe(store)
    start = min(o["start"] for o in outs)
    healthy = [o["end"] - start for w, o in enumerate(outs) if w != slow]
    totals = {name: sum(o["store"][name] for o in outs) for name in outs[0]["store"]}
    return {"round_s": max(healthy),
            "straggler_done_s": outs[slow]["end"] - start if slow >= 0 else None,
            "max_err": max(o["max_err"] for o in outs), "worker0": outs[0]["phases"], **totals}


def run_raw(workers: Workers, kind: str, bucket: str, spec: CodeSpec, length: int) -> dict:
    """The raw baseline for one round's object pattern (see the module docstring)."""
    f = formulas(spec, length)
    size = f["payload"] + _HEADER
    # worker w reads "its" contribution (object w) of c workers and the merged object of g
    plan = tuple((off, -1) for off in range(1, f["c"] + 1))
    plan += tuple((off, 1) for off in range(1, f["g"] + 1))
    store = new_store_spec(kind, bucket)
    try:
        outs = workers.run(RawTask(store, (spec.n * size, size), plan, part_size=size))
    finally:
        wipe(store)
    start = min(o["start"] for o in outs)
    return {"raw_s": max(o["end"] for o in outs) - start,
            "raw_bytes": sum(o["bytes"] for o in outs)}


def bench(workers: Workers, kind: str, bucket: str, sizes: list[float], reps: dict[float, int],
          modes: list[str]) -> list[dict]:
    """Every (mode, size, straggler) case on one store; medians over the repetitions."""
    rows = []
    t0 = time.monotonic()
    for size in sizes:
        length = int(size * 1e6 / 8)
        for mode in modes:
            spec = specs()[mode]
            if size == sizes[0]:  # warm-up, untimed: code objects, connections, the heap
                run_round(workers, kind, bucket, mode, min(length, int(10e6 / 8)), -1)
            row = {"store": kind, "mode": mode, "size_mb": size, "slow_role": SLOW_ROLE[mode],
                   "formula": formulas(spec, length)}
            runs: dict[str, list[dict]] = {"none": [], "straggler": []}
            raws = []
            for rep in range(reps[size]):  # alternate, so load drift hits all three alike
                raws.append(run_raw(workers, kind, bucket, spec, length))
                for label, slow in (("none", -1), ("straggler", SLOW)):
                    runs[label].append(run_round(workers, kind, bucket, mode, length, slow))
                    ph, last = runs[label][-1]["worker0"], runs[label][-1]
                    phases = " ".join(f"{k[:-2]} {ph[k]:.3f}" for k in ph if k.endswith("_s"))
                    progress(f"{kind} {mode} {size:g} MB {label} rep {rep + 1}/{reps[size]}: "
                             f"round {last['round_s']:.3f} s, max_err {last['max_err']:.1e}; "
                             f"worker 0 {phases}")
            for label, done in runs.items():
                times = [r["round_s"] for r in done]
                median = done[times.index(statistics.median_low(times))]
                row[label] = {**median, "round_s": statistics.median(times), "all_s": times}
            raw_s = statistics.median(r["raw_s"] for r in raws)
            moved = row["none"]["bytes_up"] + row["none"]["bytes_down"]
            row.update(raw_s=raw_s, raw_all_s=[r["raw_s"] for r in raws],
                       raw_bytes=raws[0]["raw_bytes"],
                       bytes_moved=moved, goodput_MBps=moved / row["none"]["round_s"] / 1e6,
                       raw_MBps=raws[0]["raw_bytes"] / raw_s / 1e6)
            row["goodput_ratio"] = row["goodput_MBps"] / row["raw_MBps"]
            progress(f"{kind} {mode} {size:g} MB: goodput {row['goodput_MBps']:.0f} MB/s, raw "
                     f"{row['raw_MBps']:.0f} MB/s ({row['goodput_ratio']:.2f}x); "
                     f"{time.monotonic() - t0:.0f} s on {kind} so far")
            rows.append(row)
    return rows


def verdicts(rows: list[dict]) -> list[str]:
    """One line per target: met or missed, by how much."""
    lines = []
    for r in rows:
        where = f"{r['store']} {r['mode']} {r['size_mb']:g} MB"
        base, slow = r["none"]["round_s"], r["straggler"]["round_s"]
        code = specs()[r["mode"]]
        if r["slow_role"] == "trainer" and code.contributions_needed == code.n:
            # no slack for trainers: the slow one must delay the round by its whole delay
            extra = slow - base
            lines.append(f"{where}: slow trainer adds {extra:.2f} s, {extra / DELAY:.0%} of the "
                         f"{DELAY:g} s delay ({'met' if extra >= DELAY else 'MISSED'}: target >= "
                         f"+{DELAY:g} s); its straggler round takes {slow:.2f} s, never less than "
                         f"the delay: {'yes' if slow >= DELAY else 'NO'} (the other workers' "
                         f"publishing and reading overlap the delay; no-straggler round "
                         f"{base:.2f} s; docs/exchange.md)")
        elif r["mode"] in TARGETS:
            ratio = slow / base
            lines.append(f"{where}: slow {r['slow_role']} {ratio:.2f}x "
                         f"({'met' if ratio <= TARGETS[r['mode']] else 'MISSED'}: target <= "
                         f"{TARGETS[r['mode']]:g}x)")
        if r["store"] != "s3":  # the target is against raw boto3; locally it is information
            lines.append(f"{where}: goodput {r['goodput_ratio']:.2f}x raw LocalStore put/get "
                         f"(no target: the target is against raw boto3 on S3)")
            continue
        ok = r["goodput_ratio"] >= GOODPUT_TARGET
        lines.append(f"{where}: goodput {r['goodput_ratio']:.2f}x raw boto3 "
                     f"({'met' if ok else 'MISSED'}: target >= {GOODPUT_TARGET:g}x)")
    return lines


def tables(rows: list[dict]) -> str:
    lat = markdown_table(
        ["store", "mode", "MB", "slow role", "round s", "with straggler s", "ratio", "extra s",
         "max err"],
        [[r["store"], r["mode"], r["size_mb"], r["slow_role"], r["none"]["round_s"],
          r["straggler"]["round_s"], r["straggler"]["round_s"] / r["none"]["round_s"],
          r["straggler"]["round_s"] - r["none"]["round_s"],
          max(r["none"]["max_err"], r["straggler"]["max_err"])] for r in rows])
    good = markdown_table(
        ["store", "mode", "MB", "bytes moved MB", "round s", "goodput MB/s", "raw s", "raw MB/s",
         "ratio"],
        [[r["store"], r["mode"], r["size_mb"], r["bytes_moved"] / 1e6, r["none"]["round_s"],
          r["goodput_MBps"], r["raw_s"], r["raw_MBps"], r["goodput_ratio"]] for r in rows])
    traffic = markdown_table(
        ["store", "mode", "MB", "PUT", "PUT formula", "GET", "GET formula", "LIST", "MB up",
         "payload up formula", "MB down", "payload down formula"],
        [[r["store"], r["mode"], r["size_mb"], r["none"]["puts"], r["formula"]["puts"],
          r["none"]["gets"], r["formula"]["gets"], r["none"]["lists"], r["none"]["bytes_up"] / 1e6,
          r["formula"]["payload_up"] / 1e6, r["none"]["bytes_down"] / 1e6,
          r["formula"]["payload_down"] / 1e6] for r in rows])
    return (f"## Round latency (median; straggler delayed {DELAY:g} s)\n\n{lat}\n\n"
            f"## Goodput against raw PUT/GET of the same bytes\n\n{good}\n\n"
            f"## Traffic of one no-straggler round (all {N} workers) against docs/exchange.md\n\n"
            f"{traffic}\n")


# -- the S3 server -------------------------------------------------------------------------------

def s3_setup(bucket: str) -> bool:
    """Point the AWS environment at the test RGW (starting it if needed); return True if started."""
    started = False
    if not os.environ.get("AWS_ENDPOINT_URL"):
        status = subprocess.run([str(SERVER), "status"], capture_output=True, check=False)
        if status.returncode != 0:
            progress("starting the S3 server (scripts/s3-server start)")
            subprocess.run([str(SERVER), "start"], check=True, timeout=900)
            started = True
        out = subprocess.run([str(SERVER), "env"], capture_output=True, text=True,
                             check=True).stdout
        for line in out.splitlines():
            if line.startswith("export ") and "=" in line:
                name, value = line[len("export "):].split("=", 1)
                os.environ[name] = value
    from exchange.stores.s3 import S3Store

    with S3Store(bucket) as store:
        store.create_bucket()
    return started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.exchange", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 MB, LocalStore, one repetition")
    s3 = parser.add_mutually_exclusive_group()
    s3.add_argument("--s3", dest="s3", action="store_true", default=None,
                    help="also run on S3 (the default without --quick)")
    s3.add_argument("--no-s3", dest="s3", action="store_false", help="LocalStore only")
    parser.add_argument("--sizes", type=float, nargs="+", help="update sizes in MB (10 100)")
    parser.add_argument("--modes", nargs="+", choices=list(specs()), help="modes (default: all)")
    parser.add_argument("--reps", type=int, help="repetitions per case (default 3; --quick 1)")
    parser.add_argument("--keep-s3", action="store_true",
                        help="leave an S3 server started here running")
    parser.add_argument("--out", metavar="NAME",
                        help="write results/NAME/ (default: exchange for the full run, exchange-quick "
                             "with --quick, exchange-partial with --modes, --sizes or --reps)")
    args = parser.parse_args(argv)
    if args.out is not None and not args.out.replace("-", "").replace("_", "").isalnum():
        parser.error(f"argument --out: a folder name of letters, digits, '-' and '_', not {args.out!r}")
    full = not (args.quick or args.modes or args.sizes or args.reps or args.s3 is False)
    out = args.out or ("exchange" if full else "exchange-quick" if args.quick else "exchange-partial")
    sizes = args.sizes or ([10.0] if args.quick else [10.0, 100.0])
    reps = {s: args.reps or (1 if args.quick else 3) for s in sizes}
    modes = args.modes or list(specs())
    use_s3 = (not args.quick) if args.s3 is None else args.s3
    bucket = os.environ.get("KOFN_S3_BUCKET", "kofn-bench")
    started = s3_setup(bucket) if use_s3 else False
    t0 = time.monotonic()
    workers = Workers()
    try:
        rows = bench(workers, "local", bucket, sizes, reps, modes)
        if use_s3:
            rows += bench(workers, "s3", bucket, sizes, reps, modes)
    finally:
        workers.close()
        if started and not args.keep_s3:
            subprocess.run([str(SERVER), "stop"], check=False, timeout=120)
    checks = verdicts(rows)
    command = sys.argv[1:] if argv is None else argv
    md = (f"# Exchange benchmark (N={N}, straggler delay {DELAY:g} s)\n\n"
          f"Command: `python -m benchmarks.exchange {' '.join(command)}`; "
          f"repetitions {reps}; "
          f"{time.monotonic() - t0:.0f} s in all.\n\n{tables(rows)}\n## Targets\n\n"
          + "\n".join(f"- {c}" for c in checks))
    print(md)
    # a quick or partial run never overwrites the full run's results
    folder = write_results(out, {"machine": machine_info(), "n": N, "delay_s": DELAY,
                                 "reps": reps, "rows": rows, "checks": checks}, md)
    progress(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
