"""PolynomialCode over the reals and GF(p): round trips, errors, known answers."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coding.errors import DuplicateIndexError, NotEnoughShardsError
from coding.gfp import galois_field
from coding.polynomial import PolynomialCode

DATA = Path(__file__).resolve().parents[1] / "data" / "gfp_known_answers.json"


def _products(code, As, Bs, idx):
    return [code.worker_product(As[i], Bs[i]) for i in idx]


@settings(max_examples=40, deadline=None)
@given(
    ka=st.integers(1, 3),
    kb=st.integers(1, 3),
    extra=st.integers(0, 4),
    dims=st.tuples(st.integers(1, 9), st.integers(1, 6), st.integers(1, 9)),
    p=st.sampled_from([11, 257, 65521, 2**31 - 1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_gfp_round_trip_any_erasures(ka, kb, extra, dims, p, seed):
    n = ka * kb + extra
    if n > p - 1:
        return
    code = PolynomialCode(n, ka, kb, field=p)
    rng = np.random.default_rng(seed)
    m, d, q = dims
    A, B = rng.integers(0, p, (m, d)), rng.integers(0, p, (d, q))
    As, Bs = code.encode(A, B)
    idx = rng.permutation(n)[: ka * kb + rng.integers(0, extra + 1)]
    C = code.decode(_products(code, As, Bs, idx), idx, shape=(m, q))
    np.testing.assert_array_equal(C, (A.astype(object) @ B.astype(object)) % p)


@settings(max_examples=40, deadline=None)
@given(
    ka=st.integers(1, 3),
    kb=st.integers(1, 3),
    extra=st.integers(0, 4),
    dims=st.tuples(st.integers(1, 9), st.integers(1, 6), st.integers(1, 9)),
    seed=st.integers(0, 2**32 - 1),
)
def test_real_round_trip_any_erasures(ka, kb, extra, dims, seed):
    # ka*kb <= 9 and at most 4 stragglers: within the documented 1e-9 regime.
    n = ka * kb + extra
    code = PolynomialCode(n, ka, kb)
    rng = np.random.default_rng(seed)
    m, d, q = dims
    A, B = rng.standard_normal((m, d)), rng.standard_normal((d, q))
    As, Bs = code.encode(A, B)
    idx = rng.permutation(n)[: ka * kb]
    C = code.decode(np.stack(_products(code, As, Bs, idx)), idx, shape=(m, q))
    ref = A @ B
    assert np.linalg.norm(C - ref) <= 1e-9 * np.linalg.norm(ref)


# The worst (ka, kb, n) splits of benchmarks/polynomial.py's table (docs/matmul.md):
# the largest ka*kb <= 16 at n = 20, 24 and 32, and the most lopsided splits.
WORST_CASES = [(4, 4, 20), (4, 4, 24), (4, 4, 32), (2, 8, 32), (8, 2, 32), (16, 1, 32),
               (1, 16, 32), (3, 5, 24), (5, 3, 32), (3, 3, 13), (3, 2, 12)]


@pytest.mark.parametrize(("ka", "kb", "n"), WORST_CASES)
def test_real_accuracy_every_window_and_random_patterns(ka, kb, n):
    # Target 1e-9 for ka*kb <= 16, n <= 32. The worst error measured on any OpenBLAS kernel
    # (Haswell, SkylakeX, Sandybridge) over all windows + 2000 patterns is below 1e-10, so
    # this bound keeps a 10x margin (figures in docs/coding.md).
    code = PolynomialCode(n, ka, kb)
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((ka * 5, 20)), rng.standard_normal((20, kb * 5))
    As, Bs = code.encode(A, B)
    res = np.matmul(As, Bs)
    ref = A @ B
    k = ka * kb
    pats = [(np.arange(k) + s) % n for s in range(n)]
    pats += [rng.choice(n, k, replace=False) for _ in range(100)]
    for idx in pats:
        C = code.decode(res[idx], idx, shape=ref.shape)
        assert np.linalg.norm(C - ref) <= 5e-9 * np.linalg.norm(ref), (idx, code.seed)


def test_monomial_baseline_still_available_and_worse():
    # The old basis stays selectable as the table's baseline; at (20, 4, 4) its worst window
    # loses far more digits than the default construction.
    def worst(code):
        rng = np.random.default_rng(1)
        A, B = rng.standard_normal((20, 10)), rng.standard_normal((10, 20))
        As, Bs = code.encode(A, B)
        res, ref = np.matmul(As, Bs), A @ B
        errs = [np.linalg.norm(code.decode(res[s:s + 16], list(range(s, s + 16)),
                                           shape=ref.shape) - ref) / np.linalg.norm(ref)
                for s in range(5)]
        return max(errs)

    mono = PolynomialCode(20, 4, 4, construction="monomial")
    assert mono.construction == "monomial" and mono.points is not None
    assert worst(mono) > 100 * worst(PolynomialCode(20, 4, 4))


@pytest.mark.parametrize("construction", ["khatri-rao", "chebyshev", "monomial"])
def test_real_constructions_round_trip(construction):
    code = PolynomialCode(9, 2, 3, construction=construction)
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((5, 4)), rng.standard_normal((4, 7))
    As, Bs = code.encode(A, B)
    idx = [8, 0, 3, 5, 1, 7]
    C = code.decode(np.matmul(As[idx], Bs[idx]), idx, shape=(5, 7))
    np.testing.assert_allclose(C, A @ B, rtol=0, atol=1e-12)


def test_khatri_rao_is_deterministic_and_seedable():
    a, b = PolynomialCode(24, 4, 4), PolynomialCode(24, 4, 4)
    assert a.construction == "khatri-rao" and a.points is None
    assert a.seed == b.seed and 0 <= a.seed < 16
    for x, y in zip(a.encoders(), b.encoders(), strict=True):
        np.testing.assert_array_equal(x, y)
    c = PolynomialCode(24, 4, 4, seed=(a.seed + 1) % 16)
    assert not np.array_equal(a.encoders()[0], c.encoders()[0])
    EA, EB = a.encoders()
    assert EA.shape == (24, 4) and EB.shape == (24, 4)
    EA[:] = 0  # a copy: the code's own matrices are untouched
    assert np.any(a.encoders()[0])


def test_encode_shapes_and_padding():
    code = PolynomialCode(5, 2, 2, field=257)
    A, B = np.ones((3, 4), dtype=np.int64), np.ones((4, 5), dtype=np.int64)
    As, Bs = code.encode(A, B)
    assert As.shape == (5, 2, 4) and Bs.shape == (5, 4, 3)
    idx = [4, 3, 1, 0]
    res = _products(code, As, Bs, idx)
    assert code.decode(res, idx, shape=(3, 5)).shape == (3, 5)
    assert code.decode(res, idx, shape=(2, 2)).shape == (2, 2)
    assert code.decode(res, idx, shape=(4, 6)).shape == (4, 6)  # the padded product
    with pytest.raises(TypeError, match="shape"):  # never the last encode's shape
        code.decode(res, idx)


def test_decode_of_job_1_after_encoding_job_2():
    p = 257
    code = PolynomialCode(5, 2, 2, field=p)
    rng = np.random.default_rng(1)
    A1, B1 = rng.integers(0, p, (5, 3)), rng.integers(0, p, (3, 5))
    As, Bs = code.encode(A1, B1)
    code.encode(rng.integers(0, p, (3, 2)), rng.integers(0, p, (2, 3)))  # job 2
    idx = [0, 2, 3, 4]
    C = code.decode(_products(code, As, Bs, idx), idx, shape=(5, 5))
    np.testing.assert_array_equal(C, (A1.astype(object) @ B1.astype(object)) % p)


def test_real_inputs_must_be_finite():
    code = PolynomialCode(6, 2, 2)
    A = np.ones((2, 3))
    A[0, 1] = np.inf
    with pytest.raises(ValueError, match="Argument 'A' must be finite"):
        code.encode(A, np.ones((3, 2)))
    with pytest.raises(ValueError, match="Argument 'B' must be finite"):
        code.encode(np.ones((2, 3)), np.full((3, 2), np.nan))


def test_decode_errors():
    code = PolynomialCode(6, 2, 2, field=257)
    rng = np.random.default_rng(0)
    As, Bs = code.encode(rng.integers(0, 257, (4, 3)), rng.integers(0, 257, (3, 4)))
    res = np.stack(_products(code, As, Bs, range(6)))
    with pytest.raises(NotEnoughShardsError, match="Need at least 4 distinct results to decode, got 3."):
        code.decode(res[:3], [0, 1, 2], shape=(4, 4))
    with pytest.raises(DuplicateIndexError, match="Shard index 1 was given more than once"):
        code.decode(res[[0, 1, 1, 2]], [0, 1, 1, 2], shape=(4, 4))
    with pytest.raises(ValueError, match=r"must have entries in \[0, n=6\), not 6."):
        code.decode(res[:4], [0, 1, 2, 6], shape=(4, 4))
    with pytest.raises(ValueError, match=r"must have one entry per result \(4\), not 3."):
        code.decode(res[:4], [0, 1, 2], shape=(4, 4))
    with pytest.raises(ValueError, match="must be 3-D"):
        code.decode(res[0], [0], shape=(4, 4))


def test_encode_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(4, 2\), which do not multiply"):
        PolynomialCode(4, 2, 2).encode(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"must have entries in \[0, p=7\)"):
        PolynomialCode(4, 2, 2, field=7).encode(np.full((2, 3), 7), np.zeros((3, 2), int))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((3, 2, 2), {}, ValueError, "Argument 'n' must be at least ka*kb=4, not 3."),
        ((4, 0, 2), {}, ValueError, "Argument 'ka' must be at least 1, not 0."),
        ((4, 2, 0), {}, ValueError, "Argument 'kb' must be at least 1, not 0."),
        ((7, 2, 2), {"field": 7}, ValueError, "Argument 'n' must be at most p-1=6, not 7."),
        ((4, 2, 2), {"field": 8}, ValueError, "Argument 'field' must be a prime, not 8."),
        ((4, 2, 2), {"field": "GF7"}, TypeError, "Argument 'field' must be None, a prime"),
        ((4.0, 2, 2), {}, TypeError, "Argument 'n' must be an integer"),
        ((4, 2, 2), {"construction": "vandermonde"}, ValueError,
         "Argument 'construction' must be one of khatri-rao, chebyshev, monomial over the "
         "reals, not 'vandermonde'."),
        ((4, 2, 2), {"field": 7, "construction": "khatri-rao"}, ValueError,
         "Argument 'construction' must be 'monomial' over GF(p), not 'khatri-rao'."),
        ((4, 2, 2), {"seed": -1}, ValueError, "Argument 'seed' must be at least 0, not -1."),
    ],
)
def test_constructor_rejects(args, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        PolynomialCode(*args, **kwargs)


def test_accepts_galois_field_class():
    GF = galois_field(257)
    code = PolynomialCode(4, 2, 2, field=GF)
    assert code.field is GF and code.p == 257 and code.k == 4 and code.n == 4
    assert PolynomialCode(4, 2, 2).field is None


def test_known_answers():
    case = json.loads(DATA.read_text())["polynomial"]
    p = case["p"]
    code = PolynomialCode(case["n"], case["ka"], case["kb"], field=p)
    np.testing.assert_array_equal(code.points, case["points"])
    As, Bs = code.encode(np.array(case["A"]), np.array(case["B"]))
    np.testing.assert_array_equal(As, case["A_shares"])
    np.testing.assert_array_equal(Bs, case["B_shares"])
    idx = case["decode_indices"]
    products = np.array(case["products"])[idx]
    C = code.decode(products, idx, shape=np.array(case["C"]).shape)
    np.testing.assert_array_equal(C, case["C"])
