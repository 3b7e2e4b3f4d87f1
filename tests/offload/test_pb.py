"""Poisson-binomial DP against brute-force enumeration."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload import pb


def brute_pmf(p):
    n = len(p)
    out = np.zeros(n + 1)
    for bits in itertools.product((0, 1), repeat=n):
        prob = 1.0
        for b, q in zip(bits, p):
            prob *= q if b else 1 - q
        out[sum(bits)] += prob
    return out


probs = st.lists(st.floats(0.0, 1.0), min_size=0, max_size=9)


@settings(max_examples=60, deadline=None)
@given(probs)
def test_pmf_matches_brute_force(p):
    np.testing.assert_allclose(pb.pmf(p), brute_pmf(p), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(probs, st.integers(-2, 11))
def test_tail_matches_brute_force(p, k):
    f = brute_pmf(p)
    want = 1.0 if k <= 0 else f[k:].sum() if k <= len(p) else 0.0
    assert pb.tail(p, k) == pytest.approx(want, abs=1e-12)


def test_zero_entry_acts_as_removal():
    rng = np.random.default_rng(0)
    p = rng.random(7)
    rows = np.tile(p, (7, 1))
    np.fill_diagonal(rows, 0.0)
    loo = pb.batch_pmf(rows)
    for j in range(7):
        np.testing.assert_allclose(loo[j, :7], pb.pmf(np.delete(p, j)), atol=1e-14)
        assert loo[j, 7] == 0.0


def test_batch_helpers_edges():
    f = pb.pmf([0.5, 0.5])
    assert pb.batch_tail(f, 0) == 1.0
    assert pb.batch_tail(f, 3) == 0.0
    assert pb.batch_at(f, -1) == 0.0
    assert pb.batch_at(f, 1) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [[[-0.1, 0.5]], [[0.5, 1.5]]])
def test_batch_pmf_rejects_non_probabilities(bad):
    with pytest.raises(ValueError, match="'P'"):
        pb.batch_pmf(bad)


def test_batch_pmf_rejects_wrong_rank():
    with pytest.raises(ValueError, match="2 dimensions"):
        pb.batch_pmf([0.5])
