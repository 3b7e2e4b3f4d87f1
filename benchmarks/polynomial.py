"""Choose the real construction of PolynomialCode by measurement.

Every real code for ``C = A @ B`` with ``A`` cut into ``ka`` row blocks and ``B`` into
``kb`` column blocks gives worker ``i`` the shares ``sum_j EA[i, j] A_j`` and
``sum_l EB[i, l] B_l``; its product is ``sum_{j,l} EA[i, j] EB[i, l] A_j B_l``. So decoding
from a set ``S`` of ``ka*kb`` workers inverts the Khatri-Rao matrix ``M_S`` whose row ``i``
is ``kron``-like ``EA[i, j] * EB[i, l]``, and ``cond(M_S)`` bounds the loss of digits.

Candidates (all on the same erasure patterns):

- ``monomial``: kofn's old basis, ``x^j`` and ``x^(l*ka)`` on Chebyshev nodes
  (Yu, Maddah-Ali and Avestimehr 2017).
- ``chebyshev``: the orthogonal-polynomial basis ``T_j`` and ``T_(l*ka)`` on Chebyshev nodes
  (Fahim and Cadambe, "Numerically stable polynomially coded computing", 2019).
- ``unit-circle``: monomials on the n-th roots of unity, the conditioning of the
  rotation-matrix embedding of Ramamoorthy and Tang (2019), emulated in complex arithmetic.
- ``khatri-rao``: i.i.d. Gaussian ``EA`` and ``EB`` (Subramaniam, Heidarzadeh and
  Narayanan, "Random Khatri-Rao-product codes for numerically-stable distributed matrix
  multiplication", 2019), as built by :class:`coding.PolynomialCode` (seed search included).

Patterns: every contiguous and cyclic window of ``ka*kb`` workers plus ``--count`` random
subsets (seeded). For each (ka, kb, n) the script records the worst condition number and
the worst relative decode error (Frobenius norm, float64) over the 8 worst-conditioned
patterns and every window.

    python -m benchmarks.polynomial                  # the candidates table, ka*kb <= 16, n <= 32
    python -m benchmarks.polynomial --all-n --candidates khatri-rao   # every n, the chosen code
    python -m benchmarks.polynomial --count 200 --max-n 24            # quicker

``python -m benchmarks.coding`` shows the same candidates at the worst splits of ka*kb = 16
(:func:`worst_splits_table`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from coding.polynomial import PolynomialCode

CANDIDATES = ("monomial", "chebyshev", "unit-circle", "khatri-rao")


def encoders(name: str, n: int, ka: int, kb: int) -> tuple[np.ndarray, np.ndarray]:
    """``(EA, EB)`` of one candidate, shapes (n, ka) and (n, kb)."""
    if name == "unit-circle":
        z = np.exp(2j * np.pi * np.arange(n) / n)[:, None]
        return z ** np.arange(ka), z ** (ka * np.arange(kb))
    if name in CANDIDATES:
        return PolynomialCode(n, ka, kb, construction=name).encoders()
    raise ValueError(f"Argument 'name' must be one of {CANDIDATES}, not {name!r}.")


def patterns(n: int, k: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Windows (contiguous and cyclic) plus ``count`` random k-subsets, shape (P, k)."""
    wins = [(np.arange(k) + s) % n for s in range(n)]
    rand = [np.sort(rng.choice(n, k, replace=False)) for _ in range(count)]
    return np.unique(np.array(wins + rand), axis=0)


def decode_error(name, EA, EB, idx, ka, kb, rng) -> float:
    """Relative error of decoding ``A @ B`` from the workers ``idx`` (float64 BLAS)."""
    rows, d, cols = 5, 20, 5
    if name != "unit-circle":  # kofn's own encode, worker product and decode
        code = PolynomialCode(EA.shape[0], ka, kb, construction=name)
        A, B = rng.standard_normal((ka * rows, d)), rng.standard_normal((d, kb * cols))
        As, Bs = code.encode(A, B)
        R = np.stack([code.worker_product(As[i], Bs[i]) for i in idx])
        C, ref = code.decode(R, list(idx), shape=(ka * rows, kb * cols)), A @ B
        return float(np.linalg.norm(C - ref) / np.linalg.norm(ref))
    A = rng.standard_normal((ka, rows, d))
    B = rng.standard_normal((kb, d, cols))
    As = np.einsum("ij,jrd->ird", EA[idx], A)
    Bs = np.einsum("il,ldc->idc", EB[idx], B)
    R = np.matmul(As, Bs)  # what the workers compute
    M = (EA[idx][:, :, None] * EB[idx][:, None, :]).transpose(0, 2, 1).reshape(len(idx), -1)
    blocks = np.linalg.solve(M, R.reshape(len(idx), -1)).reshape(kb, ka, rows, cols)
    ref = np.einsum("jrd,ldc->ljrc", A, B)
    return float(np.linalg.norm(blocks - ref) / np.linalg.norm(ref))


def measure(name, n, ka, kb, count, seed=0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    k = ka * kb
    EA, EB = encoders(name, n, ka, kb)
    pats = patterns(n, k, count, rng)
    M = (EA[pats][:, :, :, None] * EB[pats][:, :, None, :]).reshape(len(pats), k, k)
    with np.errstate(all="ignore"):
        conds = np.linalg.cond(M)
    conds = np.where(np.isfinite(conds), conds, np.inf)
    worst = np.argsort(conds)[-8:]
    wins = np.arange(min(n, len(pats)))
    check = np.unique(np.concatenate([worst, wins]))
    errs = []
    for j in check:
        try:
            errs.append(decode_error(name, EA, EB, pats[j], ka, kb, rng))
        except np.linalg.LinAlgError:
            errs.append(np.inf)
    return float(conds.max()), float(max(errs))


def worst_splits_table(ns: tuple[int, ...] = (20, 24, 32), count: int = 2000) -> str:
    """Markdown: every candidate at ka*kb = 16 (splits 4x4, 2x8, 8x2) for each n in ``ns``."""
    lines = [f"### Real polynomial codes: candidates side by side (ka*kb = 16, all windows + "
             f"{count} random patterns, float64)", "",
             "Worst condition number / worst relative error. `khatri-rao` is kofn's default "
             "(`PolynomialCode`); `unit-circle` needs complex shares (twice the bytes and four "
             "real products per worker unless embedded as rotations). Every n and split: "
             "`python -m benchmarks.polynomial` (docs/matmul.md).", "",
             "| ka x kb | n | " + " | ".join(CANDIDATES) + " |",
             "|---|---|" + "---|" * len(CANDIDATES)]
    for n in ns:
        for ka, kb in ((4, 4), (2, 8), (8, 2)):
            cells = [measure(m, n, ka, kb, count) for m in CANDIDATES]
            lines.append(f"| {ka}x{kb} | {n} | " +
                         " | ".join(f"{c:.1e} / {e:.1e}" for c, e in cells) + " |")
    return "\n".join(lines)


def _shown(k: int, n: int) -> bool:
    return n > k and n in (k + 1, k + 4, 16, 20, 24, 28, 32)


def splits(max_k: int):
    for ka in range(1, max_k + 1):
        for kb in range(1, max_k // ka + 1):
            yield ka, kb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.polynomial",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000, help="random patterns per (ka, kb, n)")
    ap.add_argument("--max-k", type=int, default=16)
    ap.add_argument("--max-n", type=int, default=32)
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--all-n", action="store_true",
                    help="every n in (ka*kb, max-n], not only the n the table shows")
    ap.add_argument("--out", type=Path, default=None, help="markdown table (default: stdout)")
    args = ap.parse_args(argv)
    names = args.candidates.split(",")
    # worst[name][(k, n)] = (cond, err), the worst over every (ka, kb) split of k.
    worst: dict[str, dict[tuple[int, int], tuple[float, float]]] = {m: {} for m in names}
    t0 = time.perf_counter()
    for ka, kb in splits(args.max_k):
        k = ka * kb
        if k == 1:
            continue
        for n in range(k + 1, args.max_n + 1):
            if not (args.all_n or _shown(k, n)):
                continue
            for name in names:
                c, e = measure(name, n, ka, kb, args.count)
                old = worst[name].get((k, n), (0.0, 0.0))
                worst[name][(k, n)] = (max(old[0], c), max(old[1], e))
        print(f"  ka={ka} kb={kb} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
              flush=True)
    lines = [f"Worst over every (ka, kb) split, all windows + {args.count} random patterns; "
             "cond / relative error (float64).", "",
             "| ka*kb | n | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for k, n in sorted(worst[names[0]]):
        if not _shown(k, n):
            continue
        cells = [f"{worst[m][(k, n)][0]:.1e} / {worst[m][(k, n)][1]:.1e}" for m in names]
        lines.append(f"| {k} | {n} | " + " | ".join(cells) + " |")
    lines.append("")
    for m in names:
        c = max(v[0] for v in worst[m].values())
        e = max(v[1] for v in worst[m].values())
        which = "every n" if args.all_n else "the n shown"
        lines.append(f"- `{m}`: worst over all ka*kb <= {args.max_k}, {which} <= {args.max_n}: "
                     f"cond {c:.1e}, error {e:.1e}")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
