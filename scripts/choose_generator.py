"""Choose the real MDS generator by measurement.

For every candidate in :data:`coding.generators.CANDIDATES` and every ``(n, k)`` with
``1 <= k < n <= 32`` this builds the systematic generator and takes the worst 2-norm
condition number of its ``k x k`` submatrices over :func:`coding.generators.erasure_patterns`
(every k-subset when there are at most 500, else all cyclic contiguous windows, the
all-parity pattern and random k-subsets, 500 patterns in all; the random ones come from a
different seed than the one the ``*-best`` kinds select with). It prints one table row per
candidate and names the winner: the smallest worst case over all ``(n, k)``.

For the winner it then decodes payloads (4096 columns, standard normal) at the worst
pattern of every ``(n, k)``, and at every sampled pattern of a few sizes, and prints the
relative Frobenius error ``||x_hat - x|| / ||x||`` for float64 and float32 payloads (float32
encoded with float32 or float64 arithmetic, decoded in float64 or float32).

Usage::

    .venv/bin/python scripts/choose_generator.py            # full table (about a minute)
    .venv/bin/python scripts/choose_generator.py --nmax 16  # quicker
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coding.generators import (  # noqa: E402
    CANDIDATES,
    erasure_patterns,
    real_generator,
    submatrix_conditions,
)

SHOW = [(12, 8), (16, 8), (16, 12), (32, 8), (32, 16), (32, 24), (32, 31)]


def worst_table(nmax: int, count: int) -> dict[str, dict[tuple[int, int], float]]:
    table: dict[str, dict[tuple[int, int], float]] = {}
    pats = {
        (n, k): erasure_patterns(n, k, count=count, rng=np.random.default_rng(12345))
        for n in range(2, nmax + 1)
        for k in range(1, n)
    }
    for kind in CANDIDATES:
        t0 = time.perf_counter()
        table[kind] = {
            nk: float(submatrix_conditions(real_generator(*nk, kind=kind), p).max())
            for nk, p in pats.items()
        }
        print(f"  measured {kind:16s} in {time.perf_counter() - t0:5.1f} s", file=sys.stderr)
    return table


def rel_err(xh: np.ndarray, x: np.ndarray) -> float:
    return float(np.linalg.norm(xh - x) / np.linalg.norm(x))


def decode_errors(G: np.ndarray, k: int, pats: np.ndarray, rng) -> dict[str, np.ndarray]:
    """Relative decode errors at each pattern for the payload/arithmetic variants."""
    x64 = rng.standard_normal((k, 4096))
    x32 = x64.astype(np.float32)
    y64 = G @ x64
    y32_enc64 = (G @ x32.astype(np.float64)).astype(np.float32)
    y32_enc32 = G.astype(np.float32) @ x32
    out: dict[str, list[float]] = {
        "f64": [], "f32 enc64 dec64": [], "f32 enc32 dec64": [], "f32 enc32 dec32": []
    }
    for p in pats:
        inv = np.linalg.inv(G[p])
        out["f64"].append(rel_err(inv @ y64[p], x64))
        out["f32 enc64 dec64"].append(rel_err(inv @ y32_enc64[p].astype(np.float64), x32))
        out["f32 enc32 dec64"].append(rel_err(inv @ y32_enc32[p].astype(np.float64), x32))
        out["f32 enc32 dec32"].append(
            rel_err((inv.astype(np.float32) @ y32_enc32[p]).astype(np.float64), x32)
        )
    return {key: np.array(v) for key, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nmax", type=int, default=32)
    ap.add_argument("--count", type=int, default=500)
    args = ap.parse_args()

    table = worst_table(args.nmax, args.count)
    show = [nk for nk in SHOW if nk[0] <= args.nmax]
    head = "".join(f"{f'({n},{k})':>10}" for n, k in show)
    print(f"\nWorst condition number of any sampled k x k submatrix ({args.count} patterns)")
    print(f"{'generator':18s}{head}{'max all':>10}{'<=1e4':>8}{'<=1e6':>8}")
    for kind, row in table.items():
        vals = np.array(list(row.values()))
        cells = "".join(f"{row[nk]:10.1e}" for nk in show)
        print(f"{kind:18s}{cells}{vals.max():10.1e}{(vals <= 1e4).sum():>4}/{vals.size:<3}"
              f"{(vals <= 1e6).sum():>4}/{vals.size:<3}")
    winner = min(table, key=lambda kind: max(table[kind].values()))
    print(f"\nwinner: {winner}  (smallest worst case over all (n, k) with n <= {args.nmax})")

    rng = np.random.default_rng(7)
    worst = {key: (0.0, None) for key in
             ("f64", "f32 enc64 dec64", "f32 enc32 dec64", "f32 enc32 dec32")}
    for (n, k), _ in table[winner].items():
        G = real_generator(n, k, kind=winner)
        p = erasure_patterns(n, k, count=args.count, rng=np.random.default_rng(12345))
        pw = p[np.argmax(submatrix_conditions(G, p))][None, :]
        for key, e in decode_errors(G, k, pw, rng).items():
            if e.max() > worst[key][0]:
                worst[key] = (float(e.max()), (n, k))
    print("\nDecoded relative error at the worst pattern, worst over all (n, k):")
    for key, (e, nk) in worst.items():
        print(f"  {key:18s} {e:9.2e}  at (n, k) = {nk}")

    print("\nDecoded relative error over all sampled patterns (median / 99th pct / max):")
    for n, k in show:
        G = real_generator(n, k, kind=winner)
        p = erasure_patterns(n, k, count=args.count, rng=np.random.default_rng(12345))
        errs = decode_errors(G, k, p, rng)
        cells = "  ".join(
            f"{key}: {np.median(e):.1e}/{np.quantile(e, 0.99):.1e}/{e.max():.1e}"
            for key, e in errs.items()
        )
        frac = (errs["f32 enc64 dec64"] <= 1e-6).mean()
        print(f"  ({n},{k}) {cells}  f32<=1e-6: {100 * frac:.0f}%")


if __name__ == "__main__":
    main()
