"""Measure a trace of matrix-product times for the offload ``trace`` straggler law.

    python scripts/measure_matmul_trace.py --out tests/data/offload/matmul_times.txt

Times ``--runs`` products of two ``--size`` x ``--size`` float64 matrices, one after the
other, on this machine as it is (shared machines straggle; that is the point), and writes
one time in seconds per line under a comment header that records the command and machine.
The offload model normalizes a trace to mean 1 and scales it per worker
(:mod:`offload.world`), so only the shape of the distribution matters.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    a, b = rng.random((2, args.size, args.size))
    a @ b  # warm-up
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = [f"# {args.runs} products of {args.size}x{args.size} float64 matrices, seconds each",
            f"# command: python scripts/measure_matmul_trace.py --out {args.out} "
            f"--runs {args.runs} --size {args.size}",
            f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, shared and loaded"]
    out.write_text("\n".join(head + [f"{t:.6e}" for t in times]) + "\n")
    t = np.array(times)
    print(f"wrote {out}: median {np.median(t) * 1e3:.2f} ms, p99 {np.quantile(t, 0.99) * 1e3:.2f} ms,"
          f" max {t.max() * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
