"""gfp_matmul and the GF(p) helpers: exact against galois and against known answers."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coding.gfp import (
    MatmulPlan,
    _matmul_float,
    _to_range,
    as_gfp,
    galois_field,
    gfp_inv,
    gfp_matmul,
    gfp_random,
    gfp_vandermonde,
    matmul_plan,
)

PRIMES = [2, 3, 257, 65521, 2**25 - 39, 2**31 - 1]
DATA = Path(__file__).resolve().parents[1] / "data" / "gfp_known_answers.json"


def _known():
    return json.loads(DATA.read_text())


def _ref(A, B, p):
    """Python-integer reference product."""
    if A.shape[1] == 0:
        return np.zeros((A.shape[0], B.shape[1]), dtype=np.int64)
    return ((A.astype(object) @ B.astype(object)) % p).astype(np.int64)


SHAPES = [(1, 9, 1), (1, 6, 5), (5, 6, 1), (4, 1, 3), (3, 0, 2), (17, 33, 9), (3, 1500, 2)]


def _check_against_galois(p):
    # Building a galois field and JIT-compiling its matmul costs seconds per prime.
    GF = galois_field(p)
    for m, k, n in SHAPES:
        rng = np.random.default_rng(p + m * 100 + k)
        A, B = GF.Random((m, k), seed=rng), GF.Random((k, n), seed=rng)
        C = gfp_matmul(A, B, p)
        assert C.dtype == np.int64
        np.testing.assert_array_equal(C, np.asarray(A @ B).view(np.ndarray).astype(np.int64))


@pytest.mark.parametrize("p", [257, 2**25 - 39])
def test_matches_galois(p):
    _check_against_galois(p)


@pytest.mark.slow
@pytest.mark.parametrize("p", [2, 3, 65521, 2**31 - 1])
def test_matches_galois_other_primes(p):
    _check_against_galois(p)


@settings(max_examples=60, deadline=None)
@given(
    p=st.sampled_from(PRIMES),
    m=st.integers(0, 6),
    k=st.integers(0, 3000),
    n=st.integers(0, 6),
    seed=st.integers(0, 2**32 - 1),
    extreme=st.booleans(),
)
def test_random_shapes_exact(p, m, k, n, seed, extreme):
    rng = np.random.default_rng(seed)
    if extreme:  # the largest partial sums
        A = np.full((m, k), p - 1, dtype=np.int64)
        B = np.full((k, n), p - 1, dtype=np.int64)
    else:
        A = rng.integers(0, p, (m, k))
        B = rng.integers(0, p, (k, n))
    np.testing.assert_array_equal(gfp_matmul(A, B, p), _ref(A, B, p))


@pytest.mark.parametrize("p", [2**25 - 39, 2**31 - 1])
@pytest.mark.parametrize(("la", "lb", "n_chunks"), [(2, 2, 1), (3, 3, 1), (2, 2, 4), (3, 1, 7)])
def test_every_plan_kind_is_exact(p, la, lb, n_chunks):
    # The planner rarely picks two-sided splits or many chunks; force them.
    bits = (p - 1).bit_length()
    s = -(-bits // max(la, lb))
    k = 700
    plan = MatmulPlan(la, lb, s, -(-k // n_chunks), n_chunks)
    rng = np.random.default_rng(la * 10 + lb)
    A, B = rng.integers(0, p, (5, k)), rng.integers(0, p, (k, 4))
    A[0] = p - 1
    B[:, 0] = p - 1
    np.testing.assert_array_equal(_to_range(_matmul_float(A, B, plan, p), p), _ref(A, B, p))


def test_plan_keeps_partial_sums_exact():
    for p in PRIMES:
        for k in (1, 10, 1000, 100_000):
            plan = matmul_plan(p, k)
            assert plan.chunk * plan.n_chunks >= k
    assert matmul_plan(65521, 1024).limbs_a == 1  # one product for 16-bit primes
    assert matmul_plan(2**25 - 39, 1024).limbs_a == 2  # two limbs, no chunking
    assert matmul_plan(2**25 - 39, 1024).n_chunks == 1


def test_vector_operands_follow_matmul_shapes():
    p = 257
    rng = np.random.default_rng(0)
    A, v = rng.integers(0, p, (3, 4)), rng.integers(0, p, 4)
    assert gfp_matmul(A, v, p).shape == (3,)
    assert gfp_matmul(v, A.T, p).shape == (3,)
    assert gfp_matmul(v, v, p).shape == ()
    assert int(gfp_matmul(v, v, p)) == int(v.astype(object) @ v.astype(object)) % p


def test_known_answers():
    for case in _known()["gfp_matmul"]:
        p = case["p"]
        if "fill" in case:
            m, k, n = case["shape"]
            A = np.full((m, k), case["fill"], dtype=np.int64)
            B = np.full((k, n), case["fill"], dtype=np.int64)
        else:
            A, B = np.array(case["A"], dtype=np.int64), np.array(case["B"], dtype=np.int64)
        np.testing.assert_array_equal(gfp_matmul(A, B, p), np.array(case["C"]))


def test_rejects_shapes_that_do_not_multiply():
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(4, 2\), which do not multiply"):
        gfp_matmul(np.zeros((2, 3), int), np.zeros((4, 2), int), 7)


def test_rejects_3d():
    with pytest.raises(ValueError, match="must be 1-D or 2-D"):
        gfp_matmul(np.zeros((2, 3, 1), int), np.zeros((3, 2), int), 7)


@pytest.mark.parametrize(
    ("p", "error", "message"),
    [
        (8, ValueError, "Argument 'p' must be a prime, not 8."),
        (1, ValueError, "Argument 'p' must be at least 2, not 1."),
        (2**31 + 11, ValueError, "Argument 'p' must be at most 2147483647"),
        (7.0, TypeError, "Argument 'p' must be an integer"),
    ],
)
def test_rejects_bad_prime(p, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        gfp_matmul(np.zeros((2, 2), int), np.zeros((2, 2), int), p)


@pytest.mark.parametrize(
    ("A", "error", "message"),
    [
        (np.array([[0, 7]]), ValueError, r"Argument 'A' must have entries in \[0, p=7\), not 7."),
        (np.array([[-1, 0]]), ValueError, r"Argument 'A' must have entries in \[0, p=7\), not -1."),
        (np.array([[0.0, 1.0]]), TypeError, "Argument 'A' must be an integer array"),
    ],
)
def test_rejects_bad_entries(A, error, message):
    with pytest.raises(error, match=message):
        gfp_matmul(A, np.zeros((2, 2), int), 7)


def test_as_gfp_accepts_galois_arrays():
    GF = galois_field(257)
    out = as_gfp("x", GF([1, 6]), 257)
    assert type(out) is np.ndarray and out.dtype == np.int64


def test_inverse_and_singular():
    p = 65521
    rng = np.random.default_rng(1)
    M = rng.integers(0, p, (6, 6))
    np.testing.assert_array_equal(gfp_matmul(M, gfp_inv(M, p), p), np.eye(6, dtype=np.int64))
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        gfp_inv(np.array([[1, 2], [2, 4]]), p)
    with pytest.raises(ValueError, match="must be a square matrix"):
        gfp_inv(np.zeros((2, 3), int), p)


def test_vandermonde():
    V = gfp_vandermonde([2, 3], 4, 7)
    np.testing.assert_array_equal(V, [[1, 2, 4, 1], [1, 3, 2, 6]])


def test_random_is_in_range_and_reproducible():
    p = 2**31 - 1
    x = gfp_random((1000,), p)
    assert x.dtype == np.int64 and x.min() >= 0 and x.max() < p
    a = gfp_random((3, 4), 7, np.random.default_rng(5))
    b = gfp_random((3, 4), 7, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    # The CSPRNG path is uniform: all 7 residues appear, roughly equally often.
    counts = np.bincount(gfp_random(7000, 7), minlength=7)
    assert counts.min() > 800
    with pytest.raises(TypeError, match="Argument 'rng' must be a numpy Generator"):
        gfp_random(3, 7, rng=5)
