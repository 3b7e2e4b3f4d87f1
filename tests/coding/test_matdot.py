"""MatDot and secure MatDot: round trips, exact thresholds, real accuracy, t-privacy."""

import itertools
import re

import numpy as np
import pytest

from coding.errors import DuplicateIndexError, NotEnoughShardsError
from coding.gfp import gfp_inv, gfp_matmul, gfp_vandermonde
from coding.matdot import MatDotCode, SecureMatDotCode
from tests.coding.mask_views import side_is_private, side_leaks

P = 2**31 - 1


def _products(code, As, Bs, idx):
    return np.stack([code.worker_product(As[i], Bs[i]) for i in idx])


def _ref(A, B, p):
    return (A.astype(object) @ B.astype(object)) % p


@pytest.mark.parametrize(("n", "m"), [(1, 1), (5, 3), (9, 3), (12, 5)])
@pytest.mark.parametrize("p", [257, P])
def test_gfp_round_trip_any_erasures(n, m, p):
    code = MatDotCode(n, m, field=p)
    rng = np.random.default_rng(n * 10 + m)
    A, B = rng.integers(0, p, (4, 7)), rng.integers(0, p, (7, 3))
    As, Bs = code.encode(A, B)
    assert As.shape == (n, 4, -(-7 // m)) and Bs.shape == (n, -(-7 // m), 3)
    for _ in range(4):
        idx = rng.permutation(n)[: code.threshold]
        np.testing.assert_array_equal(code.decode(_products(code, As, Bs, idx), idx),
                                      _ref(A, B, p))


def test_real_accuracy_on_every_pattern():
    # Worst relative error over every (2m-1)-subset at n = 12; measured <= 5e-15 (float64,
    # orthonormal Chebyshev basis), bound 1e-12 leaves a wide margin for any BLAS kernel.
    rng = np.random.default_rng(0)
    for m in (2, 4, 6):
        n = 12
        code = MatDotCode(n, m)
        A, B = rng.standard_normal((5, 9)), rng.standard_normal((9, 4))
        As, Bs = code.encode(A, B)
        res = _products(code, As, Bs, range(n))
        ref = A @ B
        worst = max(np.linalg.norm(code.decode(res[list(s)], s) - ref) / np.linalg.norm(ref)
                    for s in itertools.combinations(range(n), code.threshold))
        assert worst <= 1e-12, (m, worst)


@pytest.mark.parametrize("m", [1, 2, 4])
def test_threshold_is_exact(m):
    code = MatDotCode(2 * m + 3, m, field=65521)
    rng = np.random.default_rng(m)
    A, B = rng.integers(0, 65521, (3, 2 * m)), rng.integers(0, 65521, (2 * m, 2))
    As, Bs = code.encode(A, B)
    idx = list(rng.permutation(code.n)[: 2 * m - 1])
    res = _products(code, As, Bs, idx)
    np.testing.assert_array_equal(code.decode(res, idx), _ref(A, B, 65521))
    with pytest.raises(NotEnoughShardsError, match=f"Need at least {2 * m - 1} distinct"):
        code.decode(res[:-1], idx[:-1])
    # One fewer is not enough: the product polynomial has degree exactly 2m - 2.
    allres = _products(code, As, Bs, range(code.n)).reshape(code.n, -1)
    V = gfp_vandermonde(np.arange(1, code.n + 1), code.n, 65521)
    coeffs = gfp_matmul(gfp_inv(V, 65521), allres, 65521)
    assert np.all(coeffs[2 * m - 1 :] == 0) and np.any(coeffs[2 * m - 2] != 0)


def test_real_inputs_must_be_finite():
    code = MatDotCode(5, 2)
    A = np.ones((2, 4))
    A[1, 2] = np.nan
    with pytest.raises(ValueError, match="Argument 'A' must be finite"):
        code.encode(A, np.ones((4, 2)))
    with pytest.raises(ValueError, match="Argument 'B' must be finite"):
        code.encode(np.ones((2, 4)), np.full((4, 2), np.inf))


@pytest.mark.parametrize(("m", "t"), [(1, 1), (2, 2), (3, 1), (2, 3)])
def test_secure_round_trip_and_exact_threshold(m, t):
    code = SecureMatDotCode(2 * m + 2 * t + 1, m, t, p=P)
    assert code.threshold == 2 * m + 2 * t - 1
    rng = np.random.default_rng(m * 10 + t)
    A, B = rng.integers(0, P, (3, 5)), rng.integers(0, P, (5, 4))
    As, Bs = code.encode(A, B)  # CSPRNG masks
    idx = list(rng.permutation(code.n)[: code.threshold])
    res = _products(code, As, Bs, idx)
    np.testing.assert_array_equal(code.decode(res, idx), _ref(A, B, P))
    with pytest.raises(NotEnoughShardsError, match=f"Need at least {code.threshold} distinct"):
        code.decode(res[:-1], idx[:-1])


@pytest.mark.parametrize(("m", "t"), [(1, 1), (2, 2)])
def test_secure_any_t_workers_learn_nothing_and_t_plus_one_do(m, t):
    p = 13
    code = SecureMatDotCode(2 * m + 2 * t - 1, m, t, p=p)
    secrets = ([0] * m, [3 + j for j in range(m)])
    for side in "ab":
        for cols in itertools.combinations(range(code.n), t):
            assert side_is_private(code, side, cols, m, m, secrets, p), (side, cols)
        for cols in [tuple(range(t + 1)), tuple(range(code.n - t - 1, code.n))]:
            assert side_leaks(code, side, cols, m, m, p), (side, cols)


def test_decode_errors():
    code = SecureMatDotCode(6, 1, 1, p=31)
    rng = np.random.default_rng(0)
    As, Bs = code.encode(rng.integers(0, 31, (2, 2)), rng.integers(0, 31, (2, 2)), rng=rng)
    res = _products(code, As, Bs, range(6))
    with pytest.raises(DuplicateIndexError):
        code.decode(res[[0, 0, 1]], [0, 0, 1])
    with pytest.raises(ValueError, match="must be 3-D"):
        code.decode(res[0], [0])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MatDotCode(2, 2), "Argument 'n' must be at least 2m-1=3, not 2."),
        (lambda: MatDotCode(3, 0), "Argument 'm' must be at least 1, not 0."),
        (lambda: MatDotCode(7, 2, field=7), "Argument 'n' must be at most p-1=6, not 7."),
        (lambda: SecureMatDotCode(2, 1, 1, p=31), "Argument 'n' must be at least 2m+2t-1=3, not 2."),
        (lambda: SecureMatDotCode(4, 2, 1, p=31), "Argument 'n' must be at least 2m+2t-1=5, not 4."),
        (lambda: SecureMatDotCode(6, 1, 0, p=31), "Argument 't' must be at least 1, not 0."),
        (lambda: SecureMatDotCode(6, 1, 1, p=33), "Argument 'p' must be a prime, not 33."),
    ],
)
def test_constructor_rejects(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()
