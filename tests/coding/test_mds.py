"""Tests of coding.mds.MDSCode and the generator helpers in coding.generators.

Tolerances: relative Frobenius error ``||x_hat - x|| / ||x||``. float64 payloads must decode
within 1e-10. float32 payloads get float64 shards by default and must decode within 1e-6 on
every pattern. Opt-in float32 shards carry their own rounding error (2**-24 relative),
which decoding multiplies by the condition number of the surviving submatrix, so those
checks use ``max(1e-6, 2**-22 * cond)``.
"""

from __future__ import annotations

import galois
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coding.errors import DuplicateIndexError, NotEnoughShardsError
from coding.generators import erasure_patterns, real_generator, submatrix_conditions
from coding.mds import MDSCode

GF257 = galois.GF(257)
FIELDS = {257: GF257, 65521: galois.GF(65521), 2**31 - 1: galois.GF(2**31 - 1)}


def rel_err(xh, x) -> float:
    x = np.asarray(x, dtype=np.float64)
    den = np.linalg.norm(x)
    return float(np.linalg.norm(np.asarray(xh, dtype=np.float64) - x) / (den if den else 1.0))


@st.composite
def code_case(draw, nmax=16):
    n = draw(st.integers(1, nmax))
    k = draw(st.integers(1, n))
    m = draw(st.integers(k, n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n)[:m]
    width = draw(st.integers(0, 9))
    return n, k, idx, width, rng


# -- round trips -----------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(code_case())
def test_real_float64_round_trip(case):
    n, k, idx, width, rng = case
    code = MDSCode(n, k)
    x = rng.standard_normal((k, width, 2))
    y = code.encode(x)
    assert y.shape == (n, width, 2) and y.dtype == np.float64
    np.testing.assert_array_equal(y[:k], x)
    xh = code.decode(y[idx], idx)
    assert xh.shape == x.shape and xh.dtype == np.float64
    assert rel_err(xh, x) <= 1e-10


@settings(max_examples=60, deadline=None)
@given(code_case())
def test_real_float32_round_trip(case):
    # Default: float64 shards, decoded in float64 and cast back to float32.
    n, k, idx, width, rng = case
    code = MDSCode(n, k)
    x = rng.standard_normal((k, width + 1)).astype(np.float32)
    y = code.encode(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y[:k], x)
    xh = code.decode(y[idx], idx, dtype=np.float32)
    assert xh.dtype == np.float32
    # Measured <= 1e-12 before the cast (worst condition numbers ~1e6 times 2^-53); the
    # cast rounds to the nearest float32, which is the payload itself almost everywhere.
    assert rel_err(xh, x) <= 1e-9


@settings(max_examples=60, deadline=None)
@given(code_case())
def test_real_float32_shards_round_trip(case):
    n, k, idx, width, rng = case
    idx = idx[:k]  # exactly k shards, so the submatrix is known
    code = MDSCode(n, k, float32_shards=True)
    x = rng.standard_normal((k, width + 1)).astype(np.float32)
    y = code.encode(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[:k], x)
    xh = code.decode(y[idx], idx)
    assert xh.dtype == np.float32
    cond = np.linalg.cond(code.generator[idx])
    assert rel_err(xh, x) <= max(1e-6, 2.0**-22 * cond)


def test_real_float32_meets_1e6_on_every_pattern():
    n, k = 12, 8
    rng = np.random.default_rng(3)
    x = rng.standard_normal((k, 512)).astype(np.float32)
    pats = erasure_patterns(n, k, count=1000, rng=np.random.default_rng(5))  # all 495
    y = MDSCode(n, k).encode(x)
    errs = np.array([rel_err(MDSCode(n, k).decode(y[p], p, dtype=np.float32), x) for p in pats])
    assert errs.max() <= 1e-7
    # float32 shards miss it on the worse patterns: why they are not the default.
    y32 = MDSCode(n, k, float32_shards=True).encode(x)
    errs32 = np.array([rel_err(MDSCode(n, k, float32_shards=True).decode(y32[p], p), x)
                       for p in pats])
    assert np.median(errs32) <= 1e-6 and errs32.max() > 1e-6


def test_nan_and_inf_are_refused_at_encode_and_propagate_through_decode():
    code = MDSCode(12, 8)
    x = np.random.default_rng(4).standard_normal((8, 9000))
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[3, 4321] = bad
        with pytest.raises(ValueError, match="Argument 'message' must be finite"):
            code.encode(y)
        with pytest.raises(ValueError, match="Argument 'message' must be finite"):
            MDSCode(4, 4).encode(y[:4])
    # Finite values so large that parity sums overflow are still finite input: accepted.
    with np.errstate(over="ignore"):
        code.encode(np.full((8, 3), 1e308))
    shards = code.encode(x)
    keep = [1, 2, 4, 5, 8, 9, 10, 11]
    shards[keep.index(9), 77] = np.nan  # a parity shard the decode multiplies
    out = code.decode(shards[keep], keep)
    lost = [0, 3, 6, 7]
    assert np.isnan(out[lost, 77]).all() and np.isfinite(np.delete(out, 77, axis=1)).all()


@settings(max_examples=60, deadline=None)
@given(code_case(nmax=20), st.sampled_from(sorted(FIELDS)))
def test_gfp_round_trip_exact(case, p):
    n, k, idx, width, rng = case
    field = FIELDS[p]
    code = MDSCode(n, k, field=field)
    x = rng.integers(0, p, size=(k, width), dtype=np.int64)
    y = code.encode(x)
    assert y.dtype == np.int64 and y.shape == (n, width)
    np.testing.assert_array_equal(y[:k], x)
    ref = (field(code.generator) @ field(x)).view(np.ndarray)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(code.decode(y[idx], idx), x)


def test_gfp_accepts_and_returns_galois_arrays():
    code = MDSCode(6, 4, field=GF257)
    x = GF257.Random((4, 5), seed=1)
    y = code.encode(x)
    assert isinstance(y, GF257)
    xh = code.decode(y[[5, 1, 4, 2]], [5, 1, 4, 2])
    assert isinstance(xh, GF257)
    np.testing.assert_array_equal(xh, x)


def test_gfp_generator_is_systematic_and_mds():
    code = MDSCode(7, 3, field=GF257)
    G = GF257(code.generator)
    np.testing.assert_array_equal(code.generator[:3], np.eye(3, dtype=np.int64))
    for p in erasure_patterns(7, 3, count=100):
        assert np.linalg.det(G[p]) != 0


def test_properties_and_generator_read_only():
    code = MDSCode(5, 3, seed=4)
    assert (code.n, code.k, code.field) == (5, 3, None)
    assert code.generator.shape == (5, 3)
    np.testing.assert_array_equal(code.generator[:3], np.eye(3))
    with pytest.raises(ValueError):
        code.generator[0, 0] = 2.0
    assert MDSCode(5, 3, field=GF257).field is GF257
    assert "GF(257)" in repr(MDSCode(5, 3, field=GF257))


def test_decode_uses_cache_and_extra_shards():
    code = MDSCode(10, 4)
    x = np.random.default_rng(0).standard_normal((4, 7))
    y = code.encode(x)
    idx = [9, 3, 7, 5, 8, 0]
    for _ in range(2):
        assert rel_err(code.decode(y[idx], idx), x) <= 1e-12
    assert rel_err(code.decode(y, range(10)), x) == 0.0  # systematic rows copied through


def test_n_equals_k_and_scalar_payload_rows():
    code = MDSCode(3, 3)
    x = np.arange(3.0)
    np.testing.assert_array_equal(code.encode(x), x)
    np.testing.assert_array_equal(code.decode(x[[2, 0, 1]], [2, 0, 1]), x)


# -- the chosen generator, every (n, k) with n <= 32 --------------------------------------
@pytest.mark.slow
def test_generator_conditioning_every_n_k():
    """>= 500 sampled patterns (all cyclic windows included), every 1 <= k < n <= 32.

    The sample uses seeds the generator never sees. Measured (scripts/choose_generator.py):
    random orthogonal parity blocks keep almost every (n, k) below condition 1e6 (float64
    error <= 1e-10), with a heavy tail up to ~1e7 for small k and n - k > k; this test pins
    that: at least 98% of the (n, k) pairs below 1e6, all below 1e8, and the float64 decode
    error at every pair's worst pattern below 1e-8.
    """
    rng = np.random.default_rng(1)
    worst = []
    for n in range(2, 33):
        for k in range(1, n):
            G = real_generator(n, k)
            pats = erasure_patterns(n, k, count=500, rng=np.random.default_rng(2024 + n * 64 + k))
            assert len(pats) >= min(500, _comb(n, k))
            conds = submatrix_conditions(G, pats)
            p = pats[int(np.argmax(conds))]
            x = rng.standard_normal((k, 16))
            xh = np.linalg.inv(G[p]) @ (G @ x)[p]
            worst.append((conds.max(), rel_err(xh, x), n, k))
    conds = np.array([w[0] for w in worst])
    c, _, n, k = max(worst)
    assert (conds <= 1e6).mean() >= 0.98
    assert c <= 1e8, f"worst condition {c:.3g} at (n, k) = ({n}, {k})"
    assert max(w[1] for w in worst) <= 1e-8


@pytest.mark.slow
def test_harmonic_generator_every_n_k():
    """The "harmonic" candidate on the same pattern sets: every pair within 1e-10.

    Measured (scripts/choose_generator.py and these sets): its worst sampled condition
    number over every 1 <= k < n <= 32 is about 2e6 (gap-driven, so it has no random tail)
    and the float64 decode error at each pair's worst pattern at most about 5e-11.
    """
    rng = np.random.default_rng(1)
    worst_c, worst_e = (0.0, (0, 0)), (0.0, (0, 0))
    for n in range(2, 33):
        for k in range(1, n):
            G = real_generator(n, k, kind="harmonic")
            pats = erasure_patterns(n, k, count=500, rng=np.random.default_rng(2024 + n * 64 + k))
            conds = submatrix_conditions(G, pats)
            p = pats[int(np.argmax(conds))]
            x = rng.standard_normal((k, 16))
            e = rel_err(np.linalg.inv(G[p]) @ (G @ x)[p], x)
            worst_c = max(worst_c, (float(conds.max()), (n, k)))
            worst_e = max(worst_e, (e, (n, k)))
    assert worst_c[0] <= 5e6, f"worst condition {worst_c[0]:.3g} at (n, k) = {worst_c[1]}"
    assert worst_e[0] <= 1e-10, f"worst error {worst_e[0]:.3g} at (n, k) = {worst_e[1]}"


@pytest.mark.parametrize("n", range(2, 13))
def test_harmonic_generator_systematic_unit_rows_every_pattern(n):
    """Small codes: check every erasure pattern, not a sample."""
    for k in range(1, n):
        G = real_generator(n, k, kind="harmonic")
        np.testing.assert_allclose(G[:k], np.eye(k), atol=1e-15)
        np.testing.assert_allclose(np.linalg.norm(G, axis=1), 1.0, rtol=1e-13)
        conds = submatrix_conditions(G, erasure_patterns(n, k, count=_comb(n, k)))
        assert conds.max() <= 1e3, f"(n, k) = ({n}, {k}): {conds.max():.3g}"


def _comb(n, k):
    from math import comb

    return comb(n, k)


def test_erasure_patterns_include_windows():
    pats = {tuple(p) for p in erasure_patterns(20, 6, count=500)}
    assert len(pats) >= 500
    for start in range(20):
        assert tuple(sorted((start + np.arange(6)) % 20)) in pats
    assert len(erasure_patterns(5, 2, count=500)) == 10  # all subsets when few


# -- split / join ----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3, 7, 8])
@pytest.mark.parametrize("length", [0, 1, 2, 6, 7, 9, 1001])
def test_split_join_round_trip(k, length):
    v = np.arange(length, dtype=np.float32) + 1
    rows, ln = MDSCode.split(v, k)
    assert rows.shape == (k, -(-length // k)) and rows.dtype == np.float32 and ln == length
    out = MDSCode.join(rows, ln)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, v)


def test_split_encode_decode_join():
    v = np.random.default_rng(2).standard_normal(1237)
    code = MDSCode(9, 5)
    rows, ln = code.split(v, code.k)
    y = code.encode(rows)
    idx = [8, 7, 6, 5, 0]
    np.testing.assert_allclose(code.join(code.decode(y[idx], idx), ln), v, rtol=0, atol=1e-11)


# -- bad arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((0, 1), {}, ValueError, r"Argument 'n' must be at least 1, not 0\."),
        ((4, 0), {}, ValueError, r"Argument 'k' must be at least 1, not 0\."),
        ((4, 5), {}, ValueError, r"Argument 'k' must be at most n=4, not 5\."),
        ((4.0, 2), {}, TypeError, r"Argument 'n' must be an integer"),
        ((4, 2), {"seed": 1.5}, TypeError, r"Argument 'seed' must be an integer"),
        ((4, 2), {"field": 257}, TypeError, r"Argument 'field' must be None or a galois prime"),
        ((4, 2), {"field": galois.GF(2**8)}, TypeError, r"Argument 'field' must be None"),
        ((258, 2), {"field": GF257}, ValueError, r"Argument 'n' must be at most p=257, not 258\."),
    ],
)
def test_constructor_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MDSCode(*args, **kwargs)


def test_encode_errors():
    code = MDSCode(5, 3)
    with pytest.raises(ValueError, match=r"Argument 'message' must have 3 rows .*not 2\."):
        code.encode(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"Argument 'message' must have at least 1 dim"):
        code.encode(np.float64(1.0))
    gcode = MDSCode(5, 3, field=GF257)
    with pytest.raises(ValueError, match=r"Argument 'message' must hold values in \[0, 257\)"):
        gcode.encode(np.full((3, 2), 257))
    with pytest.raises(TypeError, match=r"Argument 'message' must hold integers"):
        gcode.encode(np.zeros((3, 2)))
    with pytest.raises(TypeError, match=r"Argument 'message' must be an array over GF\(257\)"):
        gcode.encode(galois.GF(263).Zeros((3, 2)))


def test_decode_errors():
    code = MDSCode(6, 3)
    y = code.encode(np.ones((3, 2)))
    with pytest.raises(DuplicateIndexError, match=r"Shard index 4 was given more than once"):
        code.decode(y[[4, 4, 5]], [4, 4, 5])
    with pytest.raises(NotEnoughShardsError, match=r"Need at least 3 distinct shards .*got 2\."):
        code.decode(y[[1, 2]], [1, 2])
    with pytest.raises(ValueError, match=r"Argument 'index' must be at most 5, not 6\."):
        code.decode(y[:3], [0, 1, 6])
    with pytest.raises(ValueError, match=r"Argument 'index' must be at least 0, not -1\."):
        code.decode(y[:3], [0, 1, -1])
    with pytest.raises(ValueError, match=r"Argument 'shards' must have 4 rows .*not 3\."):
        code.decode(y[:3], [0, 1, 2, 3])
    err = NotEnoughShardsError
    with pytest.raises(err) as info:
        MDSCode(6, 3, field=GF257).decode(np.zeros((1, 2), dtype=np.int64), [0])
    assert (info.value.needed, info.value.got) == (3, 1)


def test_split_join_errors():
    with pytest.raises(ValueError, match=r"Argument 'k' must be at least 1, not 0\."):
        MDSCode.split(np.ones(3), 0)
    with pytest.raises(ValueError, match=r"Argument 'length' must be at most rows.size=4, not 5\."):
        MDSCode.join(np.ones((2, 2)), 5)
    with pytest.raises(ValueError, match=r"Argument 'length' must be at least 0, not -1\."):
        MDSCode.join(np.ones((2, 2)), -1)


def test_real_generator_errors():
    with pytest.raises(ValueError, match=r"Argument 'kind' must be one of"):
        real_generator(4, 2, kind="nope")
