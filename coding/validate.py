"""Argument checks with one wording everywhere.

Every public constructor and function validates at the top with these helpers, never with
``assert`` (``python -O`` strips asserts). The message always names the argument and the
allowed range, for example ``Argument 'k' must be at most n=8, not 9.``
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_int", "check_prime", "check_real", "check_shape"]


def check_int(
    name: str,
    value: object,
    *,
    low: int | None = None,
    high: int | None = None,
    low_name: str | None = None,
    high_name: str | None = None,
) -> int:
    """Return ``value`` as an int, or raise naming ``name`` and the allowed range.

    ``low_name``/``high_name`` name the bound when it comes from another argument, so the
    message reads ``must be at most n=8`` rather than ``must be at most 8``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Argument {name!r} must be an integer, not {type(value).__name__} {value!r}.")
    v = int(value)
    lo = None if low is None else (f"{low_name}={low}" if low_name else str(low))
    hi = None if high is None else (f"{high_name}={high}" if high_name else str(high))
    if low is not None and v < low:
        raise ValueError(f"Argument {name!r} must be at least {lo}, not {v}.")
    if high is not None and v > high:
        raise ValueError(f"Argument {name!r} must be at most {hi}, not {v}.")
    return v


def check_real(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float within bounds, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Argument {name!r} must be a real number, not {type(value).__name__} {value!r}.")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"Argument {name!r} must be finite, not {v}.")
    if low is not None and (v <= low if low_open else v < low):
        word = "greater than" if low_open else "at least"
        raise ValueError(f"Argument {name!r} must be {word} {low}, not {v}.")
    if high is not None and (v >= high if high_open else v > high):
        word = "less than" if high_open else "at most"
        raise ValueError(f"Argument {name!r} must be {word} {high}, not {v}.")
    return v


def _is_prime(p: int) -> bool:
    if p < 2:
        return False
    small = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
    for q in small:
        if p % q == 0:
            return p == q
    d, s = p - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in small:  # deterministic for p < 3.3e24
        x = pow(a, d, p)
        if x in (1, p - 1):
            continue
        for _ in range(s - 1):
            x = x * x % p
            if x == p - 1:
                break
        else:
            return False
    return True


def check_prime(name: str, value: object, *, low: int = 2, high: int | None = None) -> int:
    """Return ``value`` as an int if it is a prime within bounds, else raise naming ``name``."""
    p = check_int(name, value, low=low, high=high)
    if not _is_prime(p):
        raise ValueError(f"Argument {name!r} must be a prime, not {p}.")
    return p


def check_shape(name: str, array: np.ndarray, *, ndim_min: int = 1, rows: int | None = None) -> None:
    """Check an array argument's rank and leading dimension."""
    if array.ndim < ndim_min:
        raise ValueError(f"Argument {name!r} must have at least {ndim_min} dimension(s), not shape {array.shape}.")
    if rows is not None and array.shape[0] != rows:
        raise ValueError(f"Argument {name!r} must have {rows} rows (leading dimension), not {array.shape[0]}.")
