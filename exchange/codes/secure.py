"""The secure code: ``t``-private aggregation over GF(p) with packed Shamir shares.

Each entry is quantized to fixed point and split into limbs, and the limbs are shared
with ``SecretShareCode(n, k, t)``, so no ``t`` colluding aggregators learn anything about
a worker's update and any ``k + t`` merged shards decode the exact fixed-point sum. The
codec (quantization, streaming encode and decode) is :mod:`exchange.fixed_point`; its
precision and range are described there and in :mod:`exchange.reduce`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from coding.errors import NotEnoughShardsError, OverflowRiskError
from coding.validate import check_int, check_prime
from exchange.codes.base import BuiltinCode, as_rows, check_indices, check_update
from exchange.fixed_point import decode_secure, encode_secure, reduce_secure

__all__ = ["SECURE_LAYOUT", "Secure"]

# How secure shares lay out the fixed-point limbs (exchange/fixed_point.py): update rows of
# ceil(L/k) entries, limbs interleaved. Recorded in shard headers; bump it if it changes.
SECURE_LAYOUT = "rows-interleaved-limbs"


@dataclass(frozen=True)
class Secure(BuiltinCode):
    """Secure aggregation: the exact fixed-point sum from any ``k + t`` merged shards.

    Parameters
    ----------
    n : int
        Workers, each the aggregator of one share.
    k : int, optional
        Message rows per share (default ``n - t``, so every aggregator is needed; pick
        ``k < n - t`` for slack). Any ``k + t`` merged shards decode.
    t : int
        Colluding aggregators tolerated, ``1 <= t <= n - k``.
    p : int, optional
        The prime field, at most ``2**31 - 1`` (shares are stored as uint32).
    frac_bits, int_bits, limb_bits : int, optional
        Fixed point: fractional bits, integer range ``|x| < 2**int_bits``, limb width.
    seed : int, optional
        Unused by the shares (their masks come from the OS CSPRNG).
    """

    name = "secure"
    encodes_in_place = True
    private = True
    n: int
    k: int | None = None
    t: int = 0
    p: int = 2**31 - 1
    frac_bits: int = 32
    int_bits: int = 14
    limb_bits: int = 24
    seed: int = 0

    def __post_init__(self) -> None:
        n = check_int("n", self.n, low=1)
        t = check_int("t", self.t, low=1, high=n - 1, high_name="n-1")
        k = n - t if self.k is None else check_int("k", self.k, low=1, high=n, high_name="n")
        check_int("t", t, high=n - k, high_name=f"n-k={n}-{k}")
        for name, value in (("n", n), ("k", k), ("t", t), ("seed", check_int("seed", self.seed, low=0))):
            object.__setattr__(self, name, value)
        self._check_fixed_point()

    def _check_fixed_point(self) -> None:
        p = check_prime("p", self.p, high=2**31 - 1)
        f = check_int("frac_bits", self.frac_bits, low=0, high=52)
        check_int("int_bits", self.int_bits, low=1, high=52 - f, high_name=f"52-frac_bits={52 - f}")
        b = check_int("limb_bits", self.limb_bits, low=1, high=30)
        i = self.int_bits
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

    @classmethod
    def from_settings(cls, n, *, k=None, s=0, t=0, p=None, seed=0):
        """A run's ``k`` counts the merged shards that decode (``k + t`` here), default ``n - 1``;
        its ``s`` is ignored."""
        n = check_int("workers", n, low=1)
        k = max(n - 1, 2) if k is None else check_int("k", k, low=1, high=n, high_name="n")
        t = check_int("t", t, low=1, high=k - 1, high_name="k-1")
        return cls(n, k=k - t, t=t, p=2**31 - 1 if p is None else p, seed=seed)

    @property
    def field(self) -> int | None:
        return self.p

    @property
    def merged_needed(self) -> int:
        return int(self.k) + self.t  # type: ignore[arg-type]

    def decode_indices(self, indices: Sequence[int]) -> list[int]:
        return list(indices)[: self.merged_needed]  # the first k + t decode exactly; more add nothing

    @property
    def n_limbs(self) -> int:
        """Limbs per entry."""
        return -(-(self.frac_bits + self.int_bits + 1) // self.limb_bits)

    def share_dtype_for(self, dtype: object) -> str:
        return "<u4"

    def share_length(self, length: int) -> int:
        rows = -(-check_int("length", length, low=0) // int(self.k))  # type: ignore[arg-type]
        return rows * self.n_limbs

    def encode(self, update, *, rng=None, out=None):
        return encode_secure(check_update(update), self, rng, out)

    def reduce(self, shards, contributors):
        w = self.weights(contributors)
        got = as_rows(shards, w.size)
        if got is None:
            import numpy as np

            raise ValueError(f"Argument 'shards' must have shape ({w.size}, m), one row per contributor, "
                             f"not {np.shape(shards)}.")
        return reduce_secure(got, self.p)

    def decode(self, merged, indices, *, length, n_terms):
        length = check_int("length", length, low=0)
        idx = check_indices(indices, self.n, "indices")
        if len(idx) < self.merged_needed:
            raise NotEnoughShardsError(self.merged_needed, len(idx))
        return decode_secure(merged, idx, self, length, check_int("n_terms", n_terms, low=0))

    def to_json(self) -> dict[str, object]:
        """The parameters and the share layout (:data:`SECURE_LAYOUT`): readers compare this
        dict with their own, so shares of another layout are erasures, not summed."""
        return {**super().to_json(), "layout": SECURE_LAYOUT}

    @classmethod
    def from_fields(cls, fields: dict[str, object]) -> Secure:
        """Rebuild from :meth:`to_json` output less ``"mode"``."""
        fields = dict(fields)
        layout = fields.pop("layout", None)
        if layout != SECURE_LAYOUT:
            raise ValueError(f"Argument 'data' has secure share layout {layout!r}; this version "
                             f"reads {SECURE_LAYOUT!r}.")
        if fields.pop("s", 0):
            raise ValueError("Argument 's' must be 0 in secure mode.")
        return cls(**fields)  # type: ignore[arg-type]
