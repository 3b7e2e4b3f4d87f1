"""The placement experiment's statistics and report (:mod:`worker.matmul.experiment`).

The deadline rule, the Wilson score interval of a measured hit rate, one policy's summary
over its runs, and ``plan.json`` / ``plan.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from coding.validate import check_int, check_real
from exchange.stores.base import Store
from offload.model import Instance
from offload.placement import Placement

__all__ = ["PolicySummary", "Z95", "deadline_hit", "executor_pids", "least_energy_feasible",
           "summarize", "wilson_interval", "write_report"]

#: Two-sided 95 % standard-normal quantile.
Z95 = 1.959963984540054


def deadline_hit(completion, deadline: float, tolerance: float = 0.0):
    """The one deadline rule: in time iff ``completion <= deadline + tolerance`` (inclusive).

    The model and the emulated times use ``tolerance = 0``; the measurement adds the stated
    round-trip tolerance (see :mod:`worker.matmul.experiment`). Works elementwise on arrays.
    """
    out = np.asarray(completion, dtype=float) <= deadline + tolerance
    return bool(out) if out.ndim == 0 else out


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``hits / n`` (95 % by default)."""
    n = check_int("n", n, low=1)
    hits = check_int("hits", hits, low=0, high=n)
    z = check_real("z", z, low=0.0, low_open=True)
    p, z2 = hits / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def executor_pids(store: Store, pool) -> list[int | None]:
    """Process ids of a started pool's executors, from their ready markers."""
    out: list[int | None] = []
    for i in range(pool.n):
        try:
            out.append(int(json.loads(store.get(f"matmul/pool/{pool.pool}/ready/{i}"))["pid"]))
        except (ValueError, KeyError, TypeError, FileNotFoundError):
            out.append(None)
    return out


@dataclass(frozen=True)
class PolicySummary:
    """A policy's placement, the model's predictions and the measured outcome.

    Times in model seconds; ``lateness_*`` is ``K``-th arrival minus ``tau_(K)``.
    """

    policy: str
    m: int
    workers: tuple[int, ...]
    feasible: bool
    energy_J: float
    predicted_success: float
    runs: int
    hits: int
    measured_hit_rate: float
    ci_low: float  # Wilson 95 %
    ci_high: float
    predicted_in_ci: bool
    emulated_hit_rate: float  # tau_(K) <= T_r: the model's rule on the drawn times
    disagree: int  # runs whose measured and emulated verdicts differ
    lateness_mean: float
    lateness_max: float
    predicted_mean_completion: float
    measured_mean_completion: float
    predicted_median_completion: float
    measured_median_completion: float
    all_correct: bool


def summarize(placement: Placement, runs: list, predicted: np.ndarray) -> PolicySummary:
    """Summarize one policy's runs (:class:`~worker.matmul.experiment.PlanRun`)."""
    n = len(runs)
    hits = sum(r.hit for r in runs)
    lo, hi = wilson_interval(hits, n)
    comp = np.array([r.completion for r in runs])
    late = np.array([r.lateness for r in runs if math.isfinite(r.lateness)])
    p = placement.success
    return PolicySummary(
        placement.policy, placement.m, tuple(placement.workers), placement.feasible,
        placement.energy, p, n, hits, hits / n, lo, hi, bool(lo <= p <= hi),
        float(np.mean([r.emulated_hit for r in runs])),
        sum(r.hit != r.emulated_hit for r in runs),
        float(late.mean()) if late.size else math.inf,
        float(late.max()) if late.size else math.inf,
        float(predicted.mean()),
        float(comp.mean()) if np.all(np.isfinite(comp)) else math.inf,
        float(np.median(predicted)), float(np.median(comp)), all(r.correct for r in runs))


def least_energy_feasible(summaries: list[PolicySummary]) -> list[str]:
    """Names of the policies with the least energy among those meeting the budget."""
    ok = [s for s in summaries if s.feasible]
    if not ok:
        return []
    best = min(s.energy_J for s in ok)
    return [s.policy for s in ok if math.isclose(s.energy_J, best, rel_tol=1e-12)]


def _rounded(obj):
    """Floats to 6 decimals (a microsecond of model time; measured times are ms-grained)."""
    if isinstance(obj, float):
        return round(obj, 6) if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    return obj


def _dump(doc: dict) -> str:
    """JSON with one line per run (hundreds of runs stay a readable, diffable file; run
    times rounded to 1e-6 s, the drawn ones are redrawn exactly from the seed)."""
    head = json.dumps({k: v for k, v in doc.items() if k != "runs"}, indent=1, default=float)
    runs = ",\n".join("  " + json.dumps(_rounded(r), default=float) for r in doc["runs"])
    return head[:-2] + ',\n "runs": [\n' + runs + "\n ]\n}\n"


def write_report(out_dir: str | Path, instance: Instance, summaries: list[PolicySummary],
                 runs: list, *, time_scale: float, tolerance_s: float = 0.01, seed: int = 0,
                 executors: dict | None = None, command: str = "") -> Path:
    """Write ``plan.json`` and ``plan.md`` under ``out_dir``; return the markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    best = least_energy_feasible(summaries)
    executors = dict(executors or {})
    doc = {"command": command, "seed": seed, "time_scale": time_scale,
           "tolerance_s": tolerance_s, "deadline_s": instance.budget.deadline,
           "results_by_s": instance.results_by, "eps": instance.budget.eps, "N": instance.N,
           "K": instance.K, "W": instance.W, "executors": executors,
           "least_energy_feasible": best,
           "policies": [asdict(s) for s in summaries],
           "runs": [asdict(r) for r in runs]}
    (out / "plan.json").write_text(_dump(doc))
    pids = executors.get("pids") or []
    lines = [f"# Placements run for real (N={instance.N}, K={instance.K}, W={instance.W}, "
             f"T={instance.budget.deadline} s, eps={instance.budget.eps}, "
             f"time scale {time_scale}, seed {seed})", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    if executors:
        sep = all(p is not None and p != executors.get("master_pid") for p in pids)
        lines += [f"Executors: {len(pids)} x {executors.get('launcher')} "
                  f"({'separate processes' if sep else 'in the master process'}), started "
                  f"once and serving every run.", ""]
    lines += [f"Hit: the K-th completion at or before T (inclusive). Measured: the K decoded "
              f"results were all due by T and the K-th reached the master within "
              f"{1000 * tolerance_s:g} ms (wall) of T. CI: Wilson 95 %.", "",
              "| policy | m | workers | energy (J) | predicted P(hit) | measured hits | "
              "measured rate [95 % CI] | prediction in CI | emulated rate | verdicts differ | "
              "lateness mean / max (wall ms) | pred. / meas. mean t (s) | decoded ok |",
              "|" + "---|" * 13]
    for s in summaries:
        ms = 1000 * time_scale
        lines.append(
            f"| {s.policy} | {s.m} | {len(s.workers)} | {s.energy_J:.4f} | "
            f"{s.predicted_success:.3f} | {s.hits}/{s.runs} | {s.measured_hit_rate:.3f} "
            f"[{s.ci_low:.3f}, {s.ci_high:.3f}] | {'yes' if s.predicted_in_ci else 'NO'} | "
            f"{s.emulated_hit_rate:.3f} | {s.disagree} | {ms * s.lateness_mean:.1f} / "
            f"{ms * s.lateness_max:.1f} | {s.predicted_mean_completion:.3f} / "
            f"{s.measured_mean_completion:.3f} | {s.all_correct} |")
    lines += ["", f"Least modeled energy among policies meeting the budget: {', '.join(best)}",
              ""]
    path = out / "plan.md"
    path.write_text("\n".join(lines))
    return path
