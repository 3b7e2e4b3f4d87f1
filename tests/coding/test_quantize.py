"""Quantizer: signed fixed point in GF(p), overflow checks and choosing frac_bits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coding.errors import OverflowRiskError
from coding.quantize import Quantizer, choose_frac_bits, next_prime

P31 = 2**31 - 1


def test_round_trip_and_negative_encoding():
    q = Quantizer(P31, 16)
    v = q.quantize([-1.5, 0.25, 0.0])
    assert v.dtype == np.int64
    assert v[0] == P31 - int(1.5 * 2**16)
    np.testing.assert_array_equal(q.dequantize(v), [-1.5, 0.25, 0.0])


@settings(max_examples=50, deadline=None)
@given(
    frac_bits=st.integers(0, 20),
    n_terms=st.integers(1, 50),
    seed=st.integers(0, 2**32 - 1),
)
def test_sum_mod_p_equals_sum_of_values(frac_bits, n_terms, seed):
    # Within check()'s bound, adding quantized values mod p never wraps around.
    q = Quantizer(P31, frac_bits)
    bound = (P31 // 2 // n_terms) / 2**frac_bits
    q.check(n_terms, bound)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-bound, bound, (n_terms, 5))
    total = q.quantize(x).sum(axis=0) % P31
    expected = np.rint(x * 2.0**frac_bits).sum(axis=0) / 2.0**frac_bits
    np.testing.assert_array_equal(q.dequantize(total), expected)


def test_rounding_error_is_half_a_step():
    q = Quantizer(P31, 10)
    x = np.random.default_rng(0).uniform(-100, 100, 1000)
    assert np.max(np.abs(q.dequantize(q.quantize(x)) - x)) <= 0.5 * q.resolution


def test_check_raises_with_full_message():
    q = Quantizer(P31, 16)
    with pytest.raises(OverflowRiskError) as info:
        q.check(1000, 100.0)
    msg = str(info.value)
    for part in ("n_terms=1000", "bound=100.0", f"p={P31}", "frac_bits=16", "use bound <= ", "or p >= "):
        assert part in msg
    safe = float(msg.split("use bound <= ")[1].split(" ")[0])
    q.check(1000, safe)  # the suggested bound is safe
    p_min = int(msg.split("or p >= ")[1].rstrip("."))
    Quantizer(min(p_min, P31), 16)  # the suggested prime is a prime
    assert next_prime(p_min) == p_min


def test_quantize_refuses_out_of_range_and_non_finite():
    q = Quantizer(65521, 8)
    assert q.max_abs == 32760 / 256
    q.quantize([q.max_abs, -q.max_abs])
    with pytest.raises(OverflowRiskError, match="does not fit p=65521 with frac_bits=8"):
        q.quantize([q.max_abs + 1.0])
    with pytest.raises(ValueError, match="must be finite"):
        q.quantize([np.nan])
    with pytest.raises(ValueError, match="must be finite"):
        q.quantize([np.inf])


def test_dequantize_refuses_out_of_field():
    with pytest.raises(ValueError, match=r"must have entries in \[0, p=7\)"):
        Quantizer(7, 0).dequantize([7])


def test_choose_frac_bits():
    f = choose_frac_bits(P31, 1000, 100.0)
    Quantizer(P31, f).check(1000, 100.0)
    with pytest.raises(OverflowRiskError):
        Quantizer(P31, f + 1).check(1000, 100.0)
    with pytest.raises(OverflowRiskError, match="No frac_bits is safe for p=7, n_terms=10"):
        choose_frac_bits(7, 10, 1.0)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((8, 4), ValueError, "Argument 'p' must be a prime, not 8."),
        ((2, 4), ValueError, "Argument 'p' must be at least 3, not 2."),
        ((7, -1), ValueError, "Argument 'frac_bits' must be at least 0, not -1."),
        ((7, 53), ValueError, "Argument 'frac_bits' must be at most 52, not 53."),
        ((7, 1.5), TypeError, "Argument 'frac_bits' must be an integer"),
    ],
)
def test_constructor_rejects(args, error, message):
    with pytest.raises(error, match=message):
        Quantizer(*args)


def test_check_rejects_bad_arguments():
    q = Quantizer(P31, 4)
    with pytest.raises(ValueError, match="Argument 'n_terms' must be at least 1, not 0."):
        q.check(0, 1.0)
    with pytest.raises(ValueError, match="Argument 'bound' must be at least 0.0"):
        q.check(1, -1.0)
    with pytest.raises(ValueError, match="Argument 'bound' must be greater than 0.0"):
        choose_frac_bits(P31, 1, 0.0)
