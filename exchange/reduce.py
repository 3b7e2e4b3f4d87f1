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

from collections.abc import Sequence

import numpy as np

from coding._blas import single_thread_blas
from coding._validate import check_int
from coding.errors import NotEnoughShardsError
from exchange.codespec import (
    _SLICED,
    MODES,
    CodeSpec,
    _check_indices,
    _check_update,
    _gradient,
    _mds,
    _rows,
)
from exchange.fixed_point import (
    decode_limb_sums,
    decode_secure,
    encode_secure,
    limbs_to_float,
    quantize_limbs,
    reduce_secure,
)

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

# Columns per chunk of the weighted sums: a chunk of every row stays in L2.
_CHUNK = 1 << 16


# -- the three steps -----------------------------------------------------------------------

def encode_update(update: np.ndarray, spec: CodeSpec, *, rng: np.random.Generator | None = None,
                  out: Sequence[np.ndarray] | None = None) -> np.ndarray | Sequence[np.ndarray]:
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
    out : sequence of ``spec.n`` writable 1-D arrays, optional
        ``secure`` only: write share ``j`` into ``out[j]`` (``spec.share_length(len(update))``
        entries), for example the payload of the shard object it is uploaded in, and
        return ``out``.

    Returns
    -------
    numpy.ndarray, shape (spec.n, spec.share_length(len(update)))
        float64 shares, or uint32 field elements in ``secure`` mode.
    """
    if not isinstance(spec, CodeSpec):
        raise TypeError(f"Argument 'spec' must be a CodeSpec, not {type(spec).__name__}.")
    x = _check_update(update)
    if out is not None and spec.mode != "secure":
        raise ValueError(f"Argument 'out' is for secure mode only, not {spec.mode}.")
    if spec.mode in _SLICED:
        return _rows(x, spec.n)
    if spec.mode in ("mds", "gradient+mds"):
        return np.asarray(_mds(spec.n, spec.k, spec.seed).encode(_rows(x, spec.k)), dtype=np.float64)
    return encode_secure(x, spec, rng, out)


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
        return reduce_secure(rows, spec.p)
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
        return decode_secure(merged, idx, spec, length, check_int("n_terms", n_terms, low=0))
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
