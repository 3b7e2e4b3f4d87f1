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


def render(table: dict[tuple[int, int, int], tuple[int, float]], seeds: int, count: int) -> str:
    """The module text: per n, ``KAxKB:SEED@COND`` entries wrapped to the line length."""
    lines = ['"""Khatri-Rao generator seeds chosen by scripts/make_khatri_rao_seeds.py.',
             "",
             f"Made with --seeds {seeds} --count {count}. One entry per (n, ka, kb): ``KAxKB:SEED@COND``",
             "under ``n``, COND being the seed's worst condition number on the selection patterns.",
             '"""', "", "_TABLE: dict[int, str] = {"]
    for n in sorted({key[0] for key in table}):
        items = [f"{ka}x{kb}:{s}@{c:.1e}" for (m, ka, kb), (s, c) in sorted(table.items()) if m == n]
        chunks = [items[0]]
        for item in items[1:]:
            if len(chunks[-1]) + len(item) + 1 > 84:
                chunks.append(item)
            else:
                chunks[-1] += " " + item
        lines.append(f"    {n}: (")
        lines += [f'        "{c} "' for c in chunks[:-1]]
        lines.append(f'        "{chunks[-1]}"),')
    lines += ["}", ""]
    text = Path(OUT).read_text()  # keep the parser that follows the table
    return "\n".join(lines) + "\n" + text[text.index("def _parse("):]


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
    OUT.write_text(render(table, args.seeds, args.count))
    worst = max(table.items(), key=lambda kv: kv[1][1])
    print(f"wrote {OUT} ({len(table)} codes); worst selection cond {worst[1][1]:.1e} at "
          f"(n, ka, kb) = {worst[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
