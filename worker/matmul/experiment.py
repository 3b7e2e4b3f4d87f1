"""Offload placements run for real: predicted against measured, over repeated runs.

An offload instance (:mod:`offload.model`) describes a master, ``W`` straggling workers and
an ``(N, K)`` MDS-coded task. A policy (``igp``, ``rop``, ``aop``, ``lcp``, ``exact``)
places ``m`` coded subtasks on the master and one on each of ``N - m`` chosen workers. This
module runs such a placement as a real matmul job through the store:

* subtasks ``0..m-1`` are the master's own: it **really computes** them, one after the
  other in a thread, and local subtask ``j`` (1-based) is ready no earlier than
  ``j * C / f_m`` (scaled), the model's local finish time;
* subtask ``m + r`` goes to the ``r``-th chosen worker, emulated by an executor with
  :class:`~worker.matmul.executor.Emulation` ``shift = s * (t_i + C/f_i)``,
  ``rate = mu_i f_i / C / s``: it fetches its operands, really computes, and uploads no
  earlier than its model completion time ``t_i + C/f_i + Exp(mu_i f_i / C)``, scaled;
* the master decodes from the first ``K`` results.

Model seconds are scaled by ``s = time_scale`` (default 0.5) so that 50 runs per policy
stay affordable; all times in reports are converted back to model seconds (measured / s).
A run hits the deadline when its ``K``-th result is in by ``T``. Energy is the model's
(``m E_loc + sum of the chosen workers' cost``): it depends on cycles and bits, which the
emulation reproduces exactly, not on waiting.

Executors are notified directly (threads started when the manifest is published) so that
no polling delay is added to the measured completion; the store round trip, encryption,
decoding checks and thread scheduling are all inside the measured time.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from coding.validate import check_int, check_real
from exchange.errors import RoundTimeoutError
from exchange.stores.base import Store
from offload.model import Instance
from offload.placement import Placement
from offload.policies import get_policy
from worker.matmul.codes import make_code, worker_product
from worker.matmul.executor import Emulation, run_task
from worker.matmul.jobs import MatmulJob, new_job_id, run_master

__all__ = ["PlanRun", "PolicySummary", "emulations", "predicted_completion", "run_placement",
           "run_experiment", "write_report"]


@dataclass(frozen=True)
class PlanRun:
    """One measured run of a placement (times in model seconds)."""

    policy: str
    run: int
    completion: float  # K-th result in (inf when the run timed out)
    time_to_result: float  # including the decode
    hit: bool
    used: tuple[int, ...]
    local_used: int
    correct: bool


@dataclass(frozen=True)
class PolicySummary:
    """A policy's placement, the model's predictions and the measured outcome."""

    policy: str
    m: int
    workers: tuple[int, ...]
    feasible: bool
    energy_J: float
    predicted_success: float
    measured_hit_rate: float
    hit_stderr: float
    runs: int
    predicted_mean_completion: float
    measured_mean_completion: float
    predicted_median_completion: float
    measured_median_completion: float
    all_correct: bool


def emulations(instance: Instance, placement: Placement, *, time_scale: float,
               seed: int = 0) -> list[Emulation]:
    """One :class:`Emulation` per chosen worker of ``placement``, in order."""
    delay, rate, _ = instance.completion_params()
    return [Emulation(shift=time_scale * float(delay[w]), rate=float(rate[w]) / time_scale,
                      seed=seed * 1000 + int(w)) for w in placement.workers]


def predicted_completion(instance: Instance, placement: Placement, *, draws: int = 20000,
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """Monte-Carlo draws of the model's ``K``-th completion time (model seconds)."""
    rng = np.random.default_rng(0) if rng is None else rng
    delay, rate, _ = instance.completion_params()
    ids = np.asarray(placement.workers, dtype=int)
    remote = delay[ids] + rng.exponential(1.0, (draws, ids.size)) / rate[ids]
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
                  run: int = 0, timeout_factor: float = 3.0) -> PlanRun:
    """Run ``placement`` once as a real MDS-coded matmul job; see the module docstring.

    Parameters
    ----------
    size : (d, q)
        Inner and column dimensions; ``A`` has the instance's ``R`` rows.
    timeout_factor : float
        The run is abandoned (a miss) after ``timeout_factor * T`` model seconds.
    """
    time_scale = check_real("time_scale", time_scale, low=0.0, low_open=True)
    T = instance.budget.deadline
    N, K, m = instance.N, instance.K, placement.m
    spec = MatmulJob(code="mds", n=N, k=K, size=(instance.task.R, size[0], size[1]),
                     seed=seed, timeout=timeout_factor * T * time_scale,
                     job=new_job_id(f"plan-{placement.policy or 'x'}-{run}"))
    code = make_code("mds", n=N, k=K, seed=seed)
    emus = emulations(instance, placement, time_scale=time_scale, seed=seed * 100003 + run)
    assignment = {m + r: int(w) for r, w in enumerate(placement.workers)}
    local = _local_share(m, instance.t_loc * time_scale)

    def on_publish(enc, manifest, q) -> None:
        local(enc, manifest, q)
        for r, w in enumerate(placement.workers):
            task = manifest.tasks[r]
            threading.Thread(target=run_task, args=(store, manifest, task, int(w), emus[r]),
                             daemon=True).start()

    try:
        res = run_master(store, spec, code=code, assignment=assignment, on_publish=on_publish,
                         poll_max=0.002)
    except RoundTimeoutError:
        return PlanRun(placement.policy, run, math.inf, math.inf, False, (), 0, False)
    done = max(res.arrivals[i] for i in res.used) / time_scale
    return PlanRun(placement.policy, run, done, res.timings["time_to_result_s"] / time_scale,
                   done <= T, tuple(res.used), sum(i < m for i in res.used),
                   bool(res.check and res.check["ok"]))


def run_experiment(store: Store, instance: Instance, policies=("igp", "rop", "aop", "lcp"), *,
                   runs: int = 50, time_scale: float = 0.5, seed: int = 0,
                   size: tuple[int, int] = (64, 32),
                   log: Callable[[str], None] = lambda s: None
                   ) -> tuple[list[PolicySummary], list[PlanRun]]:
    """Plan with each policy, run each placement ``runs`` times, and summarize."""
    runs = check_int("runs", runs, low=1)
    summaries, all_runs = [], []
    for name in policies:
        placement = get_policy(name).plan(instance, rng=np.random.default_rng(seed))
        placement = placement.with_policy(name)
        log(f"{name}: m={placement.m} workers={list(placement.workers)} "
            f"energy={placement.energy:.4f} J success={placement.success:.4f}")
        rs = [run_placement(store, instance, placement, time_scale=time_scale, seed=seed,
                            size=size, run=r) for r in range(runs)]
        all_runs += rs
        pred = predicted_completion(instance, placement, rng=np.random.default_rng(seed))
        comp = np.array([r.completion for r in rs])
        hit = float(np.mean([r.hit for r in rs]))
        summaries.append(PolicySummary(
            name, placement.m, placement.workers, placement.feasible, placement.energy,
            placement.success, hit, math.sqrt(max(hit * (1 - hit), 1e-12) / runs), runs,
            float(pred.mean()), float(np.mean(comp)) if np.all(np.isfinite(comp)) else math.inf,
            float(np.median(pred)), float(np.median(comp)), all(r.correct for r in rs)))
        log(f"{name}: predicted {placement.success:.3f}, measured {hit:.3f} over {runs} runs")
    return summaries, all_runs


def least_energy_feasible(summaries: list[PolicySummary]) -> list[str]:
    """Names of the policies with the least energy among those meeting the budget."""
    ok = [s for s in summaries if s.feasible]
    if not ok:
        return []
    best = min(s.energy_J for s in ok)
    return [s.policy for s in ok if math.isclose(s.energy_J, best, rel_tol=1e-12)]


def write_report(out_dir: str | Path, instance: Instance, summaries: list[PolicySummary],
                 runs: list[PlanRun], *, time_scale: float, command: str = "") -> Path:
    """Write ``plan.json`` and ``plan.md`` under ``out_dir``; return the markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    best = least_energy_feasible(summaries)
    doc = {"command": command, "time_scale": time_scale, "deadline_s": instance.budget.deadline,
           "eps": instance.budget.eps, "N": instance.N, "K": instance.K, "W": instance.W,
           "least_energy_feasible": best,
           "policies": [asdict(s) for s in summaries],
           "runs": [asdict(r) for r in runs]}
    (out / "plan.json").write_text(json.dumps(doc, indent=1, default=float) + "\n")
    lines = [f"# Placements run for real (N={instance.N}, K={instance.K}, W={instance.W}, "
             f"T={instance.budget.deadline} s, eps={instance.budget.eps}, "
             f"time scale {time_scale})", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += ["| policy | m | workers | feasible | energy (J) | predicted P(hit) | measured hit "
              "rate | diff (pts) | pred. mean t (s) | meas. mean t (s) | pred. median | "
              "meas. median | decoded ok |", "|" + "---|" * 13]
    for s in summaries:
        lines.append(
            f"| {s.policy} | {s.m} | {len(s.workers)} | {s.feasible} | {s.energy_J:.4f} | "
            f"{s.predicted_success:.3f} | {s.measured_hit_rate:.3f} ± {s.hit_stderr:.3f} | "
            f"{100 * (s.measured_hit_rate - s.predicted_success):+.1f} | "
            f"{s.predicted_mean_completion:.3f} | {s.measured_mean_completion:.3f} | "
            f"{s.predicted_median_completion:.3f} | {s.measured_median_completion:.3f} | "
            f"{s.all_correct} |")
    lines += ["", f"Least modeled energy among policies meeting the budget: {', '.join(best)}",
              ""]
    path = out / "plan.md"
    path.write_text("\n".join(lines))
    return path
