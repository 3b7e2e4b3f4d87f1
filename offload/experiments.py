"""Parameter sweeps of the offloading policies, with CSV, JSON and PNG output.

A sweep varies one generator parameter over a list of values. For every value and seed it
draws an instance (the same workers for every value of a seed: common random numbers) and
plans it with each policy. The summary reports, per value and policy, the energy over the
seeds whose placement meets the budget (mean and standard error) beside the feasibility rate:
a policy that misses the deadline can look cheap.
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

from coding._validate import check_int
from offload.generator import GeneratorConfig, generate
from offload.policies import get_policy

__all__ = ["AXES", "Axis", "SweepResult", "sweep", "write_outputs", "plot_sweep"]


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
}


@dataclass
class SweepResult:
    """Per-run rows and per-(value, policy) summary of a sweep."""

    x: str
    values: list
    policies: list[str]
    seeds: int
    config: dict
    rows: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)


def _summarize(rows: list[dict], values, policies) -> list[dict]:
    out = []
    for v in values:
        for name in policies:
            sel = [r for r in rows if r["x"] == v and r["policy"] == name]
            ok = [r["energy_J"] for r in sel if r["feasible"]]
            n = len(ok)
            out.append({
                "x": v, "policy": name, "runs": len(sel), "feasible": n,
                "feasibility_rate": n / len(sel) if sel else float("nan"),
                "energy_mean_J": float(np.mean(ok)) if n else float("nan"),
                "energy_sem_J": float(np.std(ok, ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
                "energy_all_mean_J": float(np.mean([r["energy_J"] for r in sel])),
                "time_mean_s": float(np.mean([r["time_s"] for r in sel])),
            })
    return out


def sweep(x: str, *, values: Sequence | None = None,
          policies: Sequence[str] = ("igp", "rop", "aop", "lcp", "exact"), seeds: int = 20,
          config: GeneratorConfig | None = None,
          progress: Callable[[str], None] | None = None) -> SweepResult:
    """Run every policy on ``seeds`` random instances for each value of parameter ``x``.

    Parameters
    ----------
    x : str
        A key of :data:`AXES` (``power``, ``cpu``, ``deadline``, ``n``, ``k``).
    values : sequence, optional
        Values of the parameter in generator units (Hz for ``cpu``); the axis default if
        omitted.
    policies : sequence of str
        Policy names (keys of :data:`offload.policies.POLICIES`).
    seeds : int
        Instances per value, seeds ``0..seeds-1``.
    config : GeneratorConfig, optional
        Base parameters (the study's defaults if omitted).
    progress : callable, optional
        Called with one line of text after each value.
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
    res = SweepResult(x, values, list(objs), seeds, dict(base.__dict__))
    for v in values:
        cfg = base.replace(**{axis.field: type(getattr(base, axis.field))(v)})
        t0 = time.perf_counter()
        for seed in range(seeds):
            inst = generate(cfg, seed)
            for name, pol in objs.items():
                t = time.perf_counter()
                pl = pol.plan(inst, rng=np.random.default_rng(seed))
                res.rows.append({"x": v, "seed": seed, "policy": name, "m": pl.m,
                                 "workers": " ".join(map(str, pl.workers)),
                                 "energy_J": pl.energy, "success": pl.success,
                                 "feasible": pl.feasible, "time_s": time.perf_counter() - t})
        if progress is not None:
            summ = _summarize(res.rows, [v], res.policies)
            parts = [f"{s['policy']}={s['energy_mean_J']:.3f}J/{s['feasibility_rate']:.0%}"
                     for s in summ]
            progress(f"{x}={v * axis.scale:g}: {' '.join(parts)} "
                     f"({time.perf_counter() - t0:.1f}s)")
    res.summary = _summarize(res.rows, values, res.policies)
    return res


STYLE = {"igp": ("C0", "o"), "exact": ("k", "x"), "rop": ("C2", "^"), "aop": ("C3", "s"),
         "lcp": ("C1", "D")}


def plot_sweep(result: SweepResult, path) -> Path:
    """Plot energy (mean +- standard error over feasible runs) and feasibility rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = AXES[result.x]
    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    for name in result.policies:
        s = [r for r in result.summary if r["policy"] == name]
        xs = np.array([r["x"] for r in s], dtype=float) * axis.scale
        color, marker = STYLE.get(name, (None, "."))
        ls = ":" if name == "exact" else "-"
        ax_e.errorbar(xs, [r["energy_mean_J"] for r in s], yerr=[r["energy_sem_J"] for r in s],
                      color=color, marker=marker, ls=ls, ms=4, capsize=2, label=name.upper())
        ax_f.plot(xs, [r["feasibility_rate"] for r in s], color=color, marker=marker, ls=ls,
                  ms=4, label=name.upper())
    ax_e.set(xlabel=axis.label, ylabel="Energy over feasible runs (J)",
             title="Energy (mean ± s.e.)")
    ax_f.set(xlabel=axis.label, ylabel="Share meeting the budget", ylim=(-0.05, 1.05),
             title=f"Feasibility ({result.seeds} seeds)")
    for ax in (ax_e, ax_f):
        ax.grid(alpha=0.3)
    ax_e.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(result: SweepResult, outdir, stem: str | None = None,
                  command: str = "") -> list[Path]:
    """Write ``<stem>.csv`` (one row per run), ``<stem>.json`` (summary) and ``<stem>.png``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    stem = stem or f"sweep_{result.x}"
    csv_path, json_path = outdir / f"{stem}.csv", outdir / f"{stem}.json"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(result.rows[0]))
        writer.writeheader()
        for r in result.rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    doc = {"x": result.x, "values": result.values, "policies": result.policies,
           "seeds": result.seeds, "command": command, "config": result.config,
           "summary": _no_nan(result.summary)}
    json_path.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
    png = plot_sweep(result, outdir / f"{stem}.png")
    return [csv_path, json_path, png]


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
