"""Systematic MDS erasure codes over the reals and over GF(p).

An ``(n, k)`` MDS code turns a message of ``k`` rows into ``n`` shards so that *any* ``k``
shards give the message back. Both codes here are systematic: shard ``i < k`` is message
row ``i``, and the ``n - k`` parity shards are the parity block of the generator times the
message. Decoding copies the surviving systematic rows through and multiplies only the
rows that were lost, with one cached ``k x k`` inverse per erasure pattern.

The real generator is chosen by measurement (``scripts/choose_generator.py``, see
:mod:`coding.generators`); the GF(p) generator is systematic Reed--Solomon. GF(p) payload
arithmetic runs as exact float64 BLAS products on limbs of the small coefficient matrix,
never through galois' ufuncs; galois only inverts the small ``k x k`` matrices.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from typing import NamedTuple

import numpy as np

from .blas import single_thread_blas
from .errors import DuplicateIndexError, NotEnoughShardsError, OverflowRiskError
from .generators import gfp_generator, real_generator, submatrix_conditions
from .validate import check_int, check_shape

__all__ = ["MDSCode"]

#: Bytes of one column block of the k payload rows in the blocked products: small enough to
#: stay in L2 cache while it is copied and multiplied, large enough that the per-call cost
#: of the BLAS product is negligible.
_BLOCK_BYTES = 1 << 19
#: Most threads the blocked real encode/decode use (memory-bound: more do not help).
_MAX_THREADS = 4
#: Erasure patterns whose decoding plan is kept (LRU).
_CACHE_SIZE = 256
#: Largest number of candidate k-subsets scored when choosing the best-conditioned one.
_MAX_CANDIDATES = 64


class _Plan(NamedTuple):
    """How to decode one index tuple: which input rows to copy and which to multiply."""

    copy_src: np.ndarray  # positions in ``shards`` of surviving systematic rows
    copy_dst: np.ndarray  # their message rows
    lost: np.ndarray  # message rows that must be computed
    cols: slice | None  # contiguous input rows the product reads, or None for all
    coef: np.ndarray  # (len(lost), rows read) coefficient matrix


def _is_prime_field(field: object) -> bool:
    import galois  # lazy: real-only users never pay galois's (numba's) import time

    return (
        isinstance(field, type)
        and issubclass(field, galois.FieldArray)
        and field.degree == 1
    )


class MDSCode:
    """Systematic ``(n, k)`` MDS code over the reals or a prime field GF(p).

    Parameters
    ----------
    n : int
        Number of shards, ``n >= 1`` (and ``n <= p`` over GF(p)).
    k : int
        Number of message rows, ``1 <= k <= n``; any ``k`` shards decode.
    field : galois.FieldArray subclass, optional
        ``galois.GF(p)`` for a Reed--Solomon code over GF(p); ``None`` (default) for the
        reals.
    seed : int
        Seed of the real generator (ignored over GF(p)).
    float32_shards : bool
        Real codes: keep float32 payloads in float32 shards (half the bytes) instead of the
        default float64 shards. Off by default because the parity shards' float32 rounding
        is multiplied by the surviving submatrix's condition number: decoded errors reach
        1e-4 and more (docs/coding.md), against 1e-6 for float32 data.

    Notes
    -----
    **Shard dtype.** float64 payloads (and any non-float dtype, converted) give float64
    shards. float32 payloads also give float64 shards unless ``float32_shards``: the
    systematic shards hold the payload exactly and the parity shards carry float64
    rounding, so every pattern decodes to within ~1e-12 relative, and casting back
    (``decode(..., dtype=np.float32)``) returns the payload exactly rounded. That decode
    reads float64 shards and writes float32 rows, 1.5x the bytes of a float32-shard decode.

    **Non-finite values.** :meth:`encode` refuses a message holding NaN or inf (every parity
    coefficient is nonzero, so one such entry would poison a whole column of parity shards
    and, from there, any decode that uses them). :meth:`decode` does not scan its shards:
    a NaN or inf in a shard propagates into the decoded rows it is copied or multiplied
    into, and is never replaced by a finite value.

    GF(p) codes take and return int64 arrays with values in ``[0, p)``; a galois array in
    gives a galois array out.

    Examples
    --------
    >>> code = MDSCode(12, 8)
    >>> shards = code.encode(np.ones((8, 3)))
    >>> code.decode(shards[4:], range(4, 12)).shape
    (8, 3)
    """

    def __init__(self, n: int, k: int, *, field: type | None = None, seed: int = 0,
                 float32_shards: bool = False):
        n = check_int("n", n, low=1)
        if not isinstance(float32_shards, bool):
            raise TypeError(f"Argument 'float32_shards' must be a bool, not {float32_shards!r}.")
        self._f32 = float32_shards
        k = check_int("k", k, low=1, high=n, high_name="n")
        seed = check_int("seed", seed)
        if field is not None and not _is_prime_field(field):
            raise TypeError(
                f"Argument 'field' must be None or a galois prime field class GF(p), not {field!r}."
            )
        self._n, self._k, self._field = n, k, field
        self._cache: OrderedDict[tuple[int, ...], _Plan] = OrderedDict()
        if field is None:
            self._p = None
            self._G = real_generator(n, k, seed=seed)
        else:
            self._p = int(field.characteristic)
            check_int("n", n, high=self._p, high_name="p")
            if 2 * k * self._p > 2**52:
                raise OverflowRiskError(
                    f"GF({self._p}) with k={k} is too large for exact float64 products; "
                    f"need 2*k*p <= 2**52."
                )
            self._G = gfp_generator(n, k, field)
        self._G.flags.writeable = False
        self._parity = np.ascontiguousarray(self._G[k:])

    # -- read-only properties -------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of shards."""
        return self._n

    @property
    def k(self) -> int:
        """Number of message rows (any k shards decode)."""
        return self._k

    @property
    def field(self) -> type | None:
        """The galois prime field class, or ``None`` for the reals."""
        return self._field

    @property
    def generator(self) -> np.ndarray:
        """The ``(n, k)`` generator (read-only view); the first k rows are the identity."""
        return self._G

    def __repr__(self) -> str:
        f = "reals" if self._field is None else f"GF({self._p})"
        return f"MDSCode(n={self._n}, k={self._k}, field={f})"

    # -- split / join ---------------------------------------------------------------------
    @staticmethod
    def split(vector: np.ndarray, k: int) -> tuple[np.ndarray, int]:
        """Cut a flat vector into ``k`` equal rows, zero-padding the tail.

        Parameters
        ----------
        vector : array_like
            Any array; it is flattened (C order).
        k : int
            Number of rows, ``k >= 1``.

        Returns
        -------
        rows : numpy.ndarray
            ``(k, ceil(len / k))`` array of the vector's dtype; row ``i`` holds elements
            ``i*L .. (i+1)*L - 1``.
        length : int
            The original length, for :meth:`join`.
        """
        k = check_int("k", k, low=1)
        flat = np.asarray(vector).reshape(-1)
        length = flat.size
        width = -(-length // k)
        rows = np.zeros((k, width), dtype=flat.dtype)
        rows.reshape(-1)[:length] = flat
        return rows, length

    @staticmethod
    def join(rows: np.ndarray, length: int) -> np.ndarray:
        """Undo :meth:`split`: flatten ``rows`` and drop the padding.

        Parameters
        ----------
        rows : array_like
            The ``(k, L)`` rows from :meth:`split` (or their decoded copy).
        length : int
            The original length, ``0 <= length <= rows.size``.

        Returns
        -------
        numpy.ndarray
            The flat vector of ``length`` elements.
        """
        rows = np.asarray(rows)
        length = check_int("length", length, low=0, high=rows.size, high_name="rows.size")
        return rows.reshape(-1)[:length].copy()

    # -- encode ---------------------------------------------------------------------------
    def encode(self, message: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """Encode ``k`` message rows into ``n`` shards.

        Parameters
        ----------
        message : array_like
            Shape ``(k, ...)``, finite. Real codes give float64 shards (float32 ones for a
            float32 message with ``float32_shards=True``). GF(p): integers in ``[0, p)`` or a
            galois array of the code's field.
        out : numpy.ndarray, optional
            A C-contiguous ``(n, ...)`` array of the shards' dtype to write into (reusing a
            buffer saves the page faults of a fresh allocation, which cost more than the
            encoding itself on large payloads).

        Returns
        -------
        numpy.ndarray
            Shape ``(n, ...)``; rows ``0..k-1`` equal ``message``.

        Raises
        ------
        ValueError
            A real message holds NaN or inf.
        """
        x, galois_out = self._payload("message", message)
        check_shape("message", x, rows=self._k)
        k, n = self._k, self._n
        x2 = x.reshape(k, -1)
        given = out
        sd = x2.dtype if (self._field is not None or self._f32) else np.dtype(np.float64)
        out = _out_buffer(out, (n, *x.shape[1:]), sd).reshape(n, x2.shape[1])
        if n == k or self._field is not None:
            out[:k] = x2
            if n > k:
                with single_thread_blas():
                    self._matmul(self._parity, out[:k], out[k:])
            if self._field is None and not np.isfinite(out).all():
                raise ValueError("Argument 'message' must be finite; it holds NaN or inf.")
        else:
            width = self._block_width(sd)
            finite = []

            def run(c0: int, c1: int) -> None:
                # Copy and multiply one cache-resident column block at a time, so the
                # payload is read from memory once (the product reads the block just copied).
                ok = True
                for b0 in range(c0, c1, width):
                    sl = slice(b0, min(b0 + width, c1))
                    out[:k, sl] = x2[:, sl]
                    self._matmul(self._parity, out[:k, sl], out[k:, sl])
                    # Every parity coefficient is nonzero, so a NaN or inf anywhere in the
                    # block's message columns makes its parity sum non-finite: one cheap
                    # reduction over the cache-resident parity block finds it.
                    with np.errstate(invalid="ignore", over="ignore"):
                        ok &= bool(np.isfinite(np.add.reduce(out[k:, sl], axis=None)))
                finite.append(ok)

            _parallel_columns(run, x2.shape[1], width)
            if not all(finite) and not np.isfinite(x2).all():
                raise ValueError("Argument 'message' must be finite; it holds NaN or inf.")
        if given is not None:
            return given
        out = out.reshape((n, *x.shape[1:]))
        return self._field(out) if galois_out else out

    # -- decode ---------------------------------------------------------------------------
    def decode(self, shards: np.ndarray, indices, *, out: np.ndarray | None = None,
               dtype: object = None) -> np.ndarray:
        """Recover the ``k`` message rows from any ``k`` (or more) distinct shards.

        Parameters
        ----------
        shards : array_like
            Shape ``(m, ...)``: the received shards, row ``j`` being shard ``indices[j]``.
        indices : sequence of int
            The ``m`` distinct shard indices, each in ``[0, n)``. With ``m > k`` a GF(p) code
            uses the first ``k``; a real code uses the best-conditioned ``k`` among them.
        out : numpy.ndarray, optional
            A C-contiguous ``(k, ...)`` array of the output dtype to write into.
        dtype : numpy dtype, optional
            Real codes: the output dtype, float32 or float64 (default: ``out``'s dtype, else
            the shards'). ``np.float32`` from float64 shards returns a float32 payload
            exactly rounded, computing in float64 one cache-sized block at a time.

        Returns
        -------
        numpy.ndarray
            The ``(k, ...)`` message. NaN or inf in the shards propagates into it (see the
            class notes).

        Raises
        ------
        DuplicateIndexError
            An index appears twice.
        NotEnoughShardsError
            Fewer than ``k`` indices.
        ValueError
            An index is out of range, or ``shards`` has not ``len(indices)`` rows.
        """
        idx = self._check_indices(indices)
        y, galois_out = self._payload("shards", shards)
        check_shape("shards", y, rows=len(idx))
        plan = self._plan(idx)
        y2 = y.reshape(len(idx), -1)
        given = out
        od = self._out_dtype(y2.dtype, out, dtype)
        out = _out_buffer(out, (self._k, *y.shape[1:]), od).reshape(self._k, y2.shape[1])
        if self._field is not None:
            out[plan.copy_dst] = y2[plan.copy_src]
            if plan.lost.size:
                src = y2 if plan.cols is None else y2[plan.cols]
                lost = np.empty((plan.lost.size, y2.shape[1]), dtype=y2.dtype)
                self._matmul(plan.coef, src, lost)
                out[plan.lost] = lost
        else:
            self._decode_real(plan, y2, out)
        if given is not None:
            return given
        out = out.reshape((self._k, *y.shape[1:]))
        return self._field(out) if galois_out else out

    # -- internals ------------------------------------------------------------------------
    def _out_dtype(self, shard_dtype: np.dtype, out: object, dtype: object) -> np.dtype:
        if dtype is None:
            return out.dtype if isinstance(out, np.ndarray) and self._field is None else shard_dtype
        if self._field is not None:
            raise ValueError("Argument 'dtype' is only for real codes; GF(p) decodes to int64.")
        try:
            dt = np.dtype(dtype)
        except TypeError as err:
            raise TypeError(f"Argument 'dtype' must be float32 or float64, not {dtype!r}.") from err
        if dt not in (np.float32, np.float64):
            raise ValueError(f"Argument 'dtype' must be float32 or float64, not {dt}.")
        return dt

    def _payload(self, name: str, data) -> tuple[np.ndarray, bool]:
        """Return the payload as a plain ndarray of the working dtype (and galois-ness)."""
        if self._field is None:
            a = np.asarray(data)
            if a.dtype not in (np.float32, np.float64):
                a = a.astype(np.float64)
            if a.ndim < 1:
                check_shape(name, a)
            return a, False
        import galois

        is_gal = isinstance(data, galois.FieldArray)
        if is_gal and type(data) is not self._field:
            raise TypeError(f"Argument {name!r} must be an array over {self._field.name}, "
                            f"not {type(data).name}.")
        a = data.view(np.ndarray) if is_gal else np.asarray(data)
        if a.ndim < 1:
            check_shape(name, a)
        if not is_gal:
            if not np.issubdtype(a.dtype, np.integer):
                raise TypeError(f"Argument {name!r} must hold integers, not dtype {a.dtype}.")
            if a.size and (a.min() < 0 or a.max() >= self._p):
                raise ValueError(f"Argument {name!r} must hold values in [0, {self._p}), "
                                 f"not [{a.min()}, {a.max()}].")
        return a.astype(np.int64, copy=False), is_gal

    def _check_indices(self, indices) -> tuple[int, ...]:
        idx = [check_int("index", i, low=0, high=self._n - 1) for i in
               (np.asarray(indices).reshape(-1).tolist() if np.ndim(indices) else [indices])]
        seen: set[int] = set()
        for i in idx:
            if i in seen:
                raise DuplicateIndexError(i)
            seen.add(i)
        if len(idx) < self._k:
            raise NotEnoughShardsError(needed=self._k, got=len(idx))
        return tuple(idx)

    def _plan(self, idx: tuple[int, ...]) -> _Plan:
        plan = self._cache.get(idx)
        if plan is not None:
            self._cache.move_to_end(idx)
            return plan
        plan = self._make_plan(idx)
        self._cache[idx] = plan
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return plan

    def _make_plan(self, idx: tuple[int, ...]) -> _Plan:
        k, m = self._k, len(idx)
        pos = np.arange(k) if self._field is not None else self._best_positions(idx)
        chosen = np.asarray(idx)[pos]
        sys_mask = chosen < k
        copy_src, copy_dst = pos[sys_mask], chosen[sys_mask]
        lost = np.setdiff1d(np.arange(k), copy_dst)
        if self._field is None:
            inv = np.linalg.inv(self._G[chosen])[lost]
        else:
            gf = self._field
            inv = np.asarray(np.linalg.inv(gf(self._G[chosen]))[lost], dtype=np.int64)
        contiguous = pos[-1] - pos[0] == k - 1 and np.all(np.diff(pos) == 1)
        if contiguous:
            cols, coef = slice(int(pos[0]), int(pos[0]) + k), inv
        else:
            cols = None
            coef = np.zeros((lost.size, m), dtype=inv.dtype)
            coef[:, pos] = inv
        return _Plan(copy_src, copy_dst, lost, cols, np.ascontiguousarray(coef))

    def _best_positions(self, idx: tuple[int, ...]) -> np.ndarray:
        """Positions (sorted) of the best-conditioned k of the given real shards."""
        k, m = self._k, len(idx)
        if m == k:
            return np.arange(k)
        arr = np.asarray(idx)
        # Keep every systematic shard (copied, never multiplied) and pick the parity rows.
        sys_pos = np.flatnonzero(arr < k)[:k]
        par_pos = np.flatnonzero(arr >= k)
        need = k - sys_pos.size
        if need == 0:
            return np.sort(sys_pos)
        if math.comb(par_pos.size, need) <= _MAX_CANDIDATES:
            combos = np.array(list(combinations(par_pos, need)), dtype=np.int64)
        else:
            rng = np.random.default_rng(0)
            rand = np.sort(np.argsort(rng.random((_MAX_CANDIDATES - 1, par_pos.size)), axis=1)
                           [:, :need], axis=1)
            combos = np.vstack([par_pos[:need][None, :], par_pos[rand]])
        cand = np.sort(np.hstack([np.broadcast_to(sys_pos, (len(combos), sys_pos.size)),
                                  combos]), axis=1)
        conds = submatrix_conditions(self._G, arr[cand])
        return cand[int(np.argmin(conds))]

    def _decode_real(self, plan: _Plan, y2: np.ndarray, out: np.ndarray) -> None:
        """Blocked real decode: copy surviving systematic rows, compute only lost rows.

        Each column block is copied and multiplied while it is cache-resident; with float64
        shards and float32 output the lost rows are computed in float64 and rounded once.
        """
        width = self._block_width(y2.dtype)
        copies = _runs(plan.copy_src, plan.copy_dst)
        rows = plan.cols if plan.cols is not None else slice(None)
        lost = plan.lost
        dst = _as_slice(lost)
        direct = dst is not None and out.dtype == y2.dtype
        dst = lost if dst is None else dst
        coef = plan.coef if plan.coef.dtype == y2.dtype else plan.coef.astype(y2.dtype)

        def run(c0: int, c1: int) -> None:
            block = None if direct or lost.size == 0 else np.empty((lost.size, width), y2.dtype)
            for b0 in range(c0, c1, width):
                sl = slice(b0, min(b0 + width, c1))
                for src, to in copies:
                    out[to, sl] = y2[src, sl]
                if lost.size == 0:
                    continue
                if direct:
                    np.matmul(coef, y2[rows, sl], out=out[dst, sl])
                else:  # computed in the shards' dtype, then cast into the output rows
                    b = block[:, : sl.stop - sl.start]
                    np.matmul(coef, y2[rows, sl], out=b)
                    out[dst, sl] = b

        _parallel_columns(run, y2.shape[1], width)

    def _block_width(self, dtype: np.dtype) -> int:
        """Columns per block so that one block of the k payload rows fits in ~L2."""
        return max(256, _BLOCK_BYTES // (self._k * np.dtype(dtype).itemsize))

    def _matmul(self, coef: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
        """``out[...] = coef @ x`` in column blocks (mod p over GF(p))."""
        if self._field is not None:
            _gf_matmul(coef, x, self._p, out)
            return
        # float32 shards (float32_shards=True) multiply in float32 (sgemm): their own rounding
        # bounds the decoded error anyway, and widening every block to float64 measured 3-5x
        # slower. float32 payloads get float64 shards by default for that reason.
        c = coef if coef.dtype == x.dtype else coef.astype(x.dtype)
        width = self._block_width(x.dtype)
        for c0 in range(0, x.shape[1], width):
            np.matmul(c, x[:, c0:c0 + width], out=out[:, c0:c0 + width])


def _as_slice(idx: np.ndarray) -> slice | None:
    """``idx`` (sorted ints) as a slice when it is one contiguous run, else None."""
    if idx.size and idx[-1] - idx[0] == idx.size - 1:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return None


def _runs(src: np.ndarray, dst: np.ndarray) -> list[tuple[slice, slice]]:
    """Row copies ``dst[i] <- src[i]`` grouped into runs of consecutive rows on both sides."""
    out: list[tuple[slice, slice]] = []
    i = 0
    while i < src.size:
        j = i + 1
        while j < src.size and src[j] == src[j - 1] + 1 and dst[j] == dst[j - 1] + 1:
            j += 1
        out.append((slice(int(src[i]), int(src[j - 1]) + 1), slice(int(dst[i]), int(dst[j - 1]) + 1)))
        i = j
    return out


def _out_buffer(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A fresh output array, or the caller's ``out`` after checking it fits."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dtype:
        got = (getattr(out, "shape", None), getattr(out, "dtype", type(out).__name__))
        raise ValueError(f"Argument 'out' must be an array of shape {shape} and dtype {dtype}, "
                         f"not shape {got[0]} and dtype {got[1]}.")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("Argument 'out' must be a writeable C-contiguous array.")
    return out


_POOL: ThreadPoolExecutor | None = None


def _threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, cpus))


def _parallel_columns(run, ncols: int, width: int) -> None:
    """Run ``run(c0, c1)`` over column ranges on a few threads, BLAS single-threaded.

    numpy's copies and BLAS products release the GIL, so plain threads scale on the
    memory-bound blocked loops; one BLAS thread per worker avoids OpenBLAS's own hand-off,
    which costs more than a skinny product itself (see :mod:`coding.blas`).
    """
    global _POOL
    threads = _threads()
    with single_thread_blas():
        if threads == 1 or ncols < 2 * threads * width:
            run(0, ncols)
            return
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_MAX_THREADS, thread_name_prefix="kofn-mds")
        blocks = -(-ncols // width)
        edges = [min(ncols, (blocks * i // threads) * width) for i in range(threads)] + [ncols]
        futures = [_POOL.submit(run, a, b) for a, b in itertools.pairwise(edges) if b > a]
        for f in futures:
            f.result()


def _gf_matmul(coef: np.ndarray, x: np.ndarray, p: int, out: np.ndarray) -> None:
    """Exact ``out = coef @ x mod p`` with float64 BLAS on limbs of ``coef``.

    ``coef`` (small, entries in [0, p)) is cut into ``b``-bit limbs with
    ``2 * m * 2**b * p <= 2**52``, so every product sum and every Horner step
    ``acc * 2**b + v`` is an integer below ``2**53`` and therefore exact in float64.
    """
    m = coef.shape[1]
    b = max(1, min(int(math.floor(math.log2(2**52 / (2 * m * p)))), p.bit_length()))
    nlimbs = -(-p.bit_length() // b)
    mask = (1 << b) - 1
    limbs = [((coef >> (b * t)) & mask).astype(np.float64) for t in reversed(range(nlimbs))]
    while len(limbs) > 1 and not limbs[0].any():  # leading zero limbs add nothing
        limbs.pop(0)
    shift = float(1 << b)
    width = max(1, _BLOCK_BYTES // 8)
    for c0 in range(0, x.shape[1], width):
        xb = x[:, c0:c0 + width].astype(np.float64)
        acc = None
        for limb in limbs:
            v = np.fmod(limb @ xb, p)
            acc = v if acc is None else np.fmod(acc * shift + v, p)
        out[:, c0:c0 + width] = acc
