"""Time gfp_matmul against float64 BLAS ``A @ B`` and galois's own GF(p) matmul.

Usage: ``.venv/bin/python scripts/bench_gfp_matmul.py [--sizes 512 1024] [--no-galois]``

Prints one line per (size, p) with the best of several runs and the ratios. The gfp
timing includes the conversion from and to int64 (the inputs are int64 arrays).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from coding.gfp import gfp_matmul, matmul_plan


def _median_time(fn, repeats: int) -> float:
    fn()  # warm up (BLAS threads, galois JIT)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times))  # the least disturbed run on a shared machine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--primes", type=int, nargs="+", default=[65521, 2**25 - 39])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-galois", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'n':>5} {'p':>11} {'plan':>14} {'blas ms':>8} {'gfp ms':>8} {'gfp/blas':>8}"
          f" {'galois ms':>10} {'galois/gfp':>10}")
    for n in args.sizes:
        Af = rng.standard_normal((n, n))
        Bf = rng.standard_normal((n, n))
        t_blas = _median_time(lambda Af=Af, Bf=Bf: Af @ Bf, args.repeats)
        for p in args.primes:
            A = rng.integers(0, p, (n, n), dtype=np.int64)
            B = rng.integers(0, p, (n, n), dtype=np.int64)
            t_gfp = _median_time(lambda A=A, B=B, p=p: gfp_matmul(A, B, p), args.repeats)
            plan = matmul_plan(p, n)
            desc = f"{plan.limbs_a}x{plan.limbs_b}l/{plan.n_chunks}c"
            line = (f"{n:>5} {p:>11} {desc:>14} {t_blas * 1e3:>8.1f} {t_gfp * 1e3:>8.1f}"
                    f" {t_gfp / t_blas:>8.2f}")
            if not args.no_galois:
                from coding.gfp import galois_field

                F = galois_field(p)
                GA, GB = F(A), F(B)
                t_gal = _median_time(lambda GA=GA, GB=GB: GA @ GB, max(1, args.repeats // 3))
                assert np.array_equal(np.asarray(GA @ GB).view(np.ndarray), gfp_matmul(A, B, p))
                line += f" {t_gal * 1e3:>10.1f} {t_gal / t_gfp:>10.1f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
