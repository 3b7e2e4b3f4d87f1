"""Secure mode's fixed-point codec: floats to limbs to packed Shamir shares, and back.

Layout. Entry ``x`` is quantized to ``q = rint(x * 2**F)`` (``F = frac_bits``), offset to
``u = q + 2**(F + I)`` (``I = int_bits``) and split into ``n_limbs`` limbs of ``b =
limb_bits`` bits, lowest first. The update is cut into ``k`` rows of ``mm = ceil(L / k)``
entries (the last zero-padded), as ``mds`` cuts it; message row ``r`` holds the limbs of
row ``r``'s entries *interleaved* (entry ``e``'s limbs at columns ``n_limbs * e`` to
``n_limbs * e + n_limbs - 1``; padding entries have zero limbs), so a share has
``n_limbs * mm`` columns. A worker's shares are ``U @ [X; Z] mod p``: ``U`` the ``n x (k +
t)`` packed-Shamir (Lagrange) matrix of :class:`coding.shamir.SecretShareCode`, ``X`` the
``k`` message rows and ``Z`` ``t`` rows of uniform masks.

Interleaving keeps every column block of the shares tied to one contiguous run of entries
per row, so both directions stream: :func:`encode_secure` quantizes a few thousand
columns' worth of entries, draws their masks and multiplies them while they are in cache,
and writes each share's block straight into the caller's buffers (the payloads of the
shard objects about to be uploaded); :func:`decode_secure` decodes a block of merged
shards and recombines its limbs into the float result, each entry written once. Nothing
the size of the update is allocated besides the output.

Exactness. Limbs and limb sums are integers below ``2**53``, so they are computed in
float64 exactly; ``CodeSpec`` checks ``n (2**b - 1) < p`` (limb sums never wrap) and ``n
2**(F + I + 1) < 2**53`` (the recombined sum is exact), and the products run through
:func:`coding.gfp.skinny_matmul`, which is exact.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from coding.errors import NotEnoughShardsError, OverflowRiskError
from coding.gfp import SKINNY_BLOCK_BYTES, gfp_random, skinny_matmul, skinny_shift
from coding.validate import check_int
from exchange.codes.base import Code as CodeSpec
from exchange.codes.base import check_indices as _check_indices
from exchange.codes.base import check_update as _check_update

__all__ = [
    "quantize_limbs",
    "limbs_to_float",
    "decode_limb_sums",
    "encode_secure",
    "reduce_secure",
    "decode_secure",
]

# Entries per chunk of the elementwise passes: a chunk and its temporaries stay in L2.
_CHUNK = 1 << 16


@functools.lru_cache(maxsize=32)
def shamir_code(n: int, k: int, t: int, p: int):
    """``SecretShareCode(n, k, t, p=p)``, built once per parameter set."""
    from coding.shamir import SecretShareCode

    return SecretShareCode(n, k, t, p=p)


_shamir = shamir_code


def check_secure(spec: object) -> CodeSpec:
    """``spec`` if it is a secure code, else a one-line ValueError."""
    from exchange.codes.secure import Secure

    if not isinstance(spec, Secure):
        raise ValueError(f"Argument 'spec' must be a secure-mode CodeSpec, not {spec!r}.")
    return spec


def check_range(x: np.ndarray, spec: CodeSpec) -> None:
    """Raise OverflowRiskError naming the first entry with ``|x| >= 2**int_bits``."""
    bound = float(2**spec.int_bits)
    if x.size and max(float(x.max()), -float(x.min())) >= bound:
        worst = int(np.argmax(np.abs(x)))
        raise OverflowRiskError(
            f"Update entry {worst} is {x[worst]:.6g}, outside the secure range |x| < 2**int_bits"
            f" = {bound:g}; raise 'int_bits' or scale the update."
        )


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
    check_secure(spec)
    x = _check_update(update)
    check_range(x, spec)
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
    check_secure(spec)
    n_terms = check_int("n_terms", n_terms, low=0)
    limb_sums = np.asarray(limb_sums, dtype=np.int64)
    if limb_sums.ndim != 2 or limb_sums.shape[0] != spec.n_limbs:
        raise ValueError(f"Argument 'limb_sums' must have shape ({spec.n_limbs}, L), not {limb_sums.shape}.")
    total = np.zeros(limb_sums.shape[1], dtype=np.int64)
    for i in reversed(range(spec.n_limbs)):
        total = (total << spec.limb_bits) + limb_sums[i]
    total -= n_terms * (1 << (spec.frac_bits + spec.int_bits))
    return total.astype(np.float64) / float(2**spec.frac_bits)


def decode_limb_sums(merged: np.ndarray, indices: Sequence[int], spec: CodeSpec, length: int) -> np.ndarray:
    """Decode merged shards into the exact limb sums, shape (n_limbs, length).

    The slow exact path (:meth:`SecretShareCode.decode`), kept as a reference for
    :func:`decode_secure`.
    """
    check_secure(spec)
    length = check_int("length", length, low=0)
    idx = _check_indices(indices, spec.n, "indices")
    if len(idx) < spec.merged_needed:
        raise NotEnoughShardsError(spec.merged_needed, len(idx))
    stack = np.asarray(merged)[: spec.merged_needed].astype(np.int64)
    rows = np.asarray(_shamir(spec.n, spec.k, spec.t, spec.p).decode(stack, idx[: spec.merged_needed]),
                      dtype=np.int64)
    nl = spec.n_limbs
    per_entry = rows.reshape(spec.k, -1, nl).reshape(-1, nl)  # entries in order, limbs along
    return np.ascontiguousarray(per_entry[:length].T)


def _block_width(rows: int, inner: int, spec: CodeSpec) -> int:
    """Columns per streamed block: the product's stacked limbs fill 1 MiB."""
    la, _ = skinny_shift(spec.p, inner)
    width = SKINNY_BLOCK_BYTES // (8 * max(inner, la * rows))
    return max(spec.n_limbs, width - width % spec.n_limbs)


def _limbs_into(x: np.ndarray, spec: CodeSpec, dst: np.ndarray, tmp: np.ndarray) -> None:
    """Write the limbs of ``x`` (range-checked) into float64 ``dst`` (len(x), n_limbs).

    Every value is an integer below ``2**53``: ``rint``, the offset and splitting by
    ``floor(u / 2**b)`` are exact in float64 and give :func:`quantize_limbs`'s limbs.
    """
    b = float(2**spec.limb_bits)
    u, h = tmp[0, : x.size], tmp[1, : x.size]
    np.multiply(x, float(2**spec.frac_bits), out=u)
    np.rint(u, out=u)
    u += float(2 ** (spec.frac_bits + spec.int_bits))
    for i in range(spec.n_limbs - 1):  # limb i = u mod 2^b, then u = floor(u / 2^b)
        np.multiply(u, 1.0 / b, out=h)
        np.floor(h, out=h)
        lo = dst[:, i]
        np.multiply(h, b, out=lo)
        np.subtract(u, lo, out=lo)
        u, h = h, u
    dst[:, spec.n_limbs - 1] = u


class _MaskStream:
    """Uniform random bytes for share masks: the AES-256-CTR keystream under a fresh key.

    The key is 32 bytes of ``os.urandom`` drawn per update, so the stream is a CSPRNG
    output (the construction of NIST SP 800-90A's CTR_DRBG, and the PRG that secure
    aggregation protocols expand their mask seeds with), at several GB/s instead of the
    few hundred MB/s of ``os.urandom`` itself.
    """

    def __init__(self) -> None:
        self._enc = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(bytes(16))).encryptor()
        self._zeros = b""

    def take(self, n: int) -> bytes:
        if len(self._zeros) < n:
            self._zeros = bytes(n)
        return self._enc.update(memoryview(self._zeros)[:n])


def _masks_into(dst: np.ndarray, p: int, stream: _MaskStream) -> None:
    """Fill float64 ``dst`` with uniform elements of GF(p) drawn from ``stream``.

    31-bit (at most) values from 4 bytes each; the rare ones ``>= p`` are drawn again, so
    the result is exactly uniform (given uniform bytes).
    """
    mask = np.uint32((1 << (p - 1).bit_length()) - 1)
    dst[...] = (np.frombuffer(stream.take(4 * dst.size), dtype=np.uint32) & mask).reshape(dst.shape)
    bad = dst >= p
    while bad.any():
        dst[bad] = np.frombuffer(stream.take(4 * int(bad.sum())), dtype=np.uint32) & mask
        bad = dst >= p


def encode_secure(x: np.ndarray, spec: CodeSpec, rng: np.random.Generator | None = None,
                  out: Sequence[np.ndarray] | None = None) -> np.ndarray | Sequence[np.ndarray]:
    """The ``n`` secure shares of the float vector ``x`` (see the module docstring).

    Parameters
    ----------
    x : numpy.ndarray
        1-D float64 update (checked by the caller), ``|x| < 2**int_bits``.
    spec : CodeSpec
        A secure spec.
    rng : numpy.random.Generator, optional
        Tests only: masks ``rng.integers(0, p, (t, m))``; by default they come from a
        CSPRNG (:class:`_MaskStream`, keyed from ``os.urandom``), block by block.
    out : sequence of n writable 1-D arrays, optional
        Where share ``j`` goes (``spec.share_length(len(x))`` entries of an integer or
        float dtype that holds ``[0, p)``), e.g. the payloads of shard objects.

    Returns
    -------
    numpy.ndarray of uint32, shape (n, m), or ``out``
    """
    check_range(x, spec)
    n, k, t, nl, p = spec.n, spec.k, spec.t, spec.n_limbs, spec.p
    mm = -(-x.size // k)
    m = nl * mm
    result = np.empty((n, m), dtype=np.uint32) if out is None else out
    if len(result) != n or any(np.shape(row) != (m,) for row in result):
        raise ValueError(f"Argument 'out' must be {n} rows of {m} entries.")
    masks = None if rng is None else gfp_random((t, m), p, rng)
    stream = _MaskStream() if rng is None else None
    U = _shamir(n, k, t, p)._U
    width = _block_width(n, k + t, spec)
    XZ = np.empty((k + t, width))
    res = np.empty((n, width), dtype=np.uint32)
    tmp = np.empty((2, width // nl))
    work: dict = {}
    for c0 in range(0, m, width):
        w = min(width, m - c0)
        e0, ne = c0 // nl, w // nl
        for r in range(k):
            lo = r * mm + e0
            have = max(0, min(ne, x.size - lo))
            dst = XZ[r, :w].reshape(ne, nl)
            if have:
                _limbs_into(x[lo : lo + have], spec, dst[:have], tmp)
            dst[have:] = 0.0
        if masks is None:
            _masks_into(XZ[k:, :w], p, stream)
        else:
            XZ[k:, :w] = masks[:, c0 : c0 + w]
        skinny_matmul(U, XZ[:, :w], p, res[:, :w], width=width, work=work)
        for j in range(n):
            result[j][c0 : c0 + w] = res[j, :w]
    return result


def reduce_secure(rows: Sequence[np.ndarray], p: int) -> np.ndarray:
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


def decode_secure(merged: Sequence[np.ndarray] | np.ndarray, idx: list[int], spec: CodeSpec,
                  length: int, n_terms: int) -> np.ndarray:
    """The float64 sum of ``n_terms`` updates from merged shards ``merged[r]`` of ``idx[r]``.

    Uses the first ``k + t``; the same values as ``limbs_to_float(decode_limb_sums(...))``:
    the limb sums are exact integers and ``n 2**(F + I + 1) < 2**53``, so recombining them,
    removing the offsets and scaling by ``2**-F`` are exact in float64.
    """
    kt, k, nl, p = spec.merged_needed, spec.k, spec.n_limbs, spec.p
    rows = [np.asarray(r) for r in merged[:kt]]
    m = spec.share_length(length)
    if len(rows) != kt or any(r.shape != (m,) for r in rows):
        shapes = [r.shape for r in rows]
        raise ValueError(f"Argument 'merged' must hold at least {kt} shares of {m} entries, not {shapes}.")
    if any(r.dtype.kind not in "iu" for r in rows):
        raise TypeError(f"Argument 'merged' must be integer arrays, not dtype {rows[0].dtype}.")
    D = _shamir(spec.n, k, spec.t, p)._decoder(idx[:kt])
    mm = m // nl if nl else 0
    total = np.empty(length)
    scale = [2.0 ** (spec.limb_bits * i - spec.frac_bits) for i in range(nl)]
    offset = float(n_terms) * 2.0**spec.int_bits  # n_terms * 2**(F+I) * 2**-F
    width = _block_width(k, kt, spec)
    Y = np.empty((kt, width))
    R = np.empty((k, width))
    tmp = np.empty(width // nl)
    work: dict = {}
    for c0 in range(0, m, width):
        w = min(width, m - c0)
        for i, row in enumerate(rows):
            Y[i, :w] = row[c0 : c0 + w]
        Yb = Y[:, :w]
        if Yb.size and (Yb.max() >= p or Yb.min() < 0):
            raise ValueError(f"Argument 'merged' must have entries in [0, p={p}).")
        skinny_matmul(D, Yb, p, R[:, :w], width=width, work=work)
        e0, ne = c0 // nl, w // nl
        for r in range(k):
            lo = r * mm + e0
            have = max(0, min(ne, length - lo))
            if not have:
                continue
            v = R[r, :w].reshape(ne, nl)[:have]
            dst, t_ = total[lo : lo + have], tmp[:have]
            np.multiply(v[:, nl - 1], scale[nl - 1], out=dst)
            for i in range(nl - 2, -1, -1):
                np.multiply(v[:, i], scale[i], out=t_)
                dst += t_
            dst -= offset
    return total
