"""Offload placements run for real: predicted against measured, over repeated runs.

An offload instance (:mod:`offload.model`) describes a master, ``W`` straggling workers and
an ``(N, K)`` MDS-coded task. A policy (``igp``, ``rop``, ``aop``, ``lcp``, ``exact``)
places ``m`` coded subtasks on the master and one on each of ``N - m`` chosen workers. This
module runs such a placement as a real matmul job through the store
(:func:`worker.matmul.jobs.run_master`):

* subtasks ``0..m-1`` are the master's own: it **really computes** them, one after the
  other in a thread, and local subtask ``j`` (1-based) is ready no earlier than
  ``j * C / f_m`` (scaled), the model's local finish time;
* subtask ``m + r`` goes to executor ``r`` of an :class:`~worker.matmul.jobs.ExecutorPool`
  (``LocalPool``: OS processes, ``RayPool``: Ray tasks, ``ThreadPool``: threads), the same
  launchers as coded matmul jobs. The pool is started **once per experiment** and its
  executors poll the store for jobs (:func:`worker.matmul.executor.serve`), serving every
  run. Which worker an executor plays in a run travels with the job: the manifest carries
  an :class:`~worker.matmul.executor.Emulation` per subtask, and the executor fetches its
  operands, really computes, and uploads no earlier than ``t0 + shift``;
* the master decodes from the first ``K`` results and checks the product.

**Draws.** The master draws every subtask's model completion time ``tau_i`` before
publishing a run: ``t_i + C/f_i + X_i`` for the chosen worker ``i`` (the instance's
straggler law, and a failure with the worker's ``fail`` probability, as in
:func:`offload.simulate.simulate`), and ``j * C / f_m`` for local subtask ``j``. Worker
``i``'s draws in run ``r`` come from ``SeedSequence(seed, spawn_key=(1, r, i))``, so every
policy sees the same draws in run ``r`` (common random numbers), and a policy's own random
choice (ROP) from ``SeedSequence(seed, spawn_key=(0, crc32(name)))``: nothing depends on
timestamps, job ids or the host, and the same ``--seed`` redraws the same delays. The task's
emulation is ``shift = s * tau_i`` with no further randomness (a failed worker is ``dead``).

**Deadline rule (the same in model and measurement).** A run is in time when its ``K``-th
completion is **at or before** ``T_r = T - decode_s`` (inclusive, as in the planner's
``P(X <= T)`` and the simulator's ``kth <= T``). With ``tau_(K)`` the ``K``-th smallest of
the drawn ``tau_i``:

* *emulated hit*: ``tau_(K) <= T_r``, the rule on undistorted model values; a subtask
  finishing exactly at ``T`` is a hit;
* *measured hit*: the ``K`` results the master really decoded from were all due by
  ``T_r`` (``max tau_i <= T_r`` over them, the same rule on the same undistorted values),
  **and** the ``K``-th of them really arrived by ``T_r + tolerance_s / s``. ``c``, the
  ``K``-th arrival at the master (wall seconds after the manifest's ``t0``, divided by
  ``s``), is never before its target, as no result is uploaded earlier; ``c - tau_(K)``,
  the *lateness* (upload, store round trip, polling, scheduling), is reported separately
  and the stated ``tolerance_s`` (wall seconds, default 0.01) bounds it. So a ``K``-th
  subtask due exactly at ``T`` is a hit in model, emulation and measurement alike, and one
  due just after ``T`` a miss in all three: the tolerance lets a result travel, it does not
  move the deadline. Runs where the measured and emulated verdicts differ (lateness above
  the tolerance, or a result due after ``T`` decoded in place of one due before) are
  counted (``disagree``).

Each policy's measured hit rate comes with a Wilson 95 % interval, and the report says
whether the predicted probability lies inside it. Model seconds are scaled by
``s = time_scale`` (default 0.5); all times in reports are model seconds unless marked.
Energy is the model's (``m E_loc + sum of the chosen workers' cost``): it depends on cycles
and bits, which the emulation reproduces exactly, not on waiting.
"""

from __future__ import annotations

import math
import os
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from coding.validate import check_int, check_real
from exchange.errors import RoundTimeoutError
from exchange.stores.base import Store
from offload.model import Instance
from offload.placement import Placement
from offload.policies import get_policy
from worker.matmul.codes import make_code, worker_product
from worker.matmul.executor import Emulation, keys
from worker.matmul.jobs import ExecutorPool, MatmulJob, ThreadPool, new_job_id, run_master
from worker.matmul.plan_report import (
    PolicySummary,
    deadline_hit,
    executor_pids,
    least_energy_feasible,
    summarize,
    wilson_interval,
    write_report,
)

__all__ = ["PlanRun", "PolicySummary", "DEFAULT_TOLERANCE_S", "deadline_hit", "draw_targets",
           "executor_pids", "least_energy_feasible", "make_pool", "plan_rng",
           "predicted_completion", "run_experiment", "run_placement", "task_emulations",
           "wilson_interval", "write_report"]

#: Wall seconds a result may take from its emulated finish to the master (see above).
DEFAULT_TOLERANCE_S = 0.01
#: Wall seconds between runs: longer than an executor's 0.05 s check of a job's ``done``
#: marker while it waits, so every executor has dropped the previous run's task.
DEFAULT_SETTLE_S = 0.06
_PLAN_STREAM, _RUN_STREAM, _PREDICT_STREAM = 0, 1, 2


@dataclass(frozen=True)
class PlanRun:
    """One measured run of a placement (times in model seconds)."""

    policy: str
    run: int
    completion: float  # K-th result in at the master (inf when the run timed out)
    kth_target: float  # tau_(K): K-th smallest drawn completion time
    lateness: float  # completion - kth_target (inf when the run timed out)
    time_to_result: float  # including the decode
    hit: bool  # measured: used_due <= T_r and completion <= T_r + tolerance_s / s
    emulated_hit: bool  # kth_target <= T_r
    used: tuple[int, ...]
    local_used: int
    correct: bool
    targets: tuple[float, ...]  # tau_i per subtask (inf: the worker failed)
    used_due: float = math.inf  # max tau_i over the results the master decoded from
    job: str = ""


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode())


def plan_rng(seed: int, policy: str) -> np.random.Generator:
    """The generator of ``policy``'s own random choices (ROP's draw) under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(
        check_int("seed", seed, low=0), spawn_key=(_PLAN_STREAM, _name_key(policy))))


def _law(instance: Instance, placement: Placement):
    """The placement's completion law: at its ``N - m`` parallel uploads where the instance
    shares a link budget (``Instance.share``), the plain one otherwise."""
    if getattr(getattr(instance, "share", None), "active", False):
        return instance.completion_params(len(placement.workers))
    return instance.completion_params()


def draw_targets(instance: Instance, placement: Placement, *, seed: int,
                 run: int) -> np.ndarray:
    """Model completion times ``tau`` of the ``N`` subtasks in run ``run`` (model seconds).

    ``tau[j] = (j + 1) t_loc`` for local subtasks, ``tau[m + r]`` is the ``r``-th chosen
    worker's delay plus a tail drawn from ``SeedSequence(seed, spawn_key=(1, run, worker))``
    (``inf`` when it fails).
    """
    seed, run = check_int("seed", seed, low=0), check_int("run", run, low=0)
    delay, rate, _ = _law(instance, placement)
    fail = instance.workers.fail
    out = [instance.t_loc * (j + 1) for j in range(placement.m)]
    for w in placement.workers:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_RUN_STREAM, run,
                                                                            int(w))))
        tail = float(instance.straggler.sample(rng, rate[w], (1,))[0])
        dead = bool(rng.random() < fail[w])
        out.append(math.inf if dead else float(delay[w]) + tail)
    return np.asarray(out)


def task_emulations(targets: np.ndarray, m: int, time_scale: float) -> dict[int, Emulation]:
    """Subtask index -> the :class:`Emulation` its executor runs it under (remote only)."""
    return {i: Emulation(dead=True) if not math.isfinite(t) else Emulation(shift=time_scale * t)
            for i, t in enumerate(targets) if i >= m}


def predicted_completion(instance: Instance, placement: Placement, *, draws: int = 20000,
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """Monte-Carlo draws of the model's ``K``-th completion time (model seconds)."""
    rng = np.random.default_rng(0) if rng is None else rng
    delay, rate, _ = _law(instance, placement)
    ids = np.asarray(placement.workers, dtype=int)
    remote = delay[ids] + instance.straggler.sample(rng, rate[ids], (draws, ids.size))
    fail = instance.workers.fail[ids]
    if fail.any():
        remote = np.where(rng.random((draws, ids.size)) < fail, np.inf, remote)
    local = np.broadcast_to(instance.t_loc * np.arange(1, placement.m + 1), (draws, placement.m))
    times = np.sort(np.concatenate([local, remote], axis=1), axis=1)
    return times[:, instance.K - 1]


def _local_share(m: int, t_loc_scaled: float) -> Callable:
    """The master's own subtasks 0..m-1: computed for real, ready at j * t_loc (scaled)."""
    def start(enc, manifest, q) -> None:
        def work() -> None:
            for j in range(m):
                prod = worker_product(enc.a[j], enc.b_of(j), manifest.p)
                left = manifest.t0 + (j + 1) * t_loc_scaled - time.time()
                if left > 0:
                    time.sleep(left)
                q.put((j, prod))
        threading.Thread(target=work, daemon=True, name="matmul-master-local").start()
    return start


def run_placement(store: Store, instance: Instance, placement: Placement, *,
                  time_scale: float = 0.5, size: tuple[int, int] = (64, 32), seed: int = 0,
                  run: int = 0, tolerance_s: float = DEFAULT_TOLERANCE_S,
                  timeout_factor: float = 3.0, targets: np.ndarray | None = None) -> PlanRun:
    """Run ``placement`` once as a real MDS-coded matmul job; see the module docstring.

    Executors ``0 .. N-m-1`` of a started :class:`~worker.matmul.jobs.ExecutorPool` must
    be serving ``store``: subtask ``m + r`` goes to executor ``r``.

    Parameters
    ----------
    size : (d, q)
        Inner and column dimensions; ``A`` has the instance's ``R`` rows.
    tolerance_s : float
        Wall seconds a ``K``-th result due by ``T`` may take to reach the master and
        still count as a hit.
    timeout_factor : float
        The run is abandoned (a miss) after ``timeout_factor * T`` model seconds.
    targets : numpy.ndarray, optional
        The ``N`` model completion times (default :func:`draw_targets` of ``seed, run``).
    """
    s = check_real("time_scale", time_scale, low=0.0, low_open=True)
    tol = check_real("tolerance_s", tolerance_s, low=0.0)
    T = instance.results_by
    N, K, m = instance.N, instance.K, placement.m
    tau = draw_targets(instance, placement, seed=seed, run=run) if targets is None \
        else np.asarray(targets, dtype=float)
    if tau.shape != (N,):
        raise ValueError(f"Argument 'targets' must hold N={N} times, not {tau.shape}.")
    kth = float(np.sort(tau)[K - 1])
    spec = MatmulJob(code="mds", n=N, k=K, size=(instance.task.R, size[0], size[1]),
                     seed=seed, timeout=timeout_factor * instance.budget.deadline * s,
                     job=new_job_id(f"plan-{placement.policy or 'x'}-{run}"))
    code = make_code("mds", n=N, k=K, seed=seed)
    try:
        res = run_master(store, spec, code=code,
                         assignment={m + r: r for r in range(len(placement.workers))},
                         emulations=task_emulations(tau, m, s),
                         on_publish=_local_share(m, instance.t_loc * s), poll_max=0.002)
    except RoundTimeoutError:
        res = None
    finally:  # the executors are done with the manifest; keep listings short
        store.delete([keys.manifest(spec.job), keys.final(spec.job)])
    common = dict(kth_target=kth, emulated_hit=deadline_hit(kth, T),
                  targets=tuple(float(t) for t in tau), job=spec.job)
    if res is None:
        return PlanRun(placement.policy, run, math.inf, lateness=math.inf,
                       time_to_result=math.inf, hit=False, used=(), local_used=0,
                       correct=False, **common)
    done = max(res.arrivals[i] for i in res.used) / s
    due = float(max(tau[i] for i in res.used))
    return PlanRun(placement.policy, run, done, lateness=done - kth,
                   time_to_result=res.timings["time_to_result_s"] / s,
                   hit=deadline_hit(due, T) and deadline_hit(done, T, tol / s),
                   used=tuple(res.used), used_due=due,
                   local_used=sum(i < m for i in res.used),
                   correct=bool(res.check and res.check["ok"]), **common)


def make_pool(launcher: str, store: Store, n: int, *, url: str | None = None,
              keyring: object = None, address: str | None = None,
              verbose: bool = False) -> ExecutorPool:
    """An unstarted pool of ``n`` plain executors: ``thread``, ``local`` or ``ray``."""
    from worker.matmul.jobs import LocalPool, RayPool

    emus = [Emulation()] * check_int("n", n, low=1)
    if launcher == "thread":
        return ThreadPool(store, emus)
    if launcher not in ("local", "ray"):
        raise ValueError(f"Argument 'launcher' must be thread, local or ray, not {launcher!r}.")
    if url is None:
        raise ValueError(f"Argument 'url' is required with launcher {launcher!r}.")
    if launcher == "local":
        return LocalPool(store, emus, url=url, keyring=keyring, verbose=verbose)
    return RayPool(store, emus, url=url, keyring=keyring, address=address)


def run_experiment(store: Store, instance: Instance, policies=("igp", "rop", "aop", "lcp"), *,
                   runs: int = 300, time_scale: float = 0.5, seed: int = 0,
                   size: tuple[int, int] = (64, 32), pool: ExecutorPool | None = None,
                   tolerance_s: float = DEFAULT_TOLERANCE_S,
                   settle_s: float = DEFAULT_SETTLE_S,
                   log: Callable[[str], None] = lambda s: None
                   ) -> tuple[list[PolicySummary], list[PlanRun], dict]:
    """Plan with each policy, run each placement ``runs`` times, and summarize.

    ``pool`` (unstarted, at least ``N - m`` executors for every placement; default a
    :class:`ThreadPool` of ``N``) is started once, serves every run, and is stopped at the
    end. Returns the summaries, the runs, and the executors' description (launcher, pids).
    """
    runs = check_int("runs", runs, low=1)
    seed = check_int("seed", seed, low=0)
    settle_s = check_real("settle_s", settle_s, low=0.0)
    placements = []
    for name in policies:
        placement = get_policy(name).plan(instance, rng=plan_rng(seed, name)).with_policy(name)
        log(f"{name}: m={placement.m} workers={list(placement.workers)} "
            f"energy={placement.energy:.4f} J success={placement.success:.4f}")
        placements.append(placement)
    pool = ThreadPool(store, [Emulation()] * instance.N) if pool is None else pool
    need = max(len(p.workers) for p in placements)
    if pool.n < need:
        raise ValueError(f"Argument 'pool' must have at least {need} executors, not {pool.n}.")
    summaries, all_runs = [], []
    with pool:
        executors = {"launcher": type(pool).__name__, "master_pid": os.getpid(),
                     "pids": executor_pids(store, pool)}
        log(f"{executors['launcher']}: executor pids {executors['pids']}")
        for placement in placements:
            rs = []
            for r in range(runs):
                if all_runs or rs:
                    time.sleep(settle_s)
                rs.append(run_placement(store, instance, placement, time_scale=time_scale,
                                        seed=seed, size=size, run=r, tolerance_s=tolerance_s))
            all_runs += rs
            name = placement.policy
            pred = predicted_completion(instance, placement, rng=np.random.default_rng(
                np.random.SeedSequence(seed, spawn_key=(_PREDICT_STREAM, _name_key(name)))))
            summaries.append(summarize(placement, rs, pred))
            s = summaries[-1]
            log(f"{name}: predicted {s.predicted_success:.3f}, measured {s.measured_hit_rate:.3f}"
                f" [{s.ci_low:.3f}, {s.ci_high:.3f}] over {runs} runs")
    # The executors are gone: drop what is left of the runs (their done markers).
    store.delete([k for r in all_runs for k in store.list(f"matmul/job/{r.job}/")])
    return summaries, all_runs, executors
