"""One worker of a coded training job: the per-round loop, with straggler and fault injection.

Each round ``r`` a worker

1. trains locally from the model of round ``r - 1`` (``local_iters`` SGD steps on each
   partition it holds; under gradient coding it combines its ``s + 1`` partition deltas
   with :meth:`coding.gradient.GradientCode.coefficients`),
2. sleeps its injected delay (fixed, or shifted-exponential ``shift + Exp(rate)``) and may
   crash (exit status 3) with its injected probability,
3. publishes the delta of every floating tensor (BatchNorm statistics included) through
   :meth:`exchange.round.Exchange.publish`,
4. aggregates its own merged shard (:meth:`~exchange.round.Exchange.aggregate`),
5. collects the decoded sum (:meth:`~exchange.round.Exchange.collect`, which takes over
   missing aggregators after ``grace`` seconds), and applies the average.

A worker that starts late or was restarted after a crash rejoins at the latest complete
round: it loads the newest model checkpoint ``{job}/model/round-r`` and continues from
``r + 1``. Every random choice (local SGD order, delays, crashes) is drawn from
generators seeded with ``(seed, round, partition or worker, attempt)``, so runs repeat.

Run one worker with ``python -m worker.runner --store URL --job JOB --worker I``; the key
comes from ``--key-file`` or the ``--key-env`` variable (``KOFN_KEY``), never from the
command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from coding.errors import KofnError
from coding.validate import check_int
from exchange.errors import RoundBehindError, RoundTimeoutError
from exchange.stores.base import Store
from exchange.stores.counting import CountingStore
from worker.checkpoints import apply_update
from worker.config import RunConfig
from worker.faults import KillSwitch, WorkerCrash, crashes, is_dead, kills, straggle_delay
from worker.owner import NOT_OWNER_EXIT, NotOwnerError, Ownership
from worker.progress import phase_line
from worker.trigger import (
    JobManifest,
    checkpoint_key,
    encode_state,
    read_manifest,
    read_partition_samples,
    stats_key,
)

__all__ = ["CRASH_EXIT", "NOT_OWNER_EXIT", "NO_RESTART_EXITS", "PERMANENT_EXIT", "TIMEOUT_EXIT",
           "TRANSIENT_EXIT", "WorkerCrash", "exit_status", "WorkerSpec", "exchange_for", "main", "peak_rss_mb",
           "run_worker", "session_prefix", "straggle_delay"]

log = logging.getLogger(__name__)

#: Exit status of a permanent failure: a bad key, a corrupt partition, a bad config or
#: manifest. Restarting cannot help, so no launcher restarts it; the driver stops the job
#: and prints the cause the worker recorded.
PERMANENT_EXIT = 2
#: Exit status of an injected crash (the launcher restarts the worker).
CRASH_EXIT = 3
#: Exit status when a round timed out (the launcher restarts the worker).
TIMEOUT_EXIT = 4
#: Exit status when the store stayed unreachable past its retries (restarted).
TRANSIENT_EXIT = 6
#: Exit statuses a launcher never restarts (NOT_OWNER_EXIT: another process runs the index).
NO_RESTART_EXITS = frozenset({PERMANENT_EXIT, NOT_OWNER_EXIT})

# torch's random generator is process-wide: two workers training at once in one process
# (threads in tests, or an in-process launcher) would interleave their seeded draws and
# lose reproducibility. One worker per process never contends for this lock.
_TRAIN_LOCK = threading.Lock()


@dataclass(frozen=True)
class WorkerSpec:
    """How to start one worker: everything but the key, which comes from a file or env var.

    Parameters
    ----------
    store : str
        Store URL.
    job : str
        Job name.
    worker : int
        Worker index.
    attempt : int or None
        Restart count (seeds crash injection); ``None`` counts this worker's earlier
        sessions in the store (for launchers that cannot count, such as Lambda retries).
    encrypt : bool
        Whether the store is encrypted.
    key_file : str or None
        Key file; without it the key comes from ``key_env``.
    key_env : str
        Environment variable with the key.
    threads : int
        Torch intra-op threads.
    agg_key_file : str or None
        ``secure`` jobs: this worker's aggregator key file (:mod:`worker.sealing`); its
        shares to others are sealed to their public keys, and it opens only its own.
    """

    store: str
    job: str
    worker: int
    attempt: int | None = 0
    encrypt: bool = True
    key_file: str | None = None
    key_env: str = "KOFN_KEY"
    threads: int = 1
    agg_key_file: str | None = None

    def to_args(self) -> list[str]:
        """Command-line arguments of ``python -m worker.runner`` for this spec."""
        args = ["--store", self.store, "--job", self.job, "--worker", str(self.worker),
                "--key-env", self.key_env, "--threads", str(self.threads)]
        if self.attempt is not None:
            args += ["--attempt", str(self.attempt)]
        if not self.encrypt:
            args.append("--no-encrypt")
        if self.key_file:
            args += ["--key-file", self.key_file]
        if self.agg_key_file:
            args += ["--agg-key-file", self.agg_key_file]
        return args

    def to_event(self) -> dict[str, Any]:
        """A JSON-ready dict (the Lambda event / Ray task argument); optional fields that
        are unset are left out."""
        event = asdict(self)
        if event["agg_key_file"] is None:
            del event["agg_key_file"]
        return event

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> WorkerSpec:
        """Inverse of :meth:`to_event`; unknown fields are an error."""
        if not isinstance(event, dict):
            raise ValueError(f"Argument 'event' must be a JSON object, not {type(event).__name__}.")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(event) - known)
        if unknown:
            raise ValueError(f"Argument 'event' has unknown field(s) {unknown}.")
        return cls(**event)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (what Lambda's memory caps).

    Workers sharing one process (threads in tests) share this figure.
    """
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024.0


def session_prefix(job: str, worker: int) -> str:
    """Prefix of one worker's session records (one per start, crashes included)."""
    return f"{job}/sessions/worker-{worker:04d}/"


def exchange_for(cfg: RunConfig, store: Store, *, max_length: int | None = None) -> Any:
    """The job's :class:`exchange.round.Exchange` (objects under ``{job}/exchange/``);
    ``max_length`` is the manifest's ``update_elements`` limit."""
    from exchange.round import Exchange, RoundConfig

    rc = RoundConfig(job="exchange", prefix=cfg.job, code=cfg.code_spec(),
                     deadline_s=cfg.round_timeout, takeover_after_s=cfg.grace,
                     poll_min_s=0.01, poll_max_s=cfg.poll_max, quorum=cfg.quorum, threads=4,
                     max_length=max_length)
    return Exchange(store, rc)


def latest_checkpoint(store: Store, job: str, upto: int | None = None) -> int:
    """The newest round with a stored model (at most ``upto``); 0 is the initial model."""
    prefix = f"{job}/model/round-"
    rounds = [int(k[len(prefix):-len(".safetensors")]) for k in store.list(prefix)
              if k.endswith(".safetensors") and k[len(prefix):-len(".safetensors")].isdigit()]
    rounds = [r for r in rounds if upto is None or r <= upto]
    return max(rounds, default=0)


@dataclass
class _Round:
    """One round's record, written to ``stats_key(job, r, worker)`` as JSON."""

    worker: int
    round: int
    attempt: int
    loss: float = float("nan")
    compute_s: float = 0.0
    delay_s: float = 0.0
    upload_s: float = 0.0
    wait_s: float = 0.0
    download_s: float = 0.0
    decode_s: float = 0.0
    wall_s: float = 0.0
    contributors: list[int] = field(default_factory=list)
    aggregators: list[int] = field(default_factory=list)
    takeovers: int = 0
    puts: int = 0
    gets: int = 0
    lists: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    peak_rss_mb: float = 0.0


class _Worker:
    """State of one running worker (model, data, exchange)."""

    def __init__(self, spec: WorkerSpec, store: CountingStore, manifest: JobManifest, attempt: int):
        import torch

        from worker.local_train import LocalTrainer

        self.spec, self.store, self.manifest, self.attempt = spec, store, manifest, attempt
        self.cfg = cfg = manifest.config
        self.worker = spec.worker
        torch.set_num_threads(spec.threads)
        self.parts = manifest.assignment[self.worker]
        self.data = {p: read_partition_samples(store, manifest, p) for p in self.parts}
        # Building a model reseeds torch's process-wide generator; under the lock it cannot
        # disturb another in-process worker's seeded training step.
        with _TRAIN_LOCK:
            self.trainer = LocalTrainer(cfg.model, lr=cfg.lr, momentum=cfg.momentum,
                                        weight_decay=cfg.weight_decay,
                                        local_iters=cfg.local_iters,
                                        batch_size=cfg.batch_size, seed=cfg.seed,
                                        min_size=cfg.min_size, max_size=cfg.max_size)
        self.kill_switch = (KillSwitch(store, self.worker)
                            if any(x.kind == "kill" and x.applies_to(self.worker) for x in cfg.straggle)
                            else None)
        self.exchange = exchange_for(cfg, self.kill_switch or store,
                                     max_length=manifest.limits.get("update_elements"))
        self.coefficients = self._coefficients()
        self._duty = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kofn-agg-{spec.worker}")

    def _coefficients(self) -> list[float]:
        coefficients = list(self.cfg.code_spec().coefficients(self.worker))
        if len(coefficients) != len(self.parts):
            raise KofnError(f"Worker {self.worker} holds {len(self.parts)} partitions but its code "
                            f"gives {len(coefficients)} coefficients; the manifest is broken.")
        return coefficients

    def load(self, r: int) -> dict[str, np.ndarray]:
        """The model after round ``r``, from its checkpoint (rebuilt if it is damaged)."""
        from worker.checkpoints import load_checkpoint
        from worker.trigger import initial_state

        return load_checkpoint(self.store, self.cfg.job, r, exchange=self.exchange,
                               initial=lambda: initial_state(self.cfg))

    def train(self, state: dict[str, np.ndarray], r: int) -> tuple[dict[str, np.ndarray], float]:
        """The worker's update: its (coded combination of) partition deltas, and mean loss.

        Each partition trains with the seed ``(seed, r, partition)``, so a partition gives
        the same delta on whichever worker holds it (gradient coding relies on that).
        """
        total: dict[str, np.ndarray] | None = None
        losses = []
        steps = self.trainer.local_iters * len(self.parts)
        last = [0.0]

        def on_step(i: int, _n: int, loss: float, offset: int) -> None:
            now = time.monotonic()  # one line per half second at most, and the last step
            if now - last[0] >= 0.5 or offset + i == steps:
                last[0] = now
                log.info(phase_line(r, self.cfg.rounds, "training", step=offset + i, steps=steps,
                                    detail=f"loss {loss:.4f}"))

        for i, (p, coef) in enumerate(zip(self.parts, self.coefficients, strict=True)):
            offset = i * self.trainer.local_iters
            with _TRAIN_LOCK:
                res = self.trainer.train(state, self.data[p], round_index=r, partition=p,
                                         on_step=lambda j, n, v, o=offset: on_step(j, n, v, o))
            losses.append(res.mean_loss)
            if total is None and len(self.parts) == 1 and coef == 1.0:
                total = dict(res.delta)  # in the tensors' own dtypes: float32 stays float32
            elif total is None:
                total = {k: coef * np.asarray(v, dtype=np.float64) for k, v in res.delta.items()}
            else:
                for k, v in res.delta.items():
                    total[k] += coef * np.asarray(v, dtype=np.float64)
        if total is None:
            raise KofnError(f"Worker {self.worker} holds no partitions; the manifest is broken.")
        return total, float(np.mean(losses))

    def round(self, state: dict[str, np.ndarray], r: int
              ) -> tuple[dict[str, np.ndarray], _Round, dict[str, np.ndarray]]:
        cfg, w = self.cfg, self.worker
        rec = _Round(worker=w, round=r, attempt=self.attempt)
        before = self.store.stats.snapshot()
        t_start = time.perf_counter()
        update, rec.loss = self.train(state, r)
        rec.delay_s = straggle_delay(cfg, w, r)
        if rec.delay_s > 0:
            log.info(phase_line(r, cfg.rounds, "straggling", detail=f"{rec.delay_s:.1f} s (injected)"))
        time.sleep(rec.delay_s)
        rec.compute_s = time.perf_counter() - t_start
        if crashes(cfg, w, r, self.attempt):
            raise WorkerCrash(f"worker {w} crashed (injected) in round {r}, attempt {self.attempt}")
        log.info(phase_line(r, cfg.rounds, "uploading"))
        if self.kill_switch is not None:
            self.kill_switch.armed = kills(cfg, w, r, self.attempt)
        stats = self.exchange.publish(r, w, update)
        # Aggregating shard w is a duty to the others, not a step of this worker's own
        # round: it runs beside collect, so a slow aggregator (what MDS codes tolerate)
        # does not hold back its own trainer, which would make it a slow trainer next round.
        hold = straggle_delay(cfg, w, r, role="aggregator")
        rec.delay_s += hold
        duty = self._duty.submit(self._aggregate, r, hold)
        code = cfg.code_spec()
        log.info(phase_line(r, cfg.rounds, "waiting",
                            detail=f"for {code.merged_needed} of {cfg.workers} merged shards"))
        result = self.exchange.collect(r)
        stats = stats + result.stats
        if duty.done() and duty.result() is not None:
            stats = stats + duty.result()
        t_apply = time.perf_counter()
        mean = result.mean
        from exchange.layout import unflatten

        delta = unflatten(mean, result.layout, cast=False)  # float64, whatever the wire carried
        new_state = apply_update(state, delta)
        rec.compute_s += time.perf_counter() - t_apply
        rec.upload_s, rec.wait_s, rec.download_s = stats.upload_s, stats.wait_s, stats.download_s
        rec.decode_s = stats.encode_s + stats.reduce_s + stats.decode_s
        rec.contributors = list(result.contributors)
        rec.aggregators = list(result.aggregators)
        rec.takeovers = stats.takeovers
        self._checkpoint(r, new_state)
        used = self.store.stats - before
        rec.puts, rec.gets, rec.lists = used.puts + 1, used.gets, used.lists  # +1: this record
        rec.bytes_up, rec.bytes_down = used.bytes_up, used.bytes_down
        rec.wall_s = time.perf_counter() - t_start
        rec.peak_rss_mb = peak_rss_mb()
        self.store.put(stats_key(cfg.job, r, w), json.dumps(asdict(rec)).encode())
        log.info(phase_line(r, cfg.rounds, "done", detail=f"in {rec.wall_s:.2f} s, loss {rec.loss:.4f}, "
                            f"workers {','.join(map(str, rec.contributors))}"))
        return new_state, rec, delta

    def _aggregate(self, r: int, hold: float) -> Any:
        """This worker's aggregation duty for round ``r`` (after an injected ``hold``)."""
        time.sleep(hold)
        try:
            return self.exchange.aggregate(r, self.worker)
        except (KofnError, FileNotFoundError) as err:  # decoded around, or taken over
            log.warning("round %d worker %d: own aggregation failed: %s", r, self.worker, err)
            return None

    def close(self) -> None:
        """Finish the aggregation duty still running, then release the exchange."""
        self._duty.shutdown(wait=True)
        self.exchange.close()

    def _checkpoint(self, r: int, state: dict[str, np.ndarray]) -> None:
        key = checkpoint_key(self.cfg.job, r)
        if self.store.exists(key):
            return
        try:
            self.store.put(key, encode_state(state), if_absent=True)
        except FileExistsError:
            pass


def run_worker(
    spec: WorkerSpec,
    *,
    store: Store | None = None,
    on_round: Callable[[dict[str, Any], dict[str, np.ndarray]], None] | None = None,
    stop_before: Callable[[int, list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Run one worker to the end of its job.

    Parameters
    ----------
    spec : WorkerSpec
        Which job and worker.
    store : Store, optional
        The job's (decrypting) store; opened from ``spec`` when not given.
    on_round : callable, optional
        Called as ``on_round(record, average)`` after each round, with the round's record
        and the decoded average update (float64 arrays by tensor name).
    stop_before : callable, optional
        Asked ``stop_before(r, records)`` at each round boundary (the model of round
        ``r - 1`` is checkpointed); True ends this session there with the outcome
        ``"continued"``, and a later session of the worker starts at round ``r``. The
        Lambda handler stops before its invocation's time runs out.

    Returns
    -------
    list of dict
        The records of the rounds this session ran.

    Raises
    ------
    WorkerCrash
        An injected crash fired.
    exchange.errors.RoundTimeoutError
        A round did not complete within ``round_timeout``.
    """
    check_int("worker", spec.worker, low=0)
    inner = store if store is not None else _open(spec)
    counting = CountingStore(inner)
    t0 = time.perf_counter()
    manifest = read_manifest(counting, spec.job)
    cfg = manifest.config
    check_int("worker", spec.worker, low=0, high=cfg.workers - 1, high_name="n-1")
    # Launchers that cannot count attempts (Lambda retries, --resume) count the sessions
    # recorded so far and the claims made (an orphan still running has no record yet).
    attempt = spec.attempt if spec.attempt is not None else max(
        len(counting.list(session_prefix(spec.job, spec.worker))),
        Ownership.last_attempt(counting, cfg.job, spec.worker) + 1)
    records: list[dict[str, Any]] = []
    outcome = "done"
    try:
        if is_dead(cfg, spec.worker):
            outcome = "dead"
            return records
        owner = Ownership.claim(counting, cfg.job, spec.worker, attempt)
        if cfg.task is not None:  # a user's task: the session's loop (worker/tasks/runtime.py)
            from worker.tasks.runtime import run_task_worker

            records.extend(run_task_worker(spec, counting, manifest, attempt, owner=owner))
            return records
        log.info(phase_line(0, cfg.rounds, "starting", detail=f"attempt {attempt}: reading "
                            f"partitions {list(manifest.assignment[spec.worker])}, building {cfg.model}"))
        w = _Worker(spec, counting, manifest, attempt)
        log.info(phase_line(0, cfg.rounds, "ready", detail=f"in {time.perf_counter() - t0:.1f} s"))
        try:
            done = w.exchange.latest_complete_round() or 0
            start = latest_checkpoint(counting, cfg.job, upto=done)
            state = w.load(start)
            r = start + 1
            while r <= cfg.rounds:
                skip_to = _catch_up(w, counting, cfg.job, r)
                if skip_to is not None:
                    # The others finished round r (and maybe later ones) without this
                    # worker: its update is no longer needed, and the round's objects may
                    # already be deleted. Rejoin from the newest complete checkpoint.
                    log.info("worker %d is behind: skipping rounds %d..%d", spec.worker, r,
                             skip_to)
                    state = w.load(skip_to)
                    r = skip_to + 1
                    continue
                if records and stop_before is not None and stop_before(r, records):
                    outcome = "continued"
                    break
                owner.check(r)
                try:
                    state, rec, delta = w.round(state, r)
                except RoundBehindError as err:  # finished and cleaned up while it waited
                    ck = latest_checkpoint(counting, cfg.job, upto=err.latest)
                    if ck < r:
                        raise
                    log.info("worker %d is behind: round %d finished without it; rejoining "
                             "after round %d", spec.worker, r, ck)
                    state = w.load(ck)
                    r = ck + 1
                    continue
                records.append(asdict(rec))
                if on_round is not None:
                    on_round(records[-1], delta)
                r += 1
        finally:
            w.close()
    except WorkerCrash:
        outcome = "crash"
        raise
    except RoundTimeoutError:
        outcome = "timeout"
        raise
    except NotOwnerError:
        outcome = "not owner"
        raise
    except BaseException as err:
        outcome = f"error: {one_line(err)}"
        raise
    finally:
        _write_session(counting, spec, attempt, outcome, time.perf_counter() - t0, len(records))
    return records


def _catch_up(w: _Worker, store: Store, job: str, r: int) -> int | None:
    """The newest complete round with a checkpoint, if round ``r`` is already behind it."""
    if not w.exchange.is_complete(r):  # one HEAD; the LIST below only when behind
        return None
    done = w.exchange.latest_complete_round() or 0
    if done < r:
        return None
    ck = latest_checkpoint(store, job, upto=done)
    return ck if ck >= r else None


def _write_session(store: CountingStore, spec: WorkerSpec, attempt: int, outcome: str,
                   wall_s: float, rounds: int) -> None:
    stats = store.stats
    record = {"worker": spec.worker, "attempt": attempt, "outcome": outcome, "wall_s": wall_s,
              "rounds": rounds, "puts": stats.puts + 1, "gets": stats.gets, "lists": stats.lists,
              "peak_rss_mb": peak_rss_mb()}
    key = f"{session_prefix(spec.job, spec.worker)}attempt-{attempt:03d}.json"
    try:
        store.put(key, json.dumps(record).encode())
    except OSError as err:  # the session record is for the cost report only
        log.warning("cannot write session record %s: %s", key, err)


def _open(spec: WorkerSpec) -> Store:
    from exchange.stores.url import open_store

    store = open_store(spec.store)
    if spec.encrypt:
        from exchange.crypto import EncryptedStore

        cfg = RunConfig(key_file=spec.key_file, key_env=spec.key_env)
        store = EncryptedStore(store, cfg.load_keyring())
    if spec.agg_key_file:
        from worker.sealing import sealed_store

        store = sealed_store(store, spec.agg_key_file, spec.worker)
    return store


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m worker.runner``."""
    p = argparse.ArgumentParser(prog="python -m worker.runner", description="Run one kofn worker.")
    p.add_argument("--store", required=True, help="store URL, file://PATH or s3://BUCKET")
    p.add_argument("--job", required=True)
    p.add_argument("--worker", type=int, required=True)
    p.add_argument("--attempt", type=int, default=None)
    p.add_argument("--no-encrypt", action="store_true")
    p.add_argument("--key-file", default=None)
    p.add_argument("--key-env", default="KOFN_KEY")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--agg-key-file", default=None, help="secure jobs: this worker's aggregator key file")
    return p


def one_line(err: BaseException) -> str:
    """An exception as the one line a user sees: its message, else its class name."""
    text = " ".join(str(err).split())
    return text[:500] if text else type(err).__name__


def exit_status(err: BaseException) -> int:
    """The exit status for a worker that stopped on ``err``: restartable or not.

    Transient (restarted): an injected crash (3), a round timeout (4), a store that stayed
    unreachable past its retries (6). Permanent (2, never restarted): anything else kofn
    raises about the job itself, such as a key that does not decrypt, a corrupt partition,
    a bad manifest or config. 5: another process owns this worker index.
    """
    if isinstance(err, WorkerCrash):
        return CRASH_EXIT
    if isinstance(err, RoundTimeoutError):
        return TIMEOUT_EXIT
    if isinstance(err, NotOwnerError):
        return NOT_OWNER_EXIT
    if isinstance(err, (ConnectionError, TimeoutError)):
        return TRANSIENT_EXIT
    return PERMANENT_EXIT


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the exit status says whether a restart can help (:func:`exit_status`)."""
    import worker.faults

    args = build_parser().parse_args(argv)
    worker.faults.OWN_PROCESS = True
    # INFO by default: a worker's log (its launcher's log file) holds its phase lines,
    # which the driver's live view follows (worker.progress).
    logging.basicConfig(level=os.environ.get("KOFN_LOG", "INFO"),
                        format=f"worker {args.worker}: %(levelname)s %(message)s")
    spec = WorkerSpec(store=args.store, job=args.job, worker=args.worker, attempt=args.attempt,
                      encrypt=not args.no_encrypt, key_file=args.key_file, key_env=args.key_env,
                      threads=args.threads, agg_key_file=args.agg_key_file)
    try:
        run_worker(spec)
    except (KofnError, ValueError, OSError) as err:
        print(f"kofn worker {args.worker}: error: {one_line(err)}", file=sys.stderr)
        return exit_status(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
