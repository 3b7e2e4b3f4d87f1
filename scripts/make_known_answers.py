"""Write the GF(p) known-answer vectors in ``tests/data/gfp_known_answers.json``.

Everything here is computed with plain Python integers (schoolbook matrix products, Lagrange
interpolation with ``pow(x, -1, p)``) and imports nothing from ``coding``, so the tests
compare the package against an independent implementation.

Usage: ``.venv/bin/python scripts/make_known_answers.py``
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "gfp_known_answers.json"
PRIMES = [2, 3, 257, 65521, 2**25 - 39, 2**31 - 1]


def rand_matrix(r: random.Random, rows: int, cols: int, p: int) -> list[list[int]]:
    return [[r.randrange(p) for _ in range(cols)] for _ in range(rows)]


def matmul(A, B, p):
    inner = len(B)
    cols = len(B[0]) if B else 0
    return [[sum(A[i][k] * B[k][j] for k in range(inner)) % p for j in range(cols)]
            for i in range(len(A))]


def add_scaled(acc, M, c, p):
    """acc += c * M (mod p), elementwise on nested lists."""
    return [[(a + c * m) % p for a, m in zip(ra, rm, strict=True)] for ra, rm in zip(acc, M, strict=True)]


def zeros(rows, cols):
    return [[0] * cols for _ in range(rows)]


def lagrange_eval(nodes, values, x, p):
    """Evaluate at x the polynomial through (nodes, values); values are matrices."""
    out = zeros(len(values[0]), len(values[0][0]))
    for j, bj in enumerate(nodes):
        num, den = 1, 1
        for m, bm in enumerate(nodes):
            if m != j:
                num = num * (x - bm) % p
                den = den * (bj - bm) % p
        out = add_scaled(out, values[j], num * pow(den, -1, p), p)
    return out


def gfp_matmul_cases(r: random.Random):
    cases = []
    for p in PRIMES:
        for m, k, n in [(3, 5, 4), (1, 7, 1), (4, 1, 3)]:
            A, B = rand_matrix(r, m, k, p), rand_matrix(r, k, n, p)
            cases.append({"p": p, "A": A, "B": B, "C": matmul(A, B, p)})
    for p in (2**25 - 39, 2**31 - 1):  # long inner dimension: exercises limbs and chunks
        A, B = rand_matrix(r, 2, 1100, p), rand_matrix(r, 1100, 2, p)
        cases.append({"p": p, "A": A, "B": B, "C": matmul(A, B, p)})
        # All entries p - 1: the largest partial sums. Stored as a fill value, not matrices.
        A = [[p - 1] * 1100 for _ in range(2)]
        B = [[p - 1] * 2 for _ in range(1100)]
        cases.append({"p": p, "fill": p - 1, "shape": [2, 1100, 2], "C": matmul(A, B, p)})
    return cases


def polynomial_case(r: random.Random):
    p, n, ka, kb = 65521, 6, 2, 2
    m, d, q = 3, 4, 3  # m and q do not divide: rows/cols are zero-padded to 4
    A, B = rand_matrix(r, m, d, p), rand_matrix(r, d, q, p)
    rows, cols = 2, 2
    Ap = A + [[0] * d]
    Bp = [row + [0] for row in B]
    A_blocks = [Ap[j * rows:(j + 1) * rows] for j in range(ka)]
    B_blocks = [[row[c * cols:(c + 1) * cols] for row in Bp] for c in range(kb)]
    points = list(range(1, n + 1))
    A_sh, B_sh = [], []
    for x in points:
        a = zeros(rows, d)
        for j in range(ka):
            a = add_scaled(a, A_blocks[j], pow(x, j, p), p)
        b = zeros(d, cols)
        for c in range(kb):
            b = add_scaled(b, B_blocks[c], pow(x, c * ka, p), p)
        A_sh.append(a)
        B_sh.append(b)
    products = [matmul(a, b, p) for a, b in zip(A_sh, B_sh, strict=True)]
    return {"p": p, "n": n, "ka": ka, "kb": kb, "points": points, "A": A, "B": B,
            "A_shares": A_sh, "B_shares": B_sh, "products": products,
            "decode_indices": [5, 1, 3, 2], "C": matmul(A, B, p)}


def secret_share_case(r: random.Random):
    p, n, k, t = 65521, 6, 2, 2
    alphas = list(range(1, n + 1))
    betas = [0] + list(range(n + 1, n + k + t))
    message = [rand_matrix(r, 2, 3, p) for _ in range(k)]
    masks = [rand_matrix(r, 2, 3, p) for _ in range(t)]
    shares = [lagrange_eval(betas, message + masks, a, p) for a in alphas]
    return {"p": p, "n": n, "k": k, "t": t, "alphas": alphas, "betas": betas,
            "message": message, "masks": masks, "shares": shares,
            "decode_indices": [4, 0, 5, 2]}


def secure_matmul_case(r: random.Random):
    p, n, ka, kb, t = 65521, 9, 2, 2, 1
    period = ka + t
    m, d, q = 2, 3, 4
    A, B = rand_matrix(r, m, d, p), rand_matrix(r, d, q, p)
    A_blocks = [A[j:j + 1] for j in range(ka)]
    B_blocks = [[row[2 * c:2 * c + 2] for row in B] for c in range(kb)]
    R = [rand_matrix(r, 1, d, p) for _ in range(t)]
    S = [rand_matrix(r, d, 2, p) for _ in range(t)]
    a_terms = [(A_blocks[j], j) for j in range(ka)] + [(R[j], ka + j) for j in range(t)]
    b_terms = ([(B_blocks[c], c * period) for c in range(kb)]
               + [(S[j], kb * period - t + j) for j in range(t)])
    A_sh, B_sh = [], []
    for x in range(1, n + 1):
        a = zeros(1, d)
        for M, e in a_terms:
            a = add_scaled(a, M, pow(x, e, p), p)
        b = zeros(d, 2)
        for M, e in b_terms:
            b = add_scaled(b, M, pow(x, e, p), p)
        A_sh.append(a)
        B_sh.append(b)
    products = [matmul(a, b, p) for a, b in zip(A_sh, B_sh, strict=True)]
    threshold = (ka + t) * (kb + 1) - 1
    return {"p": p, "n": n, "ka": ka, "kb": kb, "t": t, "threshold": threshold,
            "A": A, "B": B, "R": R, "S": S, "A_shares": A_sh, "B_shares": B_sh,
            "products": products, "decode_indices": [8, 0, 2, 4, 5, 6, 1, 7], "C": matmul(A, B, p)}


def main() -> None:
    r = random.Random(20240611)
    data = {
        "gfp_matmul": gfp_matmul_cases(r),
        "polynomial": polynomial_case(r),
        "secret_share": secret_share_case(r),
        "secure_matmul": secure_matmul_case(r),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
