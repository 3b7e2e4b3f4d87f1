"""The protocol every exchange code follows, and the helpers the built-in codes share.

A *code* (:class:`Code`) decides everything about a round that depends on the coding
scheme: how many contributions an aggregator combines and whether the aggregators must
agree on them, how many merged shards decode the sum, the length and dtype of a share,
and the three pure steps ``encode`` (one worker's update to its ``n`` shares),
``reduce`` (one aggregator's shares to its merged shard) and ``decode`` (enough merged
shards to the sum). The round (:class:`exchange.round.Exchange`), the run config, the
trigger and the runner ask the code object; none of them branches on its name.

A new code is one module with one :class:`Code` subclass (a frozen dataclass of its
parameters) plus one line in :data:`exchange.codes.CODES`, or a call to
:func:`exchange.codes.register_code` from anywhere.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from coding.blas import single_thread_blas
from coding.errors import DuplicateIndexError, NotEnoughShardsError
from coding.validate import check_int

__all__ = ["BuiltinCode", "Code", "as_rows", "check_indices", "check_update", "rows", "weighted_sum"]

# Columns per chunk of the weighted sums: a chunk of every row stays in L2.
_CHUNK = 1 << 16


class _CodeMeta(abc.ABCMeta):
    """``Code("mds", 6, k=4)`` builds the registered class for that name (the old
    ``CodeSpec(mode, n, ...)`` call); ``MDS(6, k=4)`` builds the class itself."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Code:
            from exchange.codes import make_code

            if args:
                name, args = args[0], args[1:]
            else:
                name = kwargs.pop("mode", None)
            return make_code(name, *args, **kwargs)
        return super().__call__(*args, **kwargs)


class Code(metaclass=_CodeMeta):
    """One exchange code: what a round needs, and its encode / reduce / decode.

    Subclasses are frozen dataclasses whose fields are the code's parameters (``n``
    first), and they set :attr:`name`, the registry name recorded in every shard header.
    They must implement :attr:`merged_needed`, :meth:`share_length`, :meth:`encode` and
    :meth:`decode`; everything else has a default that fits a linear code over the reals
    whose aggregators agree on one contributor set.
    """

    #: The registry name (shard headers record it as ``"mode"``).
    name: ClassVar[str] = ""
    #: Whether :meth:`encode` can write the shares straight into the caller's buffers
    #: (``out=``, the payloads of the objects about to be uploaded).
    encodes_in_place: ClassVar[bool] = False
    #: Whether a share must reach its aggregator alone (T-private codes): jobs then seal
    #: each contribution share to its aggregator's key (exchange.share_keys.SealedShareStore).
    private: ClassVar[bool] = False
    n: int

    # -- what a round needs -------------------------------------------------------------
    @property
    def mode(self) -> str:
        """The name shard headers record (``name``, unless a code varies it by parameters)."""
        return self.name

    @property
    def field(self) -> int | None:
        """The prime ``p`` of the field the shares live in, or ``None`` for the reals."""
        return None

    @property
    def contributions_needed(self) -> int:
        """The fewest contributions an aggregator may combine (``n`` unless overridden)."""
        return self.n

    @property
    def needs_consensus(self) -> bool:
        """Whether every aggregator must combine the same contributor set.

        True for codes whose merged shards decode together only over one set (the
        round agrees on it through a ``members`` object); False when any qualifying set
        gives the same total (gradient codes).
        """
        return True

    @property
    @abc.abstractmethod
    def merged_needed(self) -> int:
        """How many distinct merged shards decode the sum."""

    def check_quorum(self, quorum: int | None) -> int:
        """The round's quorum (done markers that fix the member set), validated.

        Default: ``n``, or any value in ``1..n`` (a smaller one tolerates dead trainers,
        and the sum then covers the members only).
        """
        if quorum is None:
            return self.n
        return check_int("quorum", quorum, low=1, high=self.n, high_name="n")

    def n_terms(self, contributors: Sequence[int]) -> int:
        """How many workers' updates a sum over ``contributors`` covers."""
        return len(contributors)

    def decode_indices(self, indices: Sequence[int]) -> list[int]:
        """Which of the available merged shards (ascending) to decode from (default: all)."""
        return list(indices)

    # -- the trainer's side -------------------------------------------------------------
    def partitions(self, worker: int) -> tuple[int, ...]:
        """The data partitions worker ``worker`` trains on (default: its own)."""
        return (int(worker),)

    def coefficients(self, worker: int) -> tuple[float, ...]:
        """Weights of worker ``worker``'s partition updates in what it publishes."""
        return tuple(1.0 for _ in self.partitions(worker))

    # -- the wire -------------------------------------------------------------------------
    def share_dtype_for(self, dtype: object) -> str:
        """Little-endian dtype of the shares of an update of ``dtype`` (default ``"<f8"``)."""
        return "<f8"

    @property
    def share_dtype(self) -> str:
        """Share dtype of a float64 update."""
        return self.share_dtype_for(np.float64)

    @abc.abstractmethod
    def share_length(self, length: int) -> int:
        """Entries in one share for a flat update of ``length`` entries."""

    # -- the three steps ----------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, update: np.ndarray, *, rng: np.random.Generator | None = None,
               out: Sequence[np.ndarray] | None = None) -> np.ndarray | Sequence[np.ndarray]:
        """One worker's flat update to its ``n`` shares (row ``j`` for aggregator ``j``)."""

    def weights(self, contributors: Sequence[int]) -> np.ndarray:
        """Weights an aggregator gives the contributions of ``contributors`` (all ones)."""
        who = check_indices(contributors, self.n, "contributors")
        if len(who) < 1:
            raise NotEnoughShardsError(1, 0, "contributions")
        return np.ones(len(who), dtype=np.float64)

    def reduce(self, shards: np.ndarray | Sequence[np.ndarray], contributors: Sequence[int]) -> np.ndarray:
        """One aggregator's shares (a row per contributor) to its merged shard."""
        w = self.weights(contributors)
        got = as_rows(shards, w.size)
        if got is None:
            raise ValueError(f"Argument 'shards' must have shape ({w.size}, m), one row per contributor, "
                             f"not {np.shape(shards)}.")
        return weighted_sum(got, w)

    @abc.abstractmethod
    def decode(self, merged: np.ndarray | Sequence[np.ndarray], indices: Sequence[int], *,
               length: int, n_terms: int) -> np.ndarray:
        """Merged shards (row ``r`` from aggregator ``indices[r]``) to the flat float64 sum."""

    # -- JSON -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict, recorded in every shard header (``"mode"`` names the class)."""
        return {"mode": self.mode, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Code:
        """Rebuild any registered code from :meth:`to_json` output."""
        from exchange.codes import code_from_json

        return code_from_json(data)

    @classmethod
    def from_settings(cls, n: int, *, k: int | None = None, s: int = 0, t: int = 0,
                      p: int | None = None, seed: int = 0) -> Code:
        """The code for a run's "any k of n" settings (``k`` = merged shards to decode).

        The run config calls this with all of its code settings; each code takes the ones
        it has as fields and ignores the rest (``t`` outside secure, ``s`` in plain). A code
        whose own ``k`` means something else (secure's message rows) translates here.
        """
        names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        given = {"k": k, "s": s, "t": t, "p": p, "seed": seed}
        return cls(n, **{key: v for key, v in given.items() if v is not None and key in names})


# The parameter record every built-in code writes into shard headers (format v1, from the
# days of one CodeSpec class): parameters a code lacks appear at these neutral values.
LEGACY_RECORD: dict[str, object] = {"s": 0, "t": 0, "p": 2**31 - 1, "frac_bits": 32,
                                    "int_bits": 14, "limb_bits": 24, "seed": 0}


class BuiltinCode(Code):
    """A built-in code: its header record keeps the v1 shape (every v1 parameter)."""

    def to_json(self) -> dict[str, object]:
        return {**LEGACY_RECORD, **super().to_json()}


# -- helpers the built-in codes share ---------------------------------------------------

def rows(flat: np.ndarray, k: int) -> np.ndarray:
    """Zero-pad a 1-D vector to a multiple of ``k`` and view it as ``k`` rows."""
    m = -(-flat.size // k)
    if flat.size == k * m:
        return flat.reshape(k, m)
    out = np.zeros(k * m, dtype=flat.dtype)
    out[: flat.size] = flat
    return out.reshape(k, m)


def check_update(update: object, name: str = "update", *, keep_float32: bool = False) -> np.ndarray:
    """``update`` as a finite 1-D float64 array (float32 kept as is with ``keep_float32``)."""
    arr = np.asarray(update)
    if arr.ndim != 1 or arr.dtype.kind not in "biuf":
        raise ValueError(f"Argument {name!r} must be a 1-D numeric array, not {arr.dtype} shape {arr.shape}.")
    if not (keep_float32 and arr.dtype == np.float32):
        arr = arr.astype(np.float64, copy=False)
    # min and max propagate NaN and show an infinity: two reductions, no temporary
    if arr.size and not (math.isfinite(float(arr.min())) and math.isfinite(float(arr.max()))):
        raise ValueError(f"Argument {name!r} must be finite; it has NaN or infinite entries.")
    return arr


def check_indices(indices: Sequence[int], n: int, name: str) -> list[int]:
    """Distinct indices in ``0..n-1``, as ints."""
    out = [check_int(name, i, low=0, high=n - 1, high_name="n-1") for i in indices]
    seen: set[int] = set()
    for i in out:
        if i in seen:
            raise DuplicateIndexError(i)
        seen.add(i)
    return out


def as_rows(data: object, count: int) -> list[np.ndarray] | None:
    """``data`` (an array, or a sequence of equal 1-D arrays) as ``count`` row views, or None.

    Accepting the rows as a list lets the round pass the payloads it read without first
    stacking them into one array (a copy of everything).
    """
    if not isinstance(data, np.ndarray):
        got = [np.asarray(r) for r in data]  # type: ignore[attr-defined]
        if len(got) == count and all(r.ndim == 1 and r.shape == got[0].shape
                                     and r.dtype == got[0].dtype for r in got):
            return got
        data = np.asarray(got)
    if data.ndim != 2 or data.shape[0] != count:
        return None
    return list(data)


def weighted_sum(parts: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """``weights @ parts`` accumulated in float64, one cache-sized column chunk at a time."""
    m = parts[0].shape[0]
    out = np.empty(m)
    if np.all(weights == 1.0):
        out[...] = parts[0]
        for row in parts[1:]:
            np.add(out, row, out=out)
        return out
    block = np.empty((len(parts), min(_CHUNK, m)))
    with single_thread_blas():
        for c0 in range(0, m, _CHUNK):
            w = min(_CHUNK, m - c0)
            for i, row in enumerate(parts):
                block[i, :w] = row[c0 : c0 + w]
            np.matmul(weights, block[:, :w], out=out[c0 : c0 + w])
    return out
