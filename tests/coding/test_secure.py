"""SecureMatMulCode: exact threshold, round trips, known answers and t-privacy."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coding.errors import DuplicateIndexError, NotEnoughShardsError
from coding.gfp import gfp_inv, gfp_matmul, gfp_vandermonde
from coding.privacy import exact_independence, independence_test
from coding.secure import SecureMatMulCode

DATA = Path(__file__).resolve().parents[1] / "data" / "gfp_known_answers.json"


def _ref(A, B, p):
    return (A.astype(object) @ B.astype(object)) % p


def _products(code, As, Bs, idx):
    return np.stack([code.worker_product(As[i], Bs[i]) for i in idx])


@settings(max_examples=40, deadline=None)
@given(
    ka=st.integers(1, 3),
    kb=st.integers(1, 3),
    t=st.integers(1, 3),
    extra=st.integers(0, 3),
    dims=st.tuples(st.integers(1, 7), st.integers(1, 5), st.integers(1, 7)),
    p=st.sampled_from([31, 65521, 2**31 - 1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_any_erasures(ka, kb, t, extra, dims, p, seed):
    n = (ka + t) * (kb + 1) - 1 + extra
    code = SecureMatMulCode(n, ka, kb, t, p=p)
    rng = np.random.default_rng(seed)
    m, d, q = dims
    A, B = rng.integers(0, p, (m, d)), rng.integers(0, p, (d, q))
    As, Bs = code.encode(A, B, rng=rng)
    idx = rng.permutation(n)[: code.threshold]
    np.testing.assert_array_equal(code.decode(_products(code, As, Bs, idx), idx, shape=(m, q)),
                                  _ref(A, B, p))


@pytest.mark.parametrize(("ka", "kb", "t"), [(1, 1, 1), (2, 3, 2), (3, 2, 1), (2, 2, 3)])
def test_threshold_is_exact(ka, kb, t):
    p = 65521
    code = SecureMatMulCode((ka + t) * (kb + 1) + 2, ka, kb, t, p=p)
    assert code.threshold == (ka + t) * (kb + 1) - 1
    rng = np.random.default_rng(ka * 100 + kb * 10 + t)
    A, B = rng.integers(0, p, (2 * ka, 3)), rng.integers(0, p, (3, 2 * kb))
    As, Bs = code.encode(A, B)  # CSPRNG masks
    idx = rng.permutation(code.n)[: code.threshold]
    res = _products(code, As, Bs, idx)
    # Exactly the threshold decodes exactly; one fewer is refused.
    np.testing.assert_array_equal(code.decode(res, idx, shape=(2 * ka, 2 * kb)), _ref(A, B, p))
    with pytest.raises(NotEnoughShardsError, match=f"Need at least {code.threshold} distinct"):
        code.decode(res[:-1], idx[:-1], shape=(2 * ka, 2 * kb))
    # And the refusal is necessary: interpolating all n products, the product polynomial
    # has degree exactly threshold - 1 (top coefficient R_{t-1} S_{t-1} is nonzero).
    allres = _products(code, As, Bs, range(code.n)).reshape(code.n, -1)
    V = gfp_vandermonde(np.arange(1, code.n + 1), code.n, p)
    coeffs = gfp_matmul(gfp_inv(V, p), allres, p)
    assert np.all(coeffs[code.threshold :] == 0)
    assert np.any(coeffs[code.threshold - 1] != 0)


def test_decode_errors():
    code = SecureMatMulCode(6, 1, 1, 1, p=31)
    rng = np.random.default_rng(0)
    As, Bs = code.encode(rng.integers(0, 31, (2, 2)), rng.integers(0, 31, (2, 2)), rng=rng)
    res = _products(code, As, Bs, range(6))
    with pytest.raises(DuplicateIndexError):
        code.decode(res[[0, 0, 1]], [0, 0, 1], shape=(2, 2))
    with pytest.raises(NotEnoughShardsError, match="Need at least 3 distinct results to decode, got 2."):
        code.decode(res[:2], [0, 1], shape=(2, 2))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((2, 1, 1, 1), {"p": 31}, ValueError, "Argument 'n' must be at least (ka+t)*(kb+1)-1=3, not 2."),
        ((7, 1, 1, 1), {"p": 7}, ValueError, "Argument 'n' must be at most p-1=6, not 7."),
        ((5, 0, 1, 1), {"p": 31}, ValueError, "Argument 'ka' must be at least 1, not 0."),
        ((5, 1, 0, 1), {"p": 31}, ValueError, "Argument 'kb' must be at least 1, not 0."),
        ((5, 1, 1, 0), {"p": 31}, ValueError, "Argument 't' must be at least 1, not 0."),
        ((5, 1, 1, 1), {"p": 33}, ValueError, "Argument 'p' must be a prime, not 33."),
        ((5, 1, 1, 1), {"p": 2**31 + 11}, ValueError, "Argument 'p' must be at most 2147483647"),
    ],
)
def test_constructor_rejects(args, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        SecureMatMulCode(*args, **kwargs)


def test_known_answers():
    case = json.loads(DATA.read_text())["secure_matmul"]
    p = case["p"]
    code = SecureMatMulCode(case["n"], case["ka"], case["kb"], case["t"], p=p)
    assert code.threshold == case["threshold"]
    A_blocks, B_blocks = code._blocks(np.array(case["A"]), np.array(case["B"]))
    As, Bs = code._encode_with_masks(A_blocks, B_blocks, np.array(case["R"]), np.array(case["S"]))
    np.testing.assert_array_equal(As, case["A_shares"])
    np.testing.assert_array_equal(Bs, case["B_shares"])
    idx = case["decode_indices"]
    np.testing.assert_array_equal(code.decode(np.array(case["products"])[idx], idx,
                                              shape=np.array(case["C"]).shape), case["C"])


# --- privacy: t colluders learn nothing; t + 1 do -------------------------------------

P = 7


def _sampler(code, cols):
    """Vectorized views: column c of A (ka x draws) and row c of B are one trial."""

    def sample(secret, rng, draws):
        a, b = secret
        A = np.tile(np.array(a, dtype=np.int64)[:, None], (1, draws))
        B = np.tile(np.array(b, dtype=np.int64)[None, :], (draws, 1))
        As, Bs = code.encode(A, B, rng=rng)  # (n, 1, draws), (n, draws, 1) for ka = kb = 1
        return np.concatenate([As[cols][:, 0, :].T, Bs[cols][:, :, 0].T], axis=1)

    return sample


def test_t_colluders_see_independent_inputs_sampled():
    code = SecureMatMulCode(6, 1, 1, 2, p=P)
    rng = np.random.default_rng(0)
    res = independence_test(_sampler(code, [1, 4]), ([0], [0]), ([3], [5]), p=P, draws=15000,
                            rng=rng)
    assert res.passed, res


def test_t_plus_one_colluders_are_detected():
    code = SecureMatMulCode(6, 1, 1, 1, p=P)
    res = independence_test(_sampler(code, [0, 2]), ([0], [0]), ([3], [5]), p=P, draws=15000,
                            rng=np.random.default_rng(1))
    assert not res.passed and res.p_value < 1e-12


def _exact_view(code, cols):
    """One case per column: A (1 x cases) and B (cases x 1) with the given masks."""

    def view(secret, r):
        a, b = secret
        cases, t = r.shape[0], code.t
        A_blocks, B_blocks = code._blocks(np.full((1, cases), a), np.full((cases, 1), b))
        R = r[:, :t].T.reshape(t, 1, cases)
        S = r[:, t:].T.reshape(t, cases, 1)
        As, Bs = code._encode_with_masks(A_blocks, B_blocks, R, S)
        return np.concatenate([As[cols][:, 0, :].T, Bs[cols][:, :, 0].T], axis=1)

    return view


@pytest.mark.parametrize("cols", [[0], [3], [5]])
def test_one_colluder_exact(cols):
    code = SecureMatMulCode(6, 1, 1, 1, p=P)
    res = exact_independence(_exact_view(code, cols), (0, 0), (4, 6), p=P, n_random=2)
    assert res.passed and res.tv_distance == 0


def test_two_colluders_exact_with_t2_and_leak_with_t1():
    code2 = SecureMatMulCode(6, 1, 1, 2, p=P)
    assert exact_independence(_exact_view(code2, [0, 5]), (0, 0), (4, 6), p=P, n_random=4).passed
    code1 = SecureMatMulCode(6, 1, 1, 1, p=P)
    assert not exact_independence(_exact_view(code1, [0, 5]), (0, 0), (4, 6), p=P,
                                  n_random=2).passed


def test_zero_masks_are_detected():
    code = SecureMatMulCode(6, 1, 1, 1, p=P)

    def broken(secret, r):
        return _exact_view(code, [2])(secret, np.zeros_like(r))

    assert not exact_independence(broken, (0, 0), (4, 6), p=P, n_random=2).passed
