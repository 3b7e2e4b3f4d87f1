"""Parameter sweeps of the offloading policies, with CSV, JSON and PNG output.

A sweep varies one generator parameter over a list of values. For every value and seed it
draws an instance and plans it with each policy. The comparison is paired throughout:

* **Common random numbers.** A seed draws the same workers for every value (the generator's
  draws do not depend on the scalar parameters), every policy plans the same instance, and
  every policy's randomness is seeded by the seed alone.
* **Energy on common seeds.** The energy means are over the seeds on which *every* policy of
  the sweep meets the budget, so no policy's mean rests on a friendlier subset: per value
  (``energy_common_*``), and over the seeds common to every value of the axis
  (``energy_axis_*``, ``SweepResult.axis_seeds``), so that a trend along the axis is a trend
  on the same instances and not a change of subset.
* **Energy ratio to the optimum.** Per seed, a policy's energy over the reference policy's
  (``exact`` when it is in the sweep, else ``igp``), averaged over the seeds where the policy
  meets the budget. A ratio below 1 would mean a policy beat the optimum.
* **Infeasible runs are counted, never dropped silently**: the summary carries the share of
  seeds meeting the budget and the mean predicted deadline-success probability
  ``P(K results by T)``, and the common-seed count is printed on the plot.

A value whose instances cannot be built (say ``N > W + m_max``) is skipped with a note in
``SweepResult.skipped``; the sweep goes on.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coding.validate import check_int
from offload.generator import GeneratorConfig, generate
from offload.policies import get_policy

__all__ = ["AXES", "Axis", "SweepResult", "reference_policy", "sweep", "write_outputs"]


@dataclass(frozen=True)
class Axis:
    """A sweepable parameter: generator field, default values, label and display scale."""

    field: str
    values: tuple
    label: str
    scale: float = 1.0


AXES = {
    "power": Axis("power", tuple(np.round(np.arange(0.1, 1.51, 0.2), 2)),
                  "Master transmit power P (W)"),
    "cpu": Axis("f_w", tuple(np.round(np.arange(1.5, 2.71, 0.2), 2) * 1e9),
                "Worker CPU frequency f_w (GHz)", 1e-9),
    "deadline": Axis("deadline", (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5), "Deadline T (s)"),
    "n": Axis("N", (6, 8, 10, 12, 14, 16), "Coded subtasks N"),
    "k": Axis("K", (2, 3, 4, 5, 6, 7, 8, 9, 10), "Blocks needed K"),
    "fail": Axis("fail_prob", (0.0, 0.02, 0.05, 0.1, 0.15, 0.2), "Worker failure probability"),
    "decode": Axis("decode_s", (0.0, 0.05, 0.1, 0.15, 0.2, 0.25), "Decoding time (s)"),
    "result": Axis("result_bits_row", (0.0, 5e3, 1e4, 2e4, 4e4), "Result kbit per row", 1e-3),
    "shape": Axis("shape", (1.5, 2.0, 3.0, 5.0, 10.0), "Straggler law shape"),
    "slow": Axis("slow_prob", (0.0, 0.05, 0.1, 0.2, 0.3), "Bimodal law: share of slow runs"),
    "share_bw": Axis("bandwidth_total", (3e6, 4e6, 5e6, 6e6, 8e6, 10e6),
                     "Total upload bandwidth B_tot (MHz)", 1e-6),
    "share_power": Axis("power_total", (0.5, 1.0, 2.0, 3.0, 5.0),
                        "Total transmit power P_tot (W)"),
}


@dataclass
class SweepResult:
    """Per-run rows, per-(value, policy) summary and skipped values of a sweep."""

    x: str
    values: list
    policies: list[str]
    seeds: int
    config: dict
    reference: str | None = None
    rows: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    axis_seeds: list[int] = field(default_factory=list)


def reference_policy(policies: Sequence[str]) -> str | None:
    """The policy energies are compared against: ``exact`` if present, else ``igp``."""
    for name in ("exact", "igp"):
        if name in policies:
            return name
    return None


def _mean_sem(vals) -> tuple[float, float]:
    n = len(vals)
    if not n:
        return float("nan"), float("nan")
    return float(np.mean(vals)), float(np.std(vals, ddof=1) / math.sqrt(n)) if n > 1 else 0.0


def _axis_seeds(rows: list[dict]) -> list[int]:
    """Seeds on which every policy meets the budget at every value."""
    return sorted({r["seed"] for r in rows} - {r["seed"] for r in rows if not r["feasible"]})


def _summarize(rows: list[dict], values, policies, reference) -> list[dict]:
    out, axis = [], set(_axis_seeds(rows))
    for v in values:
        at = [r for r in rows if r["x"] == v]
        seeds = sorted({r["seed"] for r in at})
        by = {(r["seed"], r["policy"]): r for r in at}
        common = [s for s in seeds if all(by[s, p]["feasible"] for p in policies)]
        for name in policies:
            sel = [by[s, name] for s in seeds]
            ok = [r for r in sel if r["feasible"]]
            e_common, e_common_sem = _mean_sem([by[s, name]["energy_J"] for s in common])
            e_own, e_own_sem = _mean_sem([r["energy_J"] for r in ok])
            e_axis, e_axis_sem = _mean_sem([by[s, name]["energy_J"] for s in seeds if s in axis])
            ratios = [r["ratio"] for r in ok if r["ratio"] is not None]
            ratio, ratio_sem = _mean_sem(ratios)
            out.append({
                "x": v, "policy": name, "runs": len(sel), "feasible": len(ok),
                "feasibility_rate": len(ok) / len(sel) if sel else float("nan"),
                "success_mean": float(np.mean([r["success"] for r in sel])),
                "common_seeds": len(common),
                "energy_common_mean_J": e_common, "energy_common_sem_J": e_common_sem,
                "axis_seeds": len(axis), "energy_axis_mean_J": e_axis,
                "energy_axis_sem_J": e_axis_sem,
                "energy_ratio_mean": ratio, "energy_ratio_sem": ratio_sem,
                "energy_ratio_min": float(min(ratios)) if ratios else float("nan"),
                "energy_ratio_max": float(max(ratios)) if ratios else float("nan"),
                "energy_feasible_mean_J": e_own, "energy_feasible_sem_J": e_own_sem,
                "time_mean_s": float(np.mean([r["time_s"] for r in sel])),
            })
    return out


def _run_value(cfg: GeneratorConfig, v, seeds: int, objs: dict, reference) -> list[dict]:
    rows = []
    for seed in range(seeds):
        inst = generate(cfg, seed)
        plans = {}
        for name, pol in objs.items():
            t = time.perf_counter()
            plans[name] = (pol.plan(inst, rng=np.random.default_rng(seed)),
                           time.perf_counter() - t)
        ref = plans[reference][0] if reference else None
        for name, (pl, dt) in plans.items():
            ratio = (pl.energy / ref.energy if pl.feasible and ref is not None and ref.feasible
                     and ref.energy > 0 else None)
            rows.append({"x": v, "seed": seed, "policy": name, "m": pl.m,
                         "workers": " ".join(map(str, pl.workers)), "energy_J": pl.energy,
                         "success": pl.success, "feasible": pl.feasible, "ratio": ratio,
                         "time_s": dt})
    return rows


def sweep(x: str, *, values: Sequence | None = None,
          policies: Sequence[str] = ("igp", "rop", "aop", "lcp", "exact"), seeds: int = 20,
          config: GeneratorConfig | None = None,
          progress: Callable[[str], None] | None = None) -> SweepResult:
    """Run every policy on ``seeds`` random instances for each value of parameter ``x``.

    Parameters
    ----------
    x : str
        A key of :data:`AXES` (``power``, ``cpu``, ``deadline``, ``n``, ``k``, and the world
        axes ``fail``, ``decode``, ``result``, ``shape``, ``slow``, ``share_bw``,
        ``share_power``).
    values : sequence, optional
        Values of the parameter in generator units (Hz for ``cpu``); the axis default if
        omitted. A value whose instances cannot be built is skipped with a note.
    policies : sequence of str
        Policy names (keys of :data:`offload.policies.POLICIES`).
    seeds : int
        Instances per value, seeds ``0..seeds-1``.
    config : GeneratorConfig, optional
        Base parameters (the generator's defaults if omitted).
    progress : callable, optional
        Called with one line of text after each value (and for each skipped value).
    """
    if x not in AXES:
        raise ValueError(f"Argument 'x' must be one of {', '.join(AXES)}, not {x!r}.")
    seeds = check_int("seeds", seeds, low=1)
    axis = AXES[x]
    values = list(axis.values if values is None else values)
    if not values:
        raise ValueError("Argument 'values' must not be empty.")
    objs = {name: get_policy(name) for name in policies}
    base = GeneratorConfig() if config is None else config
    ref = reference_policy(list(objs))
    res = SweepResult(x, [], list(objs), seeds, dict(base.__dict__), ref)
    for v in values:
        t0 = time.perf_counter()
        try:
            cfg = base.replace(**{axis.field: type(getattr(base, axis.field))(v)})
            rows = _run_value(cfg, v, seeds, objs, ref)
        except (ValueError, TypeError) as err:
            res.skipped.append({"x": v, "reason": str(err)})
            if progress is not None:
                progress(f"{x}={v * axis.scale:g}: skipped: {err}")
            continue
        res.values.append(v)
        res.rows += rows
        if progress is not None:
            summ = _summarize(rows, [v], res.policies, ref)
            parts = [f"{s['policy']}={s['energy_common_mean_J']:.3f}J/{s['feasibility_rate']:.0%}"
                     for s in summ]
            progress(f"{x}={v * axis.scale:g}: {' '.join(parts)} "
                     f"[{summ[0]['common_seeds']}/{seeds} common] "
                     f"({time.perf_counter() - t0:.1f}s)")
    res.summary = _summarize(res.rows, res.values, res.policies, ref)
    res.axis_seeds = _axis_seeds(res.rows)
    return res


def write_outputs(result: SweepResult, outdir, stem: str | None = None,
                  command: str = "") -> list[Path]:
    """Write ``<stem>.csv`` (one row per run), ``<stem>.json`` (summary) and ``<stem>.png``."""
    from offload.figures import plot_sweep

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    stem = stem or f"sweep_{result.x}"
    csv_path, json_path = outdir / f"{stem}.csv", outdir / f"{stem}.json"
    fields = ["x", "seed", "policy", "m", "workers", "energy_J", "success", "feasible",
              "ratio", "time_s"]
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in result.rows:
            writer.writerow({k: ("" if r[k] is None else f"{r[k]:.10g}"
                                 if isinstance(r[k], float) else r[k]) for k in fields})
    doc = {"x": result.x, "values": result.values, "policies": result.policies,
           "seeds": result.seeds, "reference": result.reference, "command": command,
           "config": result.config, "skipped": result.skipped,
           "axis_seeds": result.axis_seeds,
           "summary": _no_nan(result.summary)}
    json_path.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
    paths = [csv_path, json_path]
    if result.values:
        paths.append(plot_sweep(result, outdir / f"{stem}.png"))
    return paths


def _no_nan(obj):
    """NaN is not JSON: write ``null`` instead (e.g. energy of a policy with no feasible run)."""
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
