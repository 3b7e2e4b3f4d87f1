"""The arithmetic of a coded scatter-reduce round, as pure functions (no I/O).

A round sums the flat update vectors of ``n`` workers. Each worker turns its update into
``n`` *shares* (:func:`encode_update`), share ``j`` going to aggregator ``j``; aggregator
``j`` combines the shares it received into one *merged shard* (:func:`coded_reduce`); and
anyone holding enough merged shards recovers the sum (:func:`decode_aggregate`). Only the
protocol in :mod:`exchange.round` touches a store; tests drive these functions directly
(the split Flower makes between a ``Strategy`` and its aggregation functions).

Modes (the codes of :mod:`exchange.codes`)
------------------------------------------
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

from exchange.codes import Code, code_names
from exchange.codes.base import check_indices
from exchange.fixed_point import decode_limb_sums, limbs_to_float, quantize_limbs

CodeSpec = Code
MODES = code_names()

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


def _check_code(spec: object) -> Code:
    if not isinstance(spec, Code):
        raise TypeError(f"Argument 'spec' must be a CodeSpec, not {type(spec).__name__}.")
    return spec


# -- the three steps (each code object owns its arithmetic) ---------------------------------

def encode_update(update: np.ndarray, spec: Code, *, rng: np.random.Generator | None = None,
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
        Codes that encode in place (``spec.encodes_in_place``, secure): write share ``j``
        into ``out[j]`` (``spec.share_length(len(update))`` entries), for example the
        payload of the shard object it is uploaded in, and return ``out``.

    Returns
    -------
    numpy.ndarray, shape (spec.n, spec.share_length(len(update)))
        Shares of dtype ``spec.share_dtype_for(update.dtype)``: float32 slices of a
        float32 update in the sliced codes, float64 coded rows, uint32 field elements in
        ``secure`` mode.
    """
    return _check_code(spec).encode(update, rng=rng, out=out)


def contribution_weights(spec: Code, contributors: Sequence[int]) -> np.ndarray:
    """Weights an aggregator gives the contributions of ``contributors`` (in that order).

    All ones, except in gradient modes, where they are the gradient code's decoding
    vector for that set of finished workers. ``backup`` and the gradient modes need at
    least ``spec.contributions_needed`` contributors; the other modes sum any non-empty
    set (the round agrees on it, see ``RoundConfig.quorum``).
    """
    return _check_code(spec).weights(contributors)


def coded_reduce(shards: np.ndarray, spec: Code, contributors: Sequence[int]) -> np.ndarray:
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
    return _check_code(spec).reduce(shards, contributors)


def decode_aggregate(
    merged: np.ndarray, indices: Sequence[int], spec: Code, *, length: int, n_terms: int
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
    return _check_code(spec).decode(merged, indices, length=length, n_terms=n_terms)


def reference_round(
    updates: np.ndarray,
    spec: Code,
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
    code = _check_code(spec)
    ups = np.asarray(updates)
    if ups.dtype != np.float32:
        ups = ups.astype(np.float64)
    if ups.ndim != 2 or ups.shape[0] != code.n:
        raise ValueError(f"Argument 'updates' must have shape (n={code.n}, L), not {ups.shape}.")
    who = list(range(code.n)) if contributors is None else check_indices(contributors, code.n, "contributors")
    aggs = list(range(code.n)) if aggregators is None else check_indices(aggregators, code.n, "aggregators")
    shares = np.stack([code.encode(ups[w], rng=rng) for w in who])  # (c, n, m)
    merged = np.stack([code.reduce(shares[:, j], who) for j in aggs])
    return code.decode(merged, aggs, length=ups.shape[1], n_terms=len(who))
