"""Coding benchmark: MDS throughput against memcpy, GF(p) matmul against BLAS and galois,
and the accuracy of the real-valued MDS codes.

    python -m benchmarks.coding --quick   # what `make run` prints (about a minute)
    python -m benchmarks.coding           # full mode: writes results/coding/coding.{json,md}

Every ratio is measured side by side in one run on the same buffers; each time is the best
of several repetitions after a warm-up.
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np

from benchmarks._common import best_time, machine_info, markdown_table, progress, write_results
from benchmarks.polynomial import worst_splits_table
from coding.gfp import gfp_matmul
from coding.mds import MDSCode

MIB = 1 << 20
MDS_SHAPES = ((4, 6), (8, 12), (16, 20))
TARGET_ENCODE = 0.6  # x memcpy at (8, 12)
TARGET_DECODE = 0.4
TARGET_GFP = 3.5  # x float64 BLAS at p = 2^25 - 39
PRIMES = (65521, 2**25 - 39)


def _payload(nbytes: int, k: int, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    cols = nbytes // (k * np.dtype(dtype).itemsize)
    return rng.standard_normal((k, cols)).astype(dtype)


def bench_mds(payload_mib: int, repeat: int, shapes=None) -> list[dict]:
    """Encode and worst-case decode throughput against a numpy copy of the same bytes."""
    rng = np.random.default_rng(0)
    rows = []
    # (payload dtype, float32 shards?): float32 payloads in float32 shards (opt-in), in
    # float64 shards (the default, decoded straight into float32 rows), and float64.
    for dtype, f32 in ((np.float32, True), (np.float32, False), (np.float64, False)):
        for k, n in shapes or MDS_SHAPES:
            shards_name = "float32" if f32 else "float64"
            progress(f"MDS ({k},{n}) {np.dtype(dtype).name} payload, {shards_name} shards, "
                     f"{payload_mib} MiB")
            x = _payload(payload_mib * MIB, k, dtype, rng)
            nbytes = x.nbytes
            dst = np.empty_like(x)
            t_copy = best_time(lambda x=x, dst=dst: np.copyto(dst, x), repeat=repeat)
            code = MDSCode(n, k, float32_shards=f32)
            coded = code.encode(x)
            # memcpy copies into a preallocated buffer, so encode and decode write into
            # preallocated outputs too; the allocating call is reported beside it.
            t_enc = best_time(lambda code=code, x=x, o=coded: code.encode(x, out=o), repeat=repeat)
            t_enc_alloc = best_time(lambda code=code, x=x: code.encode(x), repeat=repeat)
            # Worst case: the n-k lost rows are systematic ones (all of them if n-k >= k),
            # so every message row except the survivors has to be recomputed.
            lost = list(range(n - k))
            keep = [i for i in range(n) if i not in lost][:k]
            shards = np.ascontiguousarray(coded[keep])
            out = code.decode(shards, keep, dtype=dtype)
            err = float(np.max(np.abs(out.astype(np.float64) - x)) / np.max(np.abs(x)))
            t_dec = best_time(lambda code=code, s=shards, i=keep, o=out: code.decode(s, i, out=o),
                              repeat=repeat)
            gbs = lambda t, nb=nbytes: nb / t / 1e9  # noqa: E731
            rows.append(
                {
                    "dtype": np.dtype(dtype).name,
                    "shards": shards_name,
                    "decode_s": t_dec,
                    "k": k,
                    "n": n,
                    "payload_bytes": nbytes,
                    "memcpy_GBps": gbs(t_copy),
                    "encode_GBps": gbs(t_enc),
                    "encode_alloc_GBps": gbs(t_enc_alloc),
                    "decode_GBps": gbs(t_dec),
                    "encode_x_memcpy": t_copy / t_enc,
                    "encode_alloc_x_memcpy": t_copy / t_enc_alloc,
                    "decode_x_memcpy": t_copy / t_dec,
                    "decode_rel_error": err,
                    "lost_rows": lost,
                }
            )
            del x, dst, coded, shards, out
    return rows


def bench_gfp(sizes: tuple[int, ...], with_galois: bool, repeat: int) -> list[dict]:
    """gfp_matmul against float64 BLAS on the same shapes, and against galois's matmul."""
    import galois

    rng = np.random.default_rng(1)
    rows = []
    for p in PRIMES:
        field = galois.GF(p) if with_galois else None
        for size in sizes:
            progress(f"gfp_matmul {size}x{size} p={p}")
            a = rng.integers(0, p, (size, size), dtype=np.int64)
            b = rng.integers(0, p, (size, size), dtype=np.int64)
            af, bf = a.astype(np.float64), b.astype(np.float64)
            t_blas = best_time(lambda af=af, bf=bf: af @ bf, repeat=repeat)
            t_ours = best_time(lambda a=a, b=b, p=p: gfp_matmul(a, b, p), repeat=repeat)
            row = {
                "p": p,
                "size": size,
                "float64_blas_s": t_blas,
                "gfp_matmul_s": t_ours,
                "gfp_x_blas": t_ours / t_blas,
            }
            if field is not None:
                ga, gb = field(a), field(b)
                t_gal = best_time(lambda ga=ga, gb=gb: ga @ gb, repeat=1)
                exact = np.array_equal(np.asarray(ga @ gb, dtype=np.int64), gfp_matmul(a, b, p))
                row.update({"galois_s": t_gal, "galois_x_blas": t_gal / t_blas,
                            "matches_galois": bool(exact)})
            rows.append(row)
    return rows


def _patterns(n: int, k: int, rng: np.random.Generator, samples: int) -> list[tuple[int, ...]]:
    """Every k-subset if there are few, else all contiguous windows plus random subsets."""
    from math import comb

    if comb(n, k) <= samples:
        return list(itertools.combinations(range(n), k))
    pats = {tuple(sorted((s + i) % n for i in range(k))) for s in range(n)}
    while len(pats) < samples:
        pats.add(tuple(sorted(rng.choice(n, k, replace=False).tolist())))
    return sorted(pats)


def bench_accuracy(ns: tuple[int, ...], samples: int) -> list[dict]:
    """Worst relative decode error (float64 and float32) and worst condition number."""
    rng = np.random.default_rng(2)
    rows = []
    for n in ns:
        progress(f"accuracy n={n}")
        for k in sorted({max(1, n // 4), n // 2, (3 * n) // 4, n - 1} - {0}):
            code = MDSCode(n, k)
            code32 = MDSCode(n, k, float32_shards=True)
            g = np.asarray(code.generator, dtype=np.float64)
            pats = _patterns(n, k, rng, samples)
            conds = np.linalg.cond(np.stack([g[list(p)] for p in pats]))
            x64 = rng.standard_normal((k, 64))
            x32 = x64.astype(np.float32)
            # float32 payloads two ways: float32 shards (half the bytes), and float64 shards
            # (the payload widened before encoding, then the decoded rows cast back).
            c64, c32, c32w = code.encode(x64), code32.encode(x32), code.encode(x32)
            e64 = e32 = e32w = 0.0
            ref32 = np.linalg.norm(x32.astype(np.float64))
            for p in pats:
                idx = list(p)
                d64 = code.decode(c64[idx], idx)
                d32 = code32.decode(c32[idx], idx).astype(np.float64)
                d32w = code.decode(c32w[idx], idx, dtype=np.float32).astype(np.float64)
                e64 = max(e64, float(np.linalg.norm(d64 - x64) / np.linalg.norm(x64)))
                e32 = max(e32, float(np.linalg.norm(d32 - x32) / ref32))
                e32w = max(e32w, float(np.linalg.norm(d32w - x32) / ref32))
            rows.append({"n": n, "k": k, "patterns": len(pats), "worst_cond": float(conds.max()),
                         "worst_rel_error_f64": e64, "worst_rel_error_f32": e32,
                         "worst_rel_error_f32_f64_shards": e32w})
    return rows


# -- inner-dimension and secure matmul codes (issue 10) ------------------------------------

THRESHOLD_CASES = ((2, 2, 1), (3, 3, 1), (2, 2, 2), (4, 4, 2), (3, 3, 3), (4, 4, 4), (4, 4, 6),
                   (4, 4, 8), (2, 8, 3), (8, 2, 3), (1, 2, 2))


def bench_thresholds() -> dict:
    """Recovery thresholds: SecureMatMulCode's (ka+t)(kb+1)-1 against GASP, and MatDot."""
    from coding.gasp import GASPCode, least_threshold

    secure = []
    for ka, kb, t in THRESHOLD_CASES:
        gasp = least_threshold(ka, kb, t)
        code = GASPCode(gasp, ka, kb, t, p=2**31 - 1)
        secure.append({"ka": ka, "kb": kb, "t": t, "today": (ka + t) * (kb + 1) - 1,
                       "gasp": code.threshold, "table": code.table.name,
                       "swapped": code.swapped})
    inner = [{"m": m, "t": t, "matdot": 2 * m - 1, "secure_matdot": 2 * m + 2 * t - 1,
              "poly_same_storage": m * m,
              "secure_poly_same_storage": (m + t) * (m + 1) - 1}
             for m in (2, 3, 4, 8) for t in (1, 2)]
    return {"secure": secure, "inner": inner}


def bench_matdot_accuracy(ns: tuple[int, ...], ms: tuple[int, ...], samples: int) -> list[dict]:
    """Worst relative error of the real MatDot code (Chebyshev basis) over erasure patterns."""
    from coding.generators import erasure_patterns
    from coding.matdot import MatDotCode

    rng = np.random.default_rng(4)
    rows = []
    for n in ns:
        for m in ms:
            if 2 * m - 1 > n:
                continue
            progress(f"MatDot accuracy n={n} m={m}")
            code = MatDotCode(n, m)
            A, B = rng.standard_normal((6, 8 * m)), rng.standard_normal((8 * m, 5))
            As, Bs = code.encode(A, B)
            R = np.stack([As[i] @ Bs[i] for i in range(n)])
            ref = A @ B
            pats = erasure_patterns(n, 2 * m - 1, count=samples, rng=rng)
            err = max(float(np.linalg.norm(code.decode(R[p], p) - ref) / np.linalg.norm(ref))
                      for p in pats)
            rows.append({"n": n, "m": m, "patterns": len(pats), "worst_rel_error": err})
    return rows


def report_issue10(th: dict, matdot: list[dict]) -> str:
    """The threshold and MatDot-accuracy tables (kept apart from the polynomial candidates)."""
    parts = ["### T-private outer-product codes: recovery thresholds",
             markdown_table(["(ka,kb,t)", "SecureMatMulCode (ka+t)(kb+1)-1", "GASPCode",
                             "table", "operands swapped", "saved"],
                            [[f"({r['ka']},{r['kb']},{r['t']})", r["today"], r["gasp"],
                              r["table"], r["swapped"], r["today"] - r["gasp"]]
                             for r in th["secure"]]),
             "### Inner-dimension split (MatDot) against outer products with the same storage "
             "per worker (1/m of A and 1/m of B: polynomial codes with ka = kb = m). MatDot "
             "pays with 1/m instead of 1/m^2 of the multiply-adds per worker and full-size "
             "results.",
             markdown_table(["m", "t", "MatDot 2m-1", "poly m*m", "secure MatDot 2m+2t-1",
                             "secure poly (m+t)(m+1)-1"],
                            [[r["m"], r["t"], r["matdot"], r["poly_same_storage"],
                              r["secure_matdot"], r["secure_poly_same_storage"]]
                             for r in th["inner"]])]
    if matdot:
        parts += ["### Real MatDotCode accuracy (orthonormal Chebyshev basis; worst over "
                  "patterns, all windows included)",
                  markdown_table(["n", "m", "patterns", "worst rel. error"],
                                 [[r["n"], r["m"], r["patterns"], r["worst_rel_error"]]
                                  for r in matdot])]
    return "\n\n".join(parts)


def report(mds: list[dict], gfp: list[dict], acc: list[dict]) -> str:
    parts = ["### MDSCode throughput (GB/s of payload; ratio to a numpy copy of the same bytes)",
             markdown_table(
                 ["payload", "shards", "(k,n)", "MiB", "memcpy", "encode", "decode (worst)",
                  "enc/memcpy", "dec/memcpy", "enc (allocating)/memcpy", "rel. error"],
                 [[r["dtype"], r.get("shards", r["dtype"]), f"({r['k']},{r['n']})",
                   r["payload_bytes"] // MIB, r["memcpy_GBps"],
                   r["encode_GBps"], r["decode_GBps"], r["encode_x_memcpy"], r["decode_x_memcpy"],
                   r["encode_alloc_x_memcpy"], r["decode_rel_error"]] for r in mds]),
             "Encode and decode write into preallocated outputs (`out=`), as the memcpy "
             "baseline does; the allocating `encode(x)` also pays the page faults of a fresh "
             "n/k-times-larger array. GB/s count payload bytes, so a float32 payload in "
             "float64 shards moves twice the shard bytes per payload byte.",
             _f32_decode_costs(mds)]
    has_galois = any("galois_s" in r for r in gfp)
    head = ["p", "size", "float64 A@B (s)", "gfp_matmul (s)", "gfp/BLAS"]
    if has_galois:
        head += ["galois (s)", "galois/BLAS", "exact"]
    body = []
    for r in gfp:
        row = [r["p"], r["size"], r["float64_blas_s"], r["gfp_matmul_s"], r["gfp_x_blas"]]
        if has_galois:
            row += [r.get("galois_s", "-"), r.get("galois_x_blas", "-"), r.get("matches_galois")]
        body.append(row)
    parts += ["### gfp_matmul (exact GF(p) matrix product) against float64 BLAS",
              markdown_table(head, body)]
    if acc:
        parts += ["### Real MDS accuracy (worst over erasure patterns)",
                  markdown_table(["n", "k", "patterns", "worst cond", "f64 payload",
                                  "f32 payload, f32 shards", "f32 payload, f64 shards"],
                                 [[r["n"], r["k"], r["patterns"], r["worst_cond"],
                                   r["worst_rel_error_f64"], r["worst_rel_error_f32"],
                                   r["worst_rel_error_f32_f64_shards"]]
                                  for r in acc])]
    return "\n\n".join(parts)


def _f32_decode_costs(mds: list[dict]) -> str:
    """Decode time of float32 payloads from float64 shards over that from float32 shards."""
    by = {(r["dtype"], r.get("shards"), r["k"], r["n"]): r for r in mds}
    rows = []
    for (dt, sh, k, n), r in by.items():
        base = by.get(("float32", "float32", k, n))
        if dt == "float32" and sh == "float64" and base:
            rows.append([f"({k},{n})", base["decode_s"], r["decode_s"],
                         r["decode_s"] / base["decode_s"]])
    if not rows:
        return ""
    return ("float32 payloads, worst-case decode time (s), side by side in this run "
            "(target: float64 shards cost <= 1.5x):\n\n"
            + markdown_table(["(k,n)", "float32 shards", "float64 shards -> float32",
                              "ratio"], rows))


def targets(mds: list[dict], gfp: list[dict], acc: list[dict]) -> list[str]:
    """One line per target: met, or by how much it falls short."""
    lines = []
    for r in mds:
        if (r["k"], r["n"]) != (8, 12) or r.get("shards", r["dtype"]) != r["dtype"]:
            continue
        for what, ratio, goal in (("encode", r["encode_x_memcpy"], TARGET_ENCODE),
                                  ("decode", r["decode_x_memcpy"], TARGET_DECODE)):
            verdict = "met" if ratio >= goal else f"MISSED by {goal - ratio:.2f}x"
            lines.append(f"- (8,12) {r['dtype']} ({r['dtype']} shards) {what}: {ratio:.2f}x memcpy "
                         f"(target >= {goal}x): {verdict}")
    for r in gfp:
        if r["p"] == 2**25 - 39:
            ok = r["gfp_x_blas"] <= TARGET_GFP
            verdict = "met" if ok else f"MISSED by {r['gfp_x_blas'] - TARGET_GFP:.2f}x"
            lines.append(f"- gfp_matmul {r['size']} at p=2^25-39: {r['gfp_x_blas']:.2f}x BLAS "
                         f"(target <= {TARGET_GFP}x): {verdict}")
    if acc:
        w64 = max(r["worst_rel_error_f64"] for r in acc)
        w32 = max(r["worst_rel_error_f32"] for r in acc)
        lines.append(f"- worst decode error float64 {w64:.1e} (target <= 1e-10): "
                     f"{'met' if w64 <= 1e-10 else 'MISSED'}")
        w32w = max(r["worst_rel_error_f32_f64_shards"] for r in acc)
        lines.append(f"- worst decode error float32 payload, float32 shards {w32:.1e} "
                     f"(target <= 1e-6): {'met' if w32 <= 1e-6 else 'MISSED'}"
                     + ("" if w32 <= 1e-6 else " (float32 shard rounding x condition number)"))
        lines.append(f"- worst decode error float32 payload, float64 shards {w32w:.1e} "
                     f"(target <= 1e-6): {'met' if w32w <= 1e-6 else 'MISSED'}")
    return lines


def steady_mds(payload_mib: int, runs: int) -> str:
    """(8,12) encode/decode against memcpy in ``runs`` consecutive runs, with the load."""
    import os

    rows = []
    for run in range(runs):
        load = os.getloadavg()[0]
        for r in bench_mds(payload_mib, repeat=7, shapes=((8, 12),)):
            rows.append([run + 1, f"{load:.1f}", r["dtype"], r["shards"], r["encode_x_memcpy"],
                         r["decode_x_memcpy"], r["encode_alloc_x_memcpy"]])
    return ("### MDSCode (8,12) in consecutive runs (ratios to memcpy, measured side by side)"
            "\n\n" + markdown_table(["run", "load avg (1 min)", "payload", "shards",
                                       "enc/memcpy", "dec/memcpy", "enc (allocating)/memcpy"],
                                      rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.coding", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small payloads, no galois, no result files (what `make run` shows)")
    parser.add_argument("--payload-mib", type=int, default=None,
                        help="MDS payload size in MiB (default 64, quick 16)")
    parser.add_argument("--mds-runs", type=int, default=None, metavar="N",
                        help="only the (8,12) MDS throughput, N consecutive runs (prints only)")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.mds_runs:
        print(steady_mds(args.payload_mib or 64, args.mds_runs))
        return 0
    payload = args.payload_mib or (16 if quick else 64)
    if payload < 1:
        parser.error(f"Argument '--payload-mib' must be at least 1, not {payload}.")
    print(f"kofn coding benchmark ({'quick' if quick else 'full'} mode, "
          f"{payload} MiB payloads)", flush=True)
    mds = bench_mds(payload, repeat=3 if quick else 7)
    gfp = bench_gfp((512,) if quick else (512, 1024), with_galois=not quick,
                    repeat=3 if quick else 5)
    acc = bench_accuracy((8, 16) if quick else (6, 8, 12, 16, 20, 24, 32),
                         samples=100 if quick else 500)
    th = bench_thresholds()
    matdot = bench_matdot_accuracy((8, 16) if quick else (8, 16, 24, 32),
                                   (2, 4) if quick else (2, 4, 6, 8), 100 if quick else 2000)
    poly = worst_splits_table((20,) if quick else (20, 24, 32), 200 if quick else 2000)
    md = report(mds, gfp, acc) + "\n\n" + report_issue10(th, matdot) + "\n\n" + poly
    tl = targets(mds, gfp, acc)
    print()
    print(md)
    print("\nTargets:\n" + "\n".join(tl))
    if not quick:
        cmd = "python -m benchmarks.coding" + (f" --payload-mib {payload}" if args.payload_mib else "")
        full = (f"# Coding benchmark\n\nCommand: `{cmd}`  \nMachine: {machine_info()}\n\n{md}\n\n"
                "## Targets\n" + "\n".join(tl))
        folder = write_results("coding", {"machine": machine_info(), "mds": mds, "gfp": gfp,
                                          "accuracy": acc, "thresholds": th,
                                          "matdot_accuracy": matdot, "targets": tl}, full)
        print(f"\nwrote {folder}/coding.json and coding.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
