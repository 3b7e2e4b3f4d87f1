"""The code a round uses (:class:`CodeSpec`) and the helpers every mode shares.

Split from :mod:`exchange.reduce` so that the secure fixed-point codec
(:mod:`exchange.fixed_point`) and the round arithmetic can both use it; import
``CodeSpec`` from :mod:`exchange.reduce` or :mod:`exchange` as before.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coding._validate import check_int, check_prime
from coding.errors import DuplicateIndexError, OverflowRiskError

__all__ = ["MODES", "SECURE_LAYOUT", "CodeSpec"]

# How secure shares lay out the fixed-point limbs (exchange/fixed_point.py): update rows of
# ceil(L/k) entries, limbs interleaved. Recorded in shard headers; bump it if it changes.
SECURE_LAYOUT = "rows-interleaved-limbs"

MODES = ("plain", "backup", "mds", "gradient", "gradient+mds", "secure")
_SLICED = ("plain", "backup", "gradient")


@dataclass(frozen=True)
class CodeSpec:
    """The code a round uses: mode and parameters, validated on construction.

    Parameters
    ----------
    mode : str
        One of ``MODES``; see the module docstring.
    n : int
        Number of workers, each also aggregator of one merged shard (``n >= 1``).
    k : int, optional
        ``mds``/``gradient+mds``: merged shards needed to decode (default ``n - s``).
        ``secure``: message rows per share; any ``k + t`` merged shards decode (default
        ``n - t``, so every aggregator is needed; pick ``k < n - t`` for slack). Other
        modes slice updates ``n`` ways and require ``k`` unset or ``n``.
    s : int, optional
        ``backup``/``gradient``/``gradient+mds``: stragglers tolerated among
        contributions (``0 <= s < n``). ``mds``: only the default for ``k``. Must be 0 in
        ``plain`` and ``secure``.
    t : int, optional
        ``secure`` only: colluding aggregators tolerated, ``1 <= t <= n - k``. Any ``t``
        is allowed relative to ``k`` (``t >= k`` only costs bandwidth); elsewhere it must
        be 0.
    p : int, optional
        ``secure``: the prime field, at most ``2**31 - 1`` (shares are stored as uint32).
    frac_bits, int_bits, limb_bits : int, optional
        ``secure`` fixed point: fractional bits, integer range ``|x| < 2**int_bits`` and
        limb width; see the module docstring.
    seed : int, optional
        Seed of the real MDS generator (every party must use the same).
    """

    mode: str
    n: int
    k: int | None = None
    s: int = 0
    t: int = 0
    p: int = 2**31 - 1
    frac_bits: int = 32
    int_bits: int = 14
    limb_bits: int = 24
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Argument 'mode' must be one of {', '.join(MODES)}, not {self.mode!r}.")
        n = check_int("n", self.n, low=1)
        s = check_int("s", self.s, low=0, high=n - 1, high_name="n-1")
        t = check_int("t", self.t, low=0)
        if self.mode in ("plain", "secure") and s != 0:
            raise ValueError(f"Argument 's' must be 0 in {self.mode} mode, not {s}.")
        if self.mode != "secure" and t != 0:
            raise ValueError(f"Argument 't' must be 0 outside secure mode, not {t}.")
        if self.mode == "secure":
            check_int("t", t, low=1, high=n - 1, high_name="n-1")
            default_k = n - t
        elif self.mode in ("mds", "gradient+mds"):
            default_k = n - s
        else:
            default_k = n
        k = default_k if self.k is None else check_int("k", self.k, low=1, high=n, high_name="n")
        if self.mode in _SLICED and k != n:
            raise ValueError(f"Argument 'k' must be n={n} (or unset) in {self.mode} mode, not {k}.")
        if self.mode == "secure":
            check_int("t", t, high=n - k, high_name=f"n-k={n}-{k}")
        object.__setattr__(self, "k", k)
        for name in ("n", "s", "t", "seed"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.mode == "secure":
            self._check_fixed_point()

    def _check_fixed_point(self) -> None:
        p = check_prime("p", self.p, high=2**31 - 1)
        f = check_int("frac_bits", self.frac_bits, low=0, high=52)
        i = check_int("int_bits", self.int_bits, low=1, high=52 - f, high_name=f"52-frac_bits={52 - f}")
        b = check_int("limb_bits", self.limb_bits, low=1, high=30)
        if self.n * ((1 << b) - 1) >= p:
            raise OverflowRiskError(
                f"Secure sums can wrap: n * (2**limb_bits - 1) = {self.n * ((1 << b) - 1)} must be "
                f"below p={p}; lower 'limb_bits' (now {b}) or use fewer workers."
            )
        if self.n * (1 << (f + i + 1)) >= 1 << 53:
            raise OverflowRiskError(
                f"Secure sums can lose precision: n * 2**(frac_bits+int_bits+1) = 2**"
                f"{math.log2(self.n) + f + i + 1:.1f} must be below 2**53; lower 'frac_bits' "
                f"or 'int_bits'."
            )

    @property
    def field(self) -> int | None:
        """The prime ``p`` of the field the shares live in, or ``None`` for the reals."""
        return self.p if self.mode == "secure" else None

    @property
    def contributions_needed(self) -> int:
        """How many workers' contributions an aggregator combines (at least)."""
        return self.n - self.s if self.mode in ("backup", "gradient", "gradient+mds") else self.n

    @property
    def merged_needed(self) -> int:
        """How many distinct merged shards decode the sum."""
        if self.mode == "secure":
            return self.k + self.t
        return self.k

    @property
    def n_limbs(self) -> int:
        """Limbs per entry in secure mode (0 otherwise)."""
        if self.mode != "secure":
            return 0
        return -(-(self.frac_bits + self.int_bits + 1) // self.limb_bits)

    @property
    def share_dtype(self) -> str:
        """Little-endian dtype of shares and merged shards on the wire."""
        return "<u4" if self.mode == "secure" else "<f8"

    def share_length(self, length: int) -> int:
        """Entries in one share for a flat update of ``length`` entries."""
        length = check_int("length", length, low=0)
        rows = -(-length // self.k)  # update entries per message row
        return rows * self.n_limbs if self.mode == "secure" else rows

    def to_json(self) -> dict[str, object]:
        """Return a JSON-ready dict (recorded in every shard header).

        Secure specs also name the share layout (:data:`SECURE_LAYOUT`), so that readers,
        which compare this dict with their own, treat shares of another layout as
        erasures instead of summing them.
        """
        out = dataclasses.asdict(self)
        if self.mode == "secure":
            out["layout"] = SECURE_LAYOUT
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> CodeSpec:
        """Rebuild from :meth:`to_json` output."""
        fields = dict(data)
        layout = fields.pop("layout", None)
        if fields.get("mode") == "secure" and layout != SECURE_LAYOUT:
            raise ValueError(f"Argument 'data' has secure share layout {layout!r}; this version "
                             f"reads {SECURE_LAYOUT!r}.")
        return cls(**fields)  # type: ignore[arg-type]


# -- code objects, built once per parameter set ------------------------------------------

@functools.lru_cache(maxsize=32)
def _mds(n: int, k: int, seed: int):
    from coding.mds import MDSCode

    return MDSCode(n, k, seed=seed)


@functools.lru_cache(maxsize=32)
def _gradient(n: int, s: int):
    from coding.gradient import GradientCode

    return GradientCode(n, s)


@functools.lru_cache(maxsize=32)
def _shamir(n: int, k: int, t: int, p: int):
    from coding.shamir import SecretShareCode

    return SecretShareCode(n, k, t, p=p)


def _rows(flat: np.ndarray, k: int) -> np.ndarray:
    """Zero-pad a 1-D vector to a multiple of ``k`` and view it as ``k`` rows."""
    m = -(-flat.size // k)
    if flat.size == k * m:
        return flat.reshape(k, m)
    out = np.zeros(k * m, dtype=flat.dtype)
    out[: flat.size] = flat
    return out.reshape(k, m)


def _check_update(update: object, name: str = "update") -> np.ndarray:
    arr = np.asarray(update)
    if arr.ndim != 1 or arr.dtype.kind not in "biuf":
        raise ValueError(f"Argument {name!r} must be a 1-D numeric array, not {arr.dtype} shape {arr.shape}.")
    arr = arr.astype(np.float64, copy=False)
    # min and max propagate NaN and show an infinity: two reductions, no temporary
    if arr.size and not (math.isfinite(float(arr.min())) and math.isfinite(float(arr.max()))):
        raise ValueError(f"Argument {name!r} must be finite; it has NaN or infinite entries.")
    return arr


def _check_indices(indices: Sequence[int], n: int, name: str) -> list[int]:
    out = [check_int(name, i, low=0, high=n - 1, high_name="n-1") for i in indices]
    seen: set[int] = set()
    for i in out:
        if i in seen:
            raise DuplicateIndexError(i)
        seen.add(i)
    return out
