"""Certified worst cases of the real MDS and gradient codes over their erasure patterns.

    python scripts/certify_codes.py            # writes results/coding/certified.{json,md}
    python scripts/certify_codes.py --quick    # a few small codes, prints only

For every code in the grid the worst case is taken over **every** pattern when there are
at most 2.5e5 of them (``C(n, k)`` surviving shard sets for ``MDSCode(n, k)``, ``C(n, s)``
straggler sets for ``GradientCode(n, s)``). Beyond that it is the worst of 10^5 seeded
random patterns (every contiguous window included) followed by an adversarial local
search: from the 32 worst patterns found, swap one surviving index for one missing index
while that raises the objective, until no swap does. That is a lower bound on the true
worst case, found by a search that aims at it, not a proof.

Objectives: the 2-norm condition number of the surviving ``k x k`` submatrix (MDS; the
decoded error is at most about that times the shards' rounding), and ``max|a| * max|B|``
of the decoder weights ``a`` (gradient codes; the weights multiply the workers' rounding).
For the worst pattern found, the table also gives the measured relative decode error of a
random float64 payload (and, for MDS, of a float32 payload in the default float64 shards).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coding.gradient import GradientCode, batched_sum_weights  # noqa: E402
from coding.mds import MDSCode  # noqa: E402

EXHAUSTIVE = 250_000
SAMPLES = 100_000
STARTS = 32
MDS_GRID = [(n, k) for n in (6, 8, 12, 16, 20, 24, 32)
            for k in sorted({max(1, n // 4), n // 2, (3 * n) // 4, n - 1})] + [(23, 17)]
GRADIENT_GRID = [(n, s) for n in (8, 12, 16, 20, 24, 27, 32)
                 for s in sorted({1, 2, n // 4, n // 2, (3 * n) // 4, n - 2})]


def _chunks(patterns: np.ndarray, size: int):
    for i in range(0, len(patterns), size):
        yield patterns[i : i + size]


def _all_subsets(n: int, r: int) -> np.ndarray:
    return np.array(list(itertools.combinations(range(n), r)), dtype=np.int64).reshape(-1, r)


def _sampled(n: int, r: int, rng: np.random.Generator) -> np.ndarray:
    windows = np.sort((np.arange(n)[:, None] + np.arange(r)[None, :]) % n, axis=1)
    rand = np.sort(np.argsort(rng.random((SAMPLES, n)), axis=1)[:, :r], axis=1)
    return np.unique(np.vstack([windows, rand]), axis=0)


def _neighbours(pat: np.ndarray, n: int) -> np.ndarray:
    """Every pattern one swap (one index out, one in) away from ``pat``."""
    out_of = np.setdiff1d(np.arange(n), pat)
    rows = []
    for i in range(pat.size):
        for j in out_of:
            q = pat.copy()
            q[i] = j
            rows.append(np.sort(q))
    return np.array(rows, dtype=np.int64).reshape(-1, pat.size)


def _search(objective, n: int, r: int, rng: np.random.Generator):
    """Worst pattern and value: exhaustive, or sampled then locally maximized."""
    total = math.comb(n, r)
    if total <= EXHAUSTIVE:
        pats = _all_subsets(n, r)
        vals = np.concatenate([objective(c) for c in _chunks(pats, 4096)])
        i = int(np.argmax(vals))
        return pats[i], float(vals[i]), "exhaustive", total
    pats = _sampled(n, r, rng)
    vals = np.concatenate([objective(c) for c in _chunks(pats, 4096)])
    evaluated = len(pats)
    best_pat, best_val = pats[int(np.argmax(vals))], float(vals.max())
    for start in np.argsort(vals)[::-1][:STARTS]:
        pat, val = pats[start], float(vals[start])
        for _ in range(200):  # hill climb; each step strictly raises the objective
            nb = _neighbours(pat, n)
            nv = objective(nb)
            evaluated += len(nb)
            j = int(np.argmax(nv))
            if not nv[j] > val:
                break
            pat, val = nb[j], float(nv[j])
        if val > best_val:
            best_pat, best_val = pat, val
    return best_pat, best_val, f"{SAMPLES} samples + local search", evaluated


def certify_mds(n: int, k: int, rng: np.random.Generator) -> dict:
    code = MDSCode(n, k)
    G = np.asarray(code.generator, dtype=np.float64)

    def cond(pats):
        with np.errstate(all="ignore"):
            c = np.linalg.cond(G[pats])
        return np.where(np.isfinite(c), c, np.inf)

    t0 = time.time()
    pat, worst, method, evaluated = _search(cond, n, k, rng)
    x = rng.standard_normal((k, 256))
    idx = pat.tolist()
    e64 = np.linalg.norm(code.decode(code.encode(x)[idx], idx) - x) / np.linalg.norm(x)
    x32 = x.astype(np.float32)
    d32 = code.decode(code.encode(x32)[idx], idx, dtype=np.float32)
    e32 = np.linalg.norm(d32.astype(np.float64) - x32) / np.linalg.norm(x32.astype(np.float64))
    return {"n": n, "k": k, "patterns": math.comb(n, k), "evaluated": evaluated,
            "method": method, "worst_cond": worst, "worst_pattern": idx,
            "rel_error_f64": float(e64), "rel_error_f32_default_shards": float(e32),
            "seconds": time.time() - t0}


def certify_gradient(n: int, s: int, rng: np.random.Generator) -> dict:
    code = GradientCode(n, s)
    B = np.asarray(code.B)
    scale = float(np.abs(B).max())

    def amplification(pats):
        a = batched_sum_weights(B, pats)
        v = np.abs(a).max(axis=1) * scale
        return np.where(np.isfinite(v), v, np.inf)

    t0 = time.time()
    pat, worst, method, evaluated = _search(amplification, n, n - s, rng)
    g = rng.standard_normal((n, 256))
    done = pat.tolist()
    f = B @ g
    est = code.decoder(done) @ f[done]
    err = np.linalg.norm(est - g.sum(axis=0)) / np.linalg.norm(g.sum(axis=0))
    return {"n": n, "s": s, "patterns": math.comb(n, s), "evaluated": evaluated,
            "method": method, "worst_amplification": worst, "worst_finished": done,
            "rel_error_f64": float(err), "seconds": time.time() - t0}


def _md(mds: list[dict], grad: list[dict]) -> str:
    lines = ["### Real MDSCode: worst condition number over surviving sets", "",
             "| (n,k) | patterns | method | worst cond | f64 error there | f32 payload error "
             "(float64 shards) |", "|---|---:|---|---:|---:|---:|"]
    lines += [f"| ({r['n']},{r['k']}) | {r['patterns']} | {r['method']} | {r['worst_cond']:.3g} "
              f"| {r['rel_error_f64']:.1e} | {r['rel_error_f32_default_shards']:.1e} |"
              for r in mds]
    lines += ["", "### Cyclic GradientCode: worst decoder amplification over finished sets", "",
              "| (n,s) | patterns | method | worst max abs(a) * max abs(B) | f64 error there |",
              "|---|---:|---|---:|---:|"]
    lines += [f"| ({r['n']},{r['s']}) | {r['patterns']} | {r['method']} | "
              f"{r['worst_amplification']:.3g} | {r['rel_error_f64']:.1e} |" for r in grad]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small codes only, no files written")
    args = ap.parse_args(argv)
    mds_grid = [(8, 4), (12, 8), (16, 8)] if args.quick else MDS_GRID
    grad_grid = [(8, 2), (12, 3)] if args.quick else GRADIENT_GRID
    rng = np.random.default_rng(0)
    mds, grad = [], []
    for n, k in mds_grid:
        mds.append(certify_mds(n, k, rng))
        print(f"MDS ({n},{k}): worst cond {mds[-1]['worst_cond']:.3g} ({mds[-1]['method']}, "
              f"{mds[-1]['seconds']:.1f} s)", file=sys.stderr, flush=True)
    for n, s in grad_grid:
        if s < 1 or s >= n:
            continue
        grad.append(certify_gradient(n, s, rng))
        print(f"gradient ({n},{s}): worst {grad[-1]['worst_amplification']:.3g}, error "
              f"{grad[-1]['rel_error_f64']:.1e} ({grad[-1]['method']}, "
              f"{grad[-1]['seconds']:.1f} s)", file=sys.stderr, flush=True)
    md = _md(mds, grad)
    print(md)
    if not args.quick:
        out = Path(__file__).resolve().parents[1] / "results" / "coding"
        out.mkdir(parents=True, exist_ok=True)
        (out / "certified.json").write_text(json.dumps({"mds": mds, "gradient": grad},
                                                       indent=1) + "\n")
        (out / "certified.md").write_text("# Certified worst cases\n\nCommand: "
                                          "`python scripts/certify_codes.py`\n\n" + md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
