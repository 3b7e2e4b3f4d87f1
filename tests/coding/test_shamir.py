"""SecretShareCode (packed Shamir): round trips, linearity, known answers, t-privacy.

Also exercises the generic checks in :mod:`coding.privacy` (their power and validation).
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coding.errors import DuplicateIndexError, NotEnoughShardsError
from coding.privacy import exact_independence, independence_test
from coding.shamir import SecretShareCode, lagrange_matrix

DATA = Path(__file__).resolve().parents[1] / "data" / "gfp_known_answers.json"


@settings(max_examples=50, deadline=None)
@given(
    k=st.integers(1, 4),
    t=st.integers(0, 3),
    extra=st.integers(0, 4),
    tail=st.lists(st.integers(1, 4), max_size=2),
    p=st.sampled_from([31, 257, 65521, 2**31 - 1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_and_linearity(k, t, extra, tail, p, seed):
    n = k + t + extra
    code = SecretShareCode(n, k, t, p=p)
    rng = np.random.default_rng(seed)
    X = rng.integers(0, p, (k, *tail))
    Y = rng.integers(0, p, (k, *tail))
    SX, SY = code.encode(X, rng=rng), code.encode(Y)
    assert SX.shape == (n, *tail)
    idx = rng.permutation(n)[: k + t + rng.integers(0, extra + 1)]
    np.testing.assert_array_equal(code.decode(SX[idx], idx), X)
    # Linear: the sum of shares is a share of the sum.
    np.testing.assert_array_equal(code.decode((SX + SY)[idx] % p, idx), (X + Y) % p)


def test_pieces_are_not_shares():
    code = SecretShareCode(6, 2, 1, p=65521)
    X = np.array([[5], [7]])
    S = code.encode(X, rng=np.random.default_rng(0))
    assert not np.array_equal(S[:2], X)
    assert set(code.alphas).isdisjoint(code.betas) and 0 not in code.alphas
    assert len(set(code.betas)) == code.k + code.t


def test_decode_errors():
    code = SecretShareCode(5, 2, 1, p=257)
    S = code.encode(np.array([[1, 2], [3, 4]]))
    with pytest.raises(NotEnoughShardsError, match="Need at least 3 distinct shares to decode, got 2."):
        code.decode(S[:2], [0, 1])
    with pytest.raises(DuplicateIndexError, match="Shard index 4 was given more than once"):
        code.decode(S[[4, 4, 1]], [4, 4, 1])
    with pytest.raises(ValueError, match=r"must have entries in \[0, n=5\), not -1."):
        code.decode(S[:3], [0, 1, -1])


def test_encode_rejects_bad_message():
    code = SecretShareCode(5, 2, 1, p=257)
    with pytest.raises(ValueError, match=re.escape("Argument 'message' must have k=2 rows")):
        code.encode(np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=re.escape("Argument 'message' must have entries in [0, p=257)")):
        code.encode(np.full((2, 2), 300))
    with pytest.raises(TypeError, match="Argument 'message' must be an integer array"):
        code.encode(np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("args", "p", "error", "message"),
    [
        ((2, 2, 1), 31, ValueError, "Argument 'n' must be at least k+t=3, not 2."),
        ((5, 2, 1), 7, ValueError, "Argument 'n' must be at most p-k-t=4, not 5."),
        ((4, 0, 1), 31, ValueError, "Argument 'k' must be at least 1, not 0."),
        ((4, 2, -1), 31, ValueError, "Argument 't' must be at least 0, not -1."),
        ((4, 2, 1), 32, ValueError, "Argument 'p' must be a prime, not 32."),
        ((4, 2, 1.0), 31, TypeError, "Argument 't' must be an integer"),
    ],
)
def test_constructor_rejects(args, p, error, message):
    with pytest.raises(error, match=re.escape(message)):
        SecretShareCode(*args, p=p)


def test_properties():
    code = SecretShareCode(6, 2, 3, p=257)
    assert (code.n, code.k, code.t, code.p, code.threshold) == (6, 2, 3, 257, 5)


def test_known_answers():
    case = json.loads(DATA.read_text())["secret_share"]
    code = SecretShareCode(case["n"], case["k"], case["t"], p=case["p"])
    assert list(code.alphas) == case["alphas"] and list(code.betas) == case["betas"]
    S = code._encode_with_masks(np.array(case["message"]), np.array(case["masks"]))
    np.testing.assert_array_equal(S, case["shares"])
    idx = case["decode_indices"]
    np.testing.assert_array_equal(code.decode(np.array(case["shares"])[idx], idx), case["message"])


def test_lagrange_matrix_interpolates():
    p = 31
    L = lagrange_matrix([1, 2, 3], [1, 2, 3, 10], p)
    np.testing.assert_array_equal(L[:3], np.eye(3, dtype=np.int64))
    # The polynomial x^2 takes 1, 4, 9 on the nodes and 100 = 7 mod 31 at 10.
    assert int(L[3] @ np.array([1, 4, 9]) % p) == 100 % p
    with pytest.raises(ValueError, match="distinct"):
        lagrange_matrix([1, 1], [2], p)


# --- privacy ---------------------------------------------------------------------------

P = 7


def _sampler(code, cols, broken=False):
    """Views of shares ``cols``; each column of a (k, draws) message is one trial."""

    def sample(secret, rng, draws):
        X = np.tile(np.array(secret, dtype=np.int64)[:, None], (1, draws))
        if broken:
            return code._encode_with_masks(X, np.zeros((code.t, draws), np.int64))[cols].T
        return code.encode(X, rng=rng)[cols].T

    return sample


def test_t_shares_are_independent_sampled():
    code = SecretShareCode(3, 1, 2, p=P)
    res = independence_test(_sampler(code, [0, 2]), [0], [4], p=P, draws=3000,
                            rng=np.random.default_rng(0))
    assert res.passed and res.cells == 49


def test_t_plus_one_shares_leak_sampled():
    code = SecretShareCode(3, 1, 1, p=P)
    res = independence_test(_sampler(code, [0, 2]), [0], [4], p=P, draws=3000,
                            rng=np.random.default_rng(0))
    assert not res.passed and res.tv_distance > 0.9


def test_zero_masks_leak_sampled():
    code = SecretShareCode(3, 1, 1, p=P)
    res = independence_test(_sampler(code, [1], broken=True), [0], [4], p=P, draws=500,
                            rng=np.random.default_rng(0))
    assert not res.passed


def _exact_view(code, cols):
    def view(secret, r):
        X = np.tile(np.array(secret, dtype=np.int64)[:, None], (1, r.shape[0]))
        return code._encode_with_masks(X, r.T.copy())[cols].T

    return view


@pytest.mark.parametrize("cols", [[0, 1], [0, 3], [1, 2], [2, 3]])
def test_every_t_subset_exact(cols):
    code = SecretShareCode(4, 2, 2, p=11)
    assert exact_independence(_exact_view(code, cols), [0, 0], [3, 6], p=11, n_random=2).passed


def test_more_than_t_shares_leak_exact():
    code = SecretShareCode(4, 2, 2, p=11)
    part = exact_independence(_exact_view(code, [0, 1, 3]), [0, 0], [3, 6], p=11, n_random=2)
    assert not part.passed and 0 < part.tv_distance
    full = exact_independence(_exact_view(code, [0, 1, 2, 3]), [0, 0], [3, 6], p=11, n_random=2)
    assert not full.passed and full.tv_distance == 1.0


def test_false_alarm_rate_is_near_alpha():
    # Under independence the p-values are ~uniform: with alpha = 0.2 about a fifth fail.
    code = SecretShareCode(3, 1, 1, p=5)
    rng = np.random.default_rng(7)
    fails = sum(
        not independence_test(_sampler(code, [1]), [0], [3], p=5, draws=200, rng=rng,
                              alpha=0.2).passed
        for _ in range(200)
    )
    assert 15 <= fails <= 70


def test_privacy_check_validation():
    code = SecretShareCode(3, 1, 1, p=P)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="Argument 'draws' must be at least 10, not 5."):
        independence_test(_sampler(code, [0]), [0], [1], p=P, draws=5, rng=rng)
    with pytest.raises(ValueError, match="Argument 'alpha' must be less than 1.0"):
        independence_test(_sampler(code, [0]), [0], [1], p=P, draws=50, rng=rng, alpha=1.0)
    with pytest.raises(TypeError, match="Argument 'rng' must be a numpy Generator"):
        independence_test(_sampler(code, [0]), [0], [1], p=P, draws=50, rng=3)
    with pytest.raises(ValueError, match=r"must be integers in \[0, p=5\)"):
        independence_test(_sampler(code, [0]), [0], [1], p=5, draws=50, rng=rng)
    with pytest.raises(ValueError, match="cells, more than 65536"):
        independence_test(lambda s, r, d: np.zeros((d, 6), np.int64), 0, 1, p=P, draws=50, rng=rng)
    with pytest.raises(ValueError, match="Argument 'n_random' makes p\\*\\*n_random"):
        exact_independence(_exact_view(code, [0]), [0], [1], p=P, n_random=6)
    with pytest.raises(ValueError, match="must have shape"):
        exact_independence(lambda s, r: np.zeros((1, 1), np.int64), 0, 1, p=P, n_random=1)
