"""The shared argument checks: one wording that names the argument and its range."""

import numpy as np
import pytest

from coding.validate import check_int, check_prime, check_real


def test_check_int_accepts_numpy_integers():
    assert check_int("k", np.int64(3), low=1, high=8) == 3


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({"low": 1}, 0, "Argument 'k' must be at least 1, not 0."),
        ({"high": 8, "high_name": "n"}, 9, "Argument 'k' must be at most n=8, not 9."),
    ],
)
def test_check_int_range_wording(kwargs, value, message):
    with pytest.raises(ValueError) as info:
        check_int("k", value, **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("value", [1.5, "3", True, None])
def test_check_int_rejects_non_integers(value):
    with pytest.raises(TypeError, match="Argument 'k' must be an integer"):
        check_int("k", value)


def test_check_real_bounds_and_finiteness():
    assert check_real("eps", 0.05, low=0, high=1) == 0.05
    with pytest.raises(ValueError, match="Argument 'eps' must be greater than 0"):
        check_real("eps", 0.0, low=0, low_open=True)
    with pytest.raises(ValueError, match="Argument 'eps' must be finite"):
        check_real("eps", float("nan"))


@pytest.mark.parametrize("p", [2, 3, 257, 65521, 2**25 - 39, 2**31 - 1, 2**61 - 1])
def test_check_prime_accepts_primes(p):
    assert check_prime("p", p) == p


@pytest.mark.parametrize("p", [1, 4, 65535, 2**25 - 37, 561])
def test_check_prime_rejects_composites(p):
    with pytest.raises(ValueError, match="Argument 'p' must be"):
        check_prime("p", p)
