"""GASP codes: thresholds against SecureMatMulCode, orientation, round trips, t-privacy."""

import itertools
import re

import numpy as np
import pytest

from coding.degree_table import all_nonsingular, gfp_powers, outer_ok
from coding.errors import NotEnoughShardsError
from coding.gasp import GASPCode, gasp_table, least_threshold, yang_lee_table
from coding.secure import SecureMatMulCode
from tests.coding.mask_views import side_is_private, side_leaks

P = 2**31 - 1


def _products(code, As, Bs, idx):
    return np.stack([code.worker_product(As[i], Bs[i]) for i in idx])


def _ref(A, B, p):
    return (A.astype(object) @ B.astype(object)) % p


# Known answers: D'Oliveira, El Rouayheb and Karpuk (2020) and the figures.
@pytest.mark.parametrize(("ka", "kb", "t", "gasp", "today", "swapped"), [
    (4, 4, 2, 27, 29, False),
    (4, 4, 6, 43, 49, False),
    (4, 4, 8, 47, 59, False),
    (2, 8, 3, 32, 44, True),
])
def test_threshold_beats_secure_matmul(ka, kb, t, gasp, today, swapped):
    assert (ka + t) * (kb + 1) - 1 == today
    assert least_threshold(ka, kb, t) == gasp
    code = GASPCode(gasp + 1, ka, kb, t, p=P)
    assert code.threshold == gasp and code.swapped is swapped


def test_tables_never_lose_to_yang_lee_and_decode_every_block():
    for ka, kb, t in itertools.product(range(1, 5), range(1, 5), range(1, 5)):
        yl = yang_lee_table(ka, kb, t)
        assert yl.threshold == (ka + t) * (kb + 1) - 1
        assert least_threshold(ka, kb, t) <= yl.threshold
        for r in range(1, t + 1):
            assert outer_ok(gasp_table(ka, kb, t, r))


@pytest.mark.parametrize(("n", "ka", "kb", "t"), [
    (13, 2, 2, 2),   # yang-lee table
    (29, 4, 4, 2),   # gasp-r1: gaps in the mask and product exponents
    (34, 2, 8, 3),   # swapped orientation
    (16, 2, 3, 2),   # gasp-r1 at a small size
])
def test_round_trip_any_threshold_subset(n, ka, kb, t):
    code = GASPCode(n, ka, kb, t, p=P)
    rng = np.random.default_rng(n)
    A, B = rng.integers(0, P, (7, 5)), rng.integers(0, P, (5, 9))
    As, Bs = code.encode(A, B)  # CSPRNG masks
    for _ in range(3):
        idx = list(rng.permutation(n)[: code.threshold])
        res = _products(code, As, Bs, idx)
        np.testing.assert_array_equal(code.decode(res, idx, shape=(7, 9)), _ref(A, B, P))
    with pytest.raises(NotEnoughShardsError, match=f"Need at least {code.threshold} distinct"):
        code.decode(res[:-1], idx[:-1], shape=(7, 9))


def test_every_threshold_subset_is_invertible():
    # gasp-r1 at (4, 4, 2) has gaps in its product exponents: check all C(30, 27) subsets.
    code = GASPCode(30, 4, 4, 2, p=P)
    assert code.table.name == "gasp-r1"
    assert all_nonsingular(np.arange(1, 31), code.table.degrees, P)


def test_decode_takes_the_shape_it_is_given():
    code = GASPCode(13, 2, 2, 2, p=P)
    rng = np.random.default_rng(0)
    A1, B1 = rng.integers(0, P, (5, 3)), rng.integers(0, P, (3, 5))
    job1 = code.encode(A1, B1)
    code.encode(rng.integers(0, P, (3, 2)), rng.integers(0, P, (2, 3)))  # job 2
    idx = list(range(code.threshold))
    C = code.decode(_products(code, *job1, idx), idx, shape=(5, 5))
    np.testing.assert_array_equal(C, _ref(A1, B1, P))
    with pytest.raises(TypeError, match="shape"):
        code.decode(_products(code, *job1, idx), idx)


def test_secure_matmul_decode_takes_the_shape_it_is_given():
    code = SecureMatMulCode(8, 2, 1, 1, p=P)
    rng = np.random.default_rng(1)
    A1, B1 = rng.integers(0, P, (5, 3)), rng.integers(0, P, (3, 5))
    job1 = code.encode(A1, B1)
    code.encode(rng.integers(0, P, (3, 2)), rng.integers(0, P, (2, 3)))  # job 2
    idx = list(range(code.threshold))
    res = _products(code, *job1, idx)
    np.testing.assert_array_equal(code.decode(res, idx, shape=(5, 5)), _ref(A1, B1, P))
    with pytest.raises(TypeError, match="shape"):
        code.decode(res, idx)


@pytest.mark.parametrize(("n", "ka", "kb", "t", "p", "table"), [
    (11, 2, 2, 2, 13, "yang-lee"),
    (14, 2, 3, 2, 31, "gasp-r1"),  # masks of A at x^6, x^8: a gap
])
def test_any_t_workers_learn_nothing_and_t_plus_one_do(n, ka, kb, t, p, table):
    code = GASPCode(n, ka, kb, t, p=p)
    assert code.table.name == table and not code.swapped
    for side, blocks in (("a", ka), ("b", kb)):
        secrets = ([0] * blocks, [2 + j for j in range(blocks)])
        for cols in itertools.combinations(range(n), t):
            assert side_is_private(code, side, cols, ka, kb, secrets, p), (side, cols)
        for cols in [tuple(range(t + 1)), (0, n // 2, n - 1)[: t + 1]]:
            assert side_leaks(code, side, cols, ka, kb, p), (side, cols)


def test_gapped_masks_that_are_singular_mod_p_are_refused():
    # x^6 and x^8 at x and p - x agree mod p: such a pair of workers would learn A.
    pts = np.array([1, 30])
    assert not all_nonsingular(pts, (6, 8), 31)
    M = gfp_powers(pts, (6, 8), 31)
    assert (M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]) % 31 == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(n=26, ka=4, kb=4, t=2, p=P), "Argument 'n' must be at least the least threshold=27, "
                                       "not 26."),
    (dict(n=13, ka=0, kb=2, t=2, p=P), "Argument 'ka' must be at least 1, not 0."),
    (dict(n=13, ka=2, kb=2, t=0, p=P), "Argument 't' must be at least 1, not 0."),
    (dict(n=13, ka=2, kb=2, t=2, p=12), "Argument 'p' must be a prime, not 12."),
    (dict(n=13, ka=2, kb=2, t=2, p=P, orientation="up"), "Argument 'orientation' must be one of"),
])
def test_constructor_rejects(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        GASPCode(**kwargs)
