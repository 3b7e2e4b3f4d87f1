"""Offloading benchmark: IGP against the exact optimum, and IGP's run time.

    python -m benchmarks.offload            # 300 instances at W=15; writes results/offload/
    python -m benchmarks.offload --quick    # 40 instances, fewer timing repeats

Instances: the generator's defaults (K=6, N=10, W=15, ...) with four parameters drawn per
instance, P ~ U[0.1, 1.5] W, f_w ~ U[1.5, 2.7] GHz, T ~ U[0.6, 1.2] s and eps ~ U[0.01, 0.1],
so that the optimum ranges from all-offload through mixed to local-first placements and some
instances are infeasible. The optimum comes from
:class:`offload.policies.Exact` (branch-and-bound). Targets (the issue's acceptance): IGP
optimal on >= 99 % of feasible instances with a worst gap <= 1 %; IGP <= 100 ms at W=15 and
<= 5 s at W=200.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks._common import machine_info, markdown_table, progress, write_results
from offload.generator import GeneratorConfig, generate
from offload.policies import IGP, Exact

TARGET_SHARE, TARGET_WORST = 0.99, 0.01
TARGET_TIME = {15: 0.1, 200: 5.0}


def instance(i: int, W: int = 15):
    """Instance ``i`` of the benchmark set: seed ``i``, random ``P`` and ``f_w``."""
    rng = np.random.default_rng([2024, i])
    cfg = GeneratorConfig(W=W, power=float(rng.uniform(0.1, 1.5)),
                          f_w=float(rng.uniform(1.5e9, 2.7e9)),
                          deadline=float(rng.uniform(0.6, 1.2)),
                          eps=float(rng.uniform(0.01, 0.1)))
    return generate(cfg, seed=i)


def bench_gap(n: int) -> dict:
    """IGP against Exact on ``n`` instances at W=15."""
    igp, exact = IGP(), Exact()
    gaps, feasible, agree_feas, mixed, t_igp, t_exact = [], 0, 0, 0, [], []
    for i in range(n):
        inst = instance(i)
        t0 = time.perf_counter()
        a = igp.plan(inst, rng=i)
        t1 = time.perf_counter()
        b = exact.plan(inst)
        t2 = time.perf_counter()
        t_igp.append(t1 - t0)
        t_exact.append(t2 - t1)
        agree_feas += a.feasible == b.feasible
        if b.feasible:
            feasible += 1
            mixed += 0 < b.m < inst.m_max
            gaps.append((a.energy - b.energy) / b.energy if a.feasible else np.inf)
        if (i + 1) % 50 == 0:
            progress(f"gap: {i + 1}/{n} instances")
    gaps = np.array(gaps)
    optimal = int(np.count_nonzero(gaps <= 1e-9))
    return {"instances": n, "feasible": feasible, "feasibility_agrees": agree_feas,
            "optimal_m_strictly_between_0_and_m_max": int(mixed), "igp_optimal": optimal,
            "share_optimal": optimal / feasible if feasible else float("nan"),
            "worst_gap": float(gaps.max()) if feasible else float("nan"),
            "mean_gap": float(gaps.mean()) if feasible else float("nan"),
            "igp_time_mean_s": float(np.mean(t_igp)), "igp_time_max_s": float(np.max(t_igp)),
            "exact_time_mean_s": float(np.mean(t_exact)),
            "exact_time_max_s": float(np.max(t_exact))}


def bench_time(workers=(15, 50, 200), count: int = 10) -> list[dict]:
    """IGP's wall time per plan (after a warm-up) on ``count`` instances per ``W``."""
    rows = []
    igp = IGP()
    igp.plan(instance(0), rng=0)  # warm-up: imports and caches
    for W in workers:
        ts, ms = [], []
        for i in range(count):
            inst = instance(i, W)
            _ = inst.model
            t0 = time.perf_counter()
            pl = igp.plan(inst, rng=i)
            ts.append(time.perf_counter() - t0)
            ms.append(pl.m)
        rows.append({"W": W, "instances": count, "mean_s": float(np.mean(ts)),
                     "median_s": float(np.median(ts)), "max_s": float(np.max(ts)),
                     "target_s": TARGET_TIME.get(W), "mean_m": float(np.mean(ms))})
        progress(f"time: W={W} mean {np.mean(ts) * 1e3:.1f} ms, max {np.max(ts) * 1e3:.1f} ms")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 instances, 3 timing instances")
    ap.add_argument("--instances", type=int, default=300)
    args = ap.parse_args(argv)
    n = 40 if args.quick else args.instances
    gap = bench_gap(n)
    times = bench_time(count=3 if args.quick else 10)
    ok_gap = gap["share_optimal"] >= TARGET_SHARE and gap["worst_gap"] <= TARGET_WORST
    ok_time = all(r["max_s"] <= r["target_s"] for r in times if r["target_s"])
    payload = {"machine": machine_info(), "gap": gap, "time": times,
               "targets": {"share_optimal": TARGET_SHARE, "worst_gap": TARGET_WORST,
                           "time_s": TARGET_TIME},
               "meets_targets": {"gap": bool(ok_gap), "time": bool(ok_time)}}
    md = [
        "# Offloading benchmark", "",
        f"Command: `python -m benchmarks.offload{' --quick' if args.quick else ''}`. "
        f"Machine: {payload['machine'].get('cpu', '?')}, {payload['machine']['cpus']} CPUs.", "",
        "## IGP against Exact (W=15; P, f_w, T, eps drawn per instance)", "",
        markdown_table(
            ["instances", "feasible", "optimum mixed", "IGP optimal", "share optimal",
             "worst gap", "mean gap", "IGP mean (s)", "Exact mean (s)"],
            [[gap["instances"], gap["feasible"], gap["optimal_m_strictly_between_0_and_m_max"],
              gap["igp_optimal"], gap["share_optimal"], gap["worst_gap"], gap["mean_gap"],
              gap["igp_time_mean_s"], gap["exact_time_mean_s"]]]), "",
        f"Target: share optimal >= {TARGET_SHARE:.0%}, worst gap <= {TARGET_WORST:.0%}: "
        f"{'met' if ok_gap else 'NOT met'}.", "",
        "## IGP run time per plan", "",
        markdown_table(["W", "instances", "mean (s)", "median (s)", "max (s)", "target (s)"],
                       [[r["W"], r["instances"], r["mean_s"], r["median_s"], r["max_s"],
                         r["target_s"] if r["target_s"] else "-"] for r in times]), "",
        f"Target (max over instances): {'met' if ok_time else 'NOT met'}.",
    ]
    folder = write_results("offload", payload, "\n".join(md))
    print("\n".join(md))
    progress(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
