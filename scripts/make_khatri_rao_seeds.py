"""Choose the Khatri-Rao seed of every real PolynomialCode with ka*kb <= 16 and n <= 32.

For each (n, ka, kb) this tries ``--seeds`` generator seeds and keeps the one whose worst
condition number over every cyclic window plus ``--count`` random erasure patterns is the
smallest. The selection patterns come from their own generator (seed 20261201), independent
of the patterns that ``python -m benchmarks.polynomial`` and the tests evaluate on. Writes
``coding/_khatri_rao_seeds.py``; a code outside the table picks its seed at construction
with :func:`coding.polynomial.best_seed` (16 seeds, 256 patterns).

    python scripts/make_khatri_rao_seeds.py            # ~15 min on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coding.polynomial import _gaussian_encoders  # noqa: E402

OUT = ROOT / "coding" / "_khatri_rao_seeds.py"


def worst_cond(n: int, ka: int, kb: int, seed: int, pats: np.ndarray) -> float:
    EA, EB = _gaussian_encoders(n, ka, kb, seed)
    k = ka * kb
    M = (EA[pats][:, :, None, :] * EB[pats][:, :, :, None]).reshape(len(pats), k, k)
    with np.errstate(all="ignore"):
        c = np.linalg.cond(M)
    return float(np.max(np.where(np.isfinite(c), c, np.inf)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--max-k", type=int, default=16)
    ap.add_argument("--max-n", type=int, default=32)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(20261201)
    table: dict[tuple[int, int, int], tuple[int, float]] = {}
    t0 = time.perf_counter()
    for ka in range(1, args.max_k + 1):
        for kb in range(1, args.max_k // ka + 1):
            k = ka * kb
            for n in range(k + 1, args.max_n + 1):
                wins = (np.arange(k)[None, :] + np.arange(n)[:, None]) % n
                rand = np.argsort(rng.random((args.count, n)), axis=1)[:, :k]
                pats = np.concatenate([wins, rand])
                best = min((worst_cond(n, ka, kb, s, pats), s) for s in range(args.seeds))
                table[(n, ka, kb)] = (best[1], best[0])
            print(f"  ka={ka} kb={kb} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                  flush=True)
    lines = ['"""Khatri-Rao generator seeds chosen by scripts/make_khatri_rao_seeds.py.',
             "",
             f"Made with --seeds {args.seeds} --count {args.count}; key (n, ka, kb), value the",
             "seed; the comment is its worst condition number on the selection patterns.",
             '"""', "", "SEEDS: dict[tuple[int, int, int], int] = {"]
    for (n, ka, kb), (seed, cond) in sorted(table.items()):
        lines.append(f"    ({n}, {ka}, {kb}): {seed},  # {cond:.1e}")
    lines.append("}")
    OUT.write_text("\n".join(lines) + "\n")
    worst = max(table.items(), key=lambda kv: kv[1][1])
    print(f"wrote {OUT} ({len(table)} codes); worst selection cond {worst[1][1]:.1e} at "
          f"(n, ka, kb) = {worst[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
