"""The arithmetic of a coded scatter-reduce round, as pure functions (no I/O).

A round sums the flat update vectors of ``n`` workers. Each worker turns its update into
``n`` *shares* (:func:`encode_update`), share ``j`` going to aggregator ``j``; aggregator
``j`` combines the shares it received into one *merged shard* (:func:`coded_reduce`); and
anyone holding enough merged shards recovers the sum (:func:`decode_aggregate`). Only the
protocol in :mod:`exchange.round` touches a store; tests drive these functions directly
(the split Flower makes between a ``Strategy`` and its aggregation functions).

Modes (:class:`CodeSpec`)
-------------------------
======================  ==================  ====================  =======================
mode                    contributions used  merged shards needed  result
======================  ==================  ====================  =======================
``plain``               all ``n``           all ``n`` slices      exact sum
``backup``              first ``n - s``     all ``n`` slices      sum of ``n - s`` (approx.)
``mds``                 all ``n``           any ``k``             exact sum
``gradient``            any ``n - s``       all ``n`` slices      exact sum (of all ``n``)
``gradient+mds``        any ``n - s``       any ``k``             exact sum (of all ``n``)
``secure``              all ``n``           any ``k + t``         exact fixed-point sum
======================  ==================  ====================  =======================

* ``plain`` is the scatter-reduce of serverless training (Jiang et al., "Towards
  demystifying serverless machine learning training", SIGMOD 2021): aggregator ``j`` sums
  slice ``j`` of every update.
* ``mds`` splits each update into ``k`` rows and encodes them with a real ``MDSCode(n, k)``;
  the code is linear, so the sum of the encodings is the encoding of the sum, and any
  ``k`` merged shards decode it (Lee et al., "Speeding up distributed machine learning
  using codes", 2018).
* ``gradient`` uses gradient coding (Tandon et al., ICML 2017): worker ``i`` publishes
  its coded combination ``f_i`` of ``s + 1`` partial gradients, and the decoder weights of
  any ``n - s`` finished workers give the exact total. Different aggregators may therefore
  see different contributor sets and still produce consistent slices.
* ``gradient+mds`` composes the two: gradient-coded contributions, MDS-coded aggregation.
* ``secure`` is ``t``-private secure aggregation over GF(p) with packed Shamir shares
  (``SecretShareCode(n, k, t)``): no ``t`` colluding aggregators learn anything about a
  worker's update, and any ``k + t`` merged shards decode the sum.

Secure precision and range
--------------------------
Each entry ``x`` is quantized to ``q = rint(x * 2**frac_bits)``, which must satisfy
``|q| < 2**(frac_bits + int_bits)`` (by default ``|x| < 2**14 = 16384``; larger entries
raise :class:`~coding.errors.OverflowRiskError`). ``u = q + 2**(frac_bits + int_bits)`` is
split into ``limb_bits``-bit limbs, and each limb is shared on its own; since sharing is
linear and ``n * (2**limb_bits - 1) < p``, the limb sums decode exactly, and recombining
them gives the exact integer sum of the ``q``. The only error is the rounding to
``2**-frac_bits``: at most ``n * 2**-(frac_bits + 1)`` per entry of the sum (about
``1.4e-9`` for ``n = 6`` at the default ``frac_bits = 32``). Defaults: ``p = 2**31 - 1``,
``frac_bits = 32``, ``int_bits = 14``, ``limb_bits = 24`` (two limbs per entry, so a secure
share carries ``2 / k`` uint32 words per entry against ``1 / k`` float64 words for mds).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coding._blas import single_thread_blas
from coding._validate import check_int, check_prime
from coding.errors import DuplicateIndexError, NotEnoughShardsError, OverflowRiskError
from coding.gfp import gfp_random

__all__ = [
    "MODES",
    "CodeSpec",
    "encode_update",
    "coded_reduce",
    "decode_aggregate",
    "quantize_limbs",
    "decode_limb_sums",
    "limbs_to_float",
    "reference_round",
]

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
        if self.mode == "secure":
            length *= self.n_limbs
        return -(-length // self.k)

    def to_json(self) -> dict[str, object]:
        """Return a JSON-ready dict (recorded in every shard header)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> CodeSpec:
        """Rebuild from :meth:`to_json` output."""
        return cls(**data)  # type: ignore[arg-type]


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


# -- secure fixed point --------------------------------------------------------------------

def quantize_limbs(update: np.ndarray, spec: CodeSpec) -> np.ndarray:
    """Quantize a float vector to offset fixed point and split it into limbs.

    Parameters
    ----------
    update : numpy.ndarray
        1-D float vector with ``|x| < 2**spec.int_bits``.
    spec : CodeSpec
        A ``secure`` spec.

    Returns
    -------
    numpy.ndarray of int64, shape (spec.n_limbs, len(update))
        Limb ``l`` of ``rint(x * 2**frac_bits) + 2**(frac_bits + int_bits)``.

    Raises
    ------
    OverflowRiskError
        If an entry is outside the configured range.
    """
    _check_secure(spec)
    x = _check_update(update)
    _check_range(x, spec)
    u = np.rint(x * float(2**spec.frac_bits)).astype(np.int64) + (1 << (spec.frac_bits + spec.int_bits))
    mask = (1 << spec.limb_bits) - 1
    limbs = np.empty((spec.n_limbs, x.size), dtype=np.int64)
    for i in range(spec.n_limbs):
        limbs[i] = (u >> (spec.limb_bits * i)) & mask
    return limbs


def limbs_to_float(limb_sums: np.ndarray, spec: CodeSpec, n_terms: int) -> np.ndarray:
    """Recombine summed limbs of ``n_terms`` updates into the float64 sum.

    Parameters
    ----------
    limb_sums : numpy.ndarray of int, shape (spec.n_limbs, L)
        Exact sums of :func:`quantize_limbs` outputs.
    spec : CodeSpec
        The ``secure`` spec.
    n_terms : int
        How many updates were summed (their offsets are removed).

    Returns
    -------
    numpy.ndarray of float64, shape (L,)
    """
    _check_secure(spec)
    n_terms = check_int("n_terms", n_terms, low=0)
    limb_sums = np.asarray(limb_sums, dtype=np.int64)
    if limb_sums.ndim != 2 or limb_sums.shape[0] != spec.n_limbs:
        raise ValueError(f"Argument 'limb_sums' must have shape ({spec.n_limbs}, L), not {limb_sums.shape}.")
    total = np.zeros(limb_sums.shape[1], dtype=np.int64)
    for i in reversed(range(spec.n_limbs)):
        total = (total << spec.limb_bits) + limb_sums[i]
    total -= n_terms * (1 << (spec.frac_bits + spec.int_bits))
    return total.astype(np.float64) / float(2**spec.frac_bits)


def _check_secure(spec: CodeSpec) -> None:
    if not isinstance(spec, CodeSpec) or spec.mode != "secure":
        raise ValueError(f"Argument 'spec' must be a secure-mode CodeSpec, not {spec!r}.")


# -- the three steps -----------------------------------------------------------------------

def encode_update(update: np.ndarray, spec: CodeSpec, *, rng: np.random.Generator | None = None) -> np.ndarray:
    """Turn one worker's flat update into its ``n`` shares; share ``j`` goes to aggregator ``j``.

    Parameters
    ----------
    update : numpy.ndarray
        1-D float vector (in gradient modes: the worker's coded combination ``f_i``).
    spec : CodeSpec
        The round's code.
    rng : numpy.random.Generator, optional
        ``secure`` only, for reproducible tests: the share masks. By default they come
        from the operating system's CSPRNG; a ``Generator`` must not protect real data.

    Returns
    -------
    numpy.ndarray, shape (spec.n, spec.share_length(len(update)))
        float64 shares, or uint32 field elements in ``secure`` mode.
    """
    if not isinstance(spec, CodeSpec):
        raise TypeError(f"Argument 'spec' must be a CodeSpec, not {type(spec).__name__}.")
    x = _check_update(update)
    if spec.mode in _SLICED:
        return _rows(x, spec.n)
    if spec.mode in ("mds", "gradient+mds"):
        return np.asarray(_mds(spec.n, spec.k, spec.seed).encode(_rows(x, spec.k)), dtype=np.float64)
    return _encode_secure(x, spec, rng)


# Entries per chunk of the secure fixed-point passes: a chunk and its temporaries stay in L2.
_CHUNK = 1 << 16


def _check_range(x: np.ndarray, spec: CodeSpec) -> None:
    bound = float(2**spec.int_bits)
    if x.size and max(float(x.max()), -float(x.min())) >= bound:
        worst = int(np.argmax(np.abs(x)))
        raise OverflowRiskError(
            f"Update entry {worst} is {x[worst]:.6g}, outside the secure range |x| < 2**int_bits"
            f" = {bound:g}; raise 'int_bits' or scale the update."
        )


def _quantize_into(x: np.ndarray, spec: CodeSpec, out: np.ndarray) -> None:
    """Write :func:`quantize_limbs` of ``x`` (range-checked) into float64 ``out`` (n_limbs, L).

    Every value is an integer below ``2**53``, so float64 holds it exactly: ``rint``,
    adding the offset and splitting by ``floor(u / 2**b)`` give the same limbs as the
    int64 shifts and masks, in cache-sized chunks and with no integer conversion.
    """
    scale, offset = float(2**spec.frac_bits), float(2 ** (spec.frac_bits + spec.int_bits))
    b = float(2**spec.limb_bits)
    inv_b = 1.0 / b
    last = spec.n_limbs - 1
    hi = np.empty(min(_CHUNK, x.size))
    for c0 in range(0, x.size, _CHUNK):
        sl = slice(c0, min(c0 + _CHUNK, x.size))
        u = out[last, sl]
        np.multiply(x[sl], scale, out=u)
        np.rint(u, out=u)
        u += offset
        h = hi[: u.size]
        for i in range(last):  # limb i = u mod 2^b, then u = floor(u / 2^b)
            np.multiply(u, inv_b, out=h)
            np.floor(h, out=h)
            lo = out[i, sl]
            np.multiply(h, b, out=lo)
            np.subtract(u, lo, out=lo)
            u[...] = h


def _encode_secure(x: np.ndarray, spec: CodeSpec, rng: np.random.Generator | None) -> np.ndarray:
    """Secure shares of ``x``: the same values as sharing ``_rows(quantize_limbs(x), k)``.

    The message rows and masks are built straight into one float64 ``[X; Z]`` matrix,
    which the skinny GF(p) product reads without conversion and writes as uint32.
    """
    _check_range(x, spec)
    code = _shamir(spec.n, spec.k, spec.t, spec.p)
    k, t, nl = spec.k, spec.t, spec.n_limbs
    m = spec.share_length(x.size)
    XZ = np.empty((k + t, m))
    flat = XZ[:k].reshape(-1)
    _quantize_into(x, spec, flat[: nl * x.size].reshape(nl, x.size))
    flat[nl * x.size :] = 0.0
    XZ[k:] = gfp_random((t, m), spec.p, rng)
    return code._share_into(XZ, np.empty((spec.n, m), dtype=np.uint32))


def contribution_weights(spec: CodeSpec, contributors: Sequence[int]) -> np.ndarray:
    """Weights an aggregator gives the contributions of ``contributors`` (in that order).

    All ones, except in gradient modes, where they are the gradient code's decoding
    vector for that set of finished workers. ``backup`` and the gradient modes need at
    least ``spec.contributions_needed`` contributors; the other modes sum any non-empty
    set (the round agrees on it, see ``RoundConfig.quorum``).
    """
    if not isinstance(spec, CodeSpec):
        raise TypeError(f"Argument 'spec' must be a CodeSpec, not {type(spec).__name__}.")
    who = _check_indices(contributors, spec.n, "contributors")
    # plain/mds/secure sum whichever members the round agreed on (a quorum may be < n)
    needed = spec.contributions_needed if spec.mode in ("backup", "gradient", "gradient+mds") else 1
    if len(who) < needed:
        raise NotEnoughShardsError(needed, len(who), "contributions")
    if spec.mode in ("gradient", "gradient+mds"):
        return np.asarray(_gradient(spec.n, spec.s).decoder(who), dtype=np.float64).reshape(len(who))
    return np.ones(len(who), dtype=np.float64)


def coded_reduce(shards: np.ndarray, spec: CodeSpec, contributors: Sequence[int]) -> np.ndarray:
    """Combine the shares one aggregator received into its merged shard.

    Parameters
    ----------
    shards : numpy.ndarray, shape (len(contributors), m), or a sequence of 1-D arrays
        Row ``r`` is the share of worker ``contributors[r]`` for this aggregator (a list of
        equal rows is used as is, without stacking it into a copy).
    spec : CodeSpec
        The round's code.
    contributors : sequence of int
        Distinct worker indices; at least ``spec.contributions_needed`` of them.

    Returns
    -------
    numpy.ndarray, shape (m,)
        The merged shard: the (weighted) sum, reduced mod p in ``secure`` mode.
    """
    weights = contribution_weights(spec, contributors)
    rows = _as_rows(shards, weights.size)
    if rows is None:
        raise ValueError(
            f"Argument 'shards' must have shape ({weights.size}, m), one row per contributor, "
            f"not {np.shape(shards)}."
        )
    if spec.mode == "secure":
        return _reduce_secure(rows, spec.p)
    return _weighted_sum(rows, weights)


def _as_rows(data: object, count: int) -> list[np.ndarray] | None:
    """``data`` (an array, or a sequence of equal 1-D arrays) as ``count`` row views, or None.

    Accepting the rows as a list lets :mod:`exchange.round` pass the payloads it read
    without first stacking them into one array (a copy of everything).
    """
    if not isinstance(data, np.ndarray):
        rows = [np.asarray(r) for r in data]  # type: ignore[union-attr]
        if len(rows) == count and all(r.ndim == 1 and r.shape == rows[0].shape
                                      and r.dtype == rows[0].dtype for r in rows):
            return rows
        data = np.asarray(rows)
    if data.ndim != 2 or data.shape[0] != count:
        return None
    return list(data)


def _weighted_sum(rows: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """``weights @ rows`` in float64, one cache-sized column chunk at a time."""
    m = rows[0].shape[0]
    out = np.empty(m)
    if np.all(weights == 1.0):
        out[...] = rows[0]
        for row in rows[1:]:
            np.add(out, row, out=out)
        return out
    block = np.empty((len(rows), min(_CHUNK, m)))
    with single_thread_blas():
        for c0 in range(0, m, _CHUNK):
            w = min(_CHUNK, m - c0)
            for i, row in enumerate(rows):
                block[i, :w] = row[c0 : c0 + w]
            np.matmul(weights, block[:, :w], out=out[c0 : c0 + w])
    return out


def _reduce_secure(rows: Sequence[np.ndarray], p: int) -> np.ndarray:
    """Sum uint32 shares mod p, in cache-sized chunks of int64 (each term < 2**31)."""
    m = rows[0].shape[0]
    out = np.empty(m, dtype=np.uint32)
    acc = np.empty(min(_CHUNK, m), dtype=np.int64)
    for c0 in range(0, m, _CHUNK):
        a = acc[: min(_CHUNK, m - c0)]
        sl = slice(c0, c0 + a.size)
        a[...] = rows[0][sl]
        for row in rows[1:]:
            a += row[sl]
        np.remainder(a, p, out=a)
        out[sl] = a
    return out


def _decode_secure(merged: np.ndarray, idx: list[int], spec: CodeSpec, length: int, n_terms: int) -> np.ndarray:
    """Secure decode in float64: the same values as ``limbs_to_float(decode_limb_sums(...))``.

    The limb sums are below ``p``, and ``n * 2**(frac_bits + int_bits + 1) < 2**53``
    (checked by :class:`CodeSpec`), so recombining them by Horner's rule, removing the
    offsets and scaling by a power of two are exact in float64.
    """
    kt = spec.merged_needed
    stack = np.asarray(merged[:kt])  # a list of rows: stack only the k + t used
    if stack.ndim != 2 or stack.shape[0] != kt:
        raise ValueError(f"Argument 'merged' must have at least {kt} rows of shares, not shape {stack.shape}.")
    if stack.dtype.kind not in "iu":
        raise TypeError(f"Argument 'merged' must be an integer array, not dtype {stack.dtype}.")
    if stack.size and (int(stack.max()) >= spec.p or (stack.dtype.kind == "i" and int(stack.min()) < 0)):
        raise ValueError(f"Argument 'merged' must have entries in [0, p={spec.p}).")
    rows = np.empty((spec.k, stack.shape[1]))
    _shamir(spec.n, spec.k, spec.t, spec.p)._decode_into(stack, idx[:kt], rows)
    limbs = rows.reshape(-1)[: spec.n_limbs * length].reshape(spec.n_limbs, length)
    total = limbs[-1].copy()
    for i in range(spec.n_limbs - 2, -1, -1):
        total *= float(2**spec.limb_bits)
        total += limbs[i]
    total -= float(n_terms * (1 << (spec.frac_bits + spec.int_bits)))
    total *= 2.0**-spec.frac_bits
    return total


def decode_limb_sums(merged: np.ndarray, indices: Sequence[int], spec: CodeSpec, length: int) -> np.ndarray:
    """Secure mode: decode merged shards into the exact limb sums, shape (n_limbs, length)."""
    _check_secure(spec)
    length = check_int("length", length, low=0)
    idx = _check_indices(indices, spec.n, "indices")
    if len(idx) < spec.merged_needed:
        raise NotEnoughShardsError(spec.merged_needed, len(idx))
    stack = np.asarray(merged)[: spec.merged_needed].astype(np.int64)
    rows = _shamir(spec.n, spec.k, spec.t, spec.p).decode(stack, idx[: spec.merged_needed])
    flat = np.asarray(rows, dtype=np.int64).reshape(-1)
    return flat[: spec.n_limbs * length].reshape(spec.n_limbs, length)


def decode_aggregate(
    merged: np.ndarray, indices: Sequence[int], spec: CodeSpec, *, length: int, n_terms: int
) -> np.ndarray:
    """Recover the summed flat update from merged shards.

    Parameters
    ----------
    merged : numpy.ndarray, shape (>= spec.merged_needed, m), or a sequence of 1-D arrays
        Merged shards, row ``r`` from aggregator ``indices[r]``; all must combine the same
        contributor set (except in gradient modes, where any qualifying sets agree).
    indices : sequence of int
        Distinct aggregator indices.
    spec : CodeSpec
        The round's code.
    length : int
        Length of the flat update.
    n_terms : int
        Number of updates in the sum (needed to remove the fixed-point offsets in
        ``secure`` mode; ignored otherwise).

    Returns
    -------
    numpy.ndarray of float64, shape (length,)
    """
    if not isinstance(spec, CodeSpec):
        raise TypeError(f"Argument 'spec' must be a CodeSpec, not {type(spec).__name__}.")
    length = check_int("length", length, low=0)
    if spec.mode == "secure":
        idx = _check_indices(indices, spec.n, "indices")
        if len(idx) < spec.merged_needed:
            raise NotEnoughShardsError(spec.merged_needed, len(idx))
        return _decode_secure(merged, idx, spec, length, check_int("n_terms", n_terms, low=0))
    idx = _check_indices(indices, spec.n, "indices")
    rows = _as_rows(merged, len(idx))
    if rows is None:
        raise ValueError(f"Argument 'merged' must have one row per index ({len(idx)}), not shape {np.shape(merged)}.")
    if len(idx) < spec.merged_needed:
        raise NotEnoughShardsError(spec.merged_needed, len(idx))
    if spec.mode in _SLICED:  # the slices in index order, straight into the result
        m = rows[0].shape[0]
        total = np.empty(min(length, len(rows) * m))
        for j, row in zip(idx, rows, strict=True):
            lo, hi = j * m, min((j + 1) * m, length)
            if lo < hi:
                total[lo:hi] = row[: hi - lo]
        return total
    # with more than k shards the real code decodes from its best-conditioned k
    decoded = np.asarray(_mds(spec.n, spec.k, spec.seed).decode(np.asarray(rows, dtype=np.float64), idx))
    return np.ascontiguousarray(decoded).reshape(-1)[:length].astype(np.float64, copy=False)


def reference_round(
    updates: np.ndarray,
    spec: CodeSpec,
    *,
    contributors: Sequence[int] | None = None,
    aggregators: Sequence[int] | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Run a whole round in memory: encode, reduce at each aggregator, decode.

    Parameters
    ----------
    updates : numpy.ndarray, shape (n, L)
        Row ``i`` is worker ``i``'s flat update (its ``f_i`` in gradient modes).
    spec : CodeSpec
        The round's code.
    contributors : sequence of int, optional
        Workers whose contributions every aggregator uses (default: all).
    aggregators : sequence of int, optional
        Aggregators whose merged shards are decoded (default: all).
    rng : numpy.random.Generator, optional
        Share masks in ``secure`` mode (tests only).

    Returns
    -------
    numpy.ndarray of float64, shape (L,)
    """
    if not isinstance(spec, CodeSpec):
        raise TypeError(f"Argument 'spec' must be a CodeSpec, not {type(spec).__name__}.")
    ups = np.asarray(updates, dtype=np.float64)
    if ups.ndim != 2 or ups.shape[0] != spec.n:
        raise ValueError(f"Argument 'updates' must have shape (n={spec.n}, L), not {ups.shape}.")
    who = list(range(spec.n)) if contributors is None else _check_indices(contributors, spec.n, "contributors")
    aggs = list(range(spec.n)) if aggregators is None else _check_indices(aggregators, spec.n, "aggregators")
    shares = np.stack([encode_update(ups[w], spec, rng=rng) for w in who])  # (c, n, m)
    merged = np.stack([coded_reduce(shares[:, j], spec, who) for j in aggs])
    return decode_aggregate(merged, aggs, spec, length=ups.shape[1], n_terms=len(who))
