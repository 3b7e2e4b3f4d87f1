"""The round's settings, its per-call statistics and result, and the request meter.

Split from :mod:`exchange.round` (the protocol) so each stays a readable size; everything
here is re-exported there.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

import numpy as np

from coding.validate import check_int, check_real
from exchange.codes import Code
from exchange.layout import TensorLayout, unflatten
from exchange.stores.base import Store

__all__ = ["RoundConfig", "RoundStats", "RoundResult"]

@dataclass(frozen=True)
class RoundConfig:
    """Settings of a job's exchange rounds.

    Parameters
    ----------
    job : str
        Job name; a key part, so no ``/``.
    code : Code
        The code object (:mod:`exchange.codes`).
    prefix : str, optional
        Key prefix of all the job's objects.
    deadline_s : float, optional
        Longest wait of each phase (members, contributions, merged shards).
    poll_min_s, poll_max_s : float, optional
        First and largest backoff between two listings.
    takeover_after_s : float, optional
        How long :meth:`Exchange.collect` waits for a missing merged shard before
        computing it itself.
    keep_rounds : int, optional
        Rounds kept in the store; the collector that completes round ``r`` deletes rounds
        ``<= r - keep_rounds``. 0 keeps everything.
    threads : int, optional
        Parallel uploads/downloads per :class:`Exchange`.
    quorum : int, optional
        Done markers that fix the member set, validated by the code
        (:meth:`~exchange.codes.base.Code.check_quorum`): by default ``n``, where a
        smaller quorum tolerates dead trainers and the result then sums only the members
        (``RoundResult.contributors``); fixed at ``n - s`` for ``backup`` and the gradient
        codes.
    max_length : int, optional
        The longest update (in elements) a shard may describe, from the job manifest's
        limits; a shard claiming more is an erasure, refused before anything is decoded.
        ``None``: the shard format's own cap.
    """

    job: str
    code: Code
    prefix: str = "kofn"
    deadline_s: float = 120.0
    poll_min_s: float = 0.002
    poll_max_s: float = 0.05
    takeover_after_s: float = 0.5
    keep_rounds: int = 2
    threads: int = 8
    quorum: int | None = None
    max_length: int | None = None

    def __post_init__(self) -> None:
        for name in ("job", "prefix"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
                raise ValueError(f"Argument {name!r} must be a non-empty key part without '/', not {value!r}.")
        if not isinstance(self.code, Code):
            raise TypeError(f"Argument 'code' must be a Code, not {type(self.code).__name__}.")
        check_real("deadline_s", self.deadline_s, low=0.0, low_open=True)
        check_real("poll_min_s", self.poll_min_s, low=0.0, low_open=True)
        check_real("poll_max_s", self.poll_max_s, low=self.poll_min_s)
        check_real("takeover_after_s", self.takeover_after_s, low=0.0)
        check_int("keep_rounds", self.keep_rounds, low=0)
        check_int("threads", self.threads, low=1)
        if self.max_length is not None:
            check_int("max_length", self.max_length, low=1)
        object.__setattr__(self, "quorum", self.code.check_quorum(self.quorum))


@dataclass
class RoundStats:
    """Traffic and time of one or more protocol calls.

    Attributes
    ----------
    bytes_up, bytes_down : int
        Object bytes written and read (headers included).
    puts, gets, lists : int
        Requests (a lost ``if_absent`` race still counts as a PUT).
    encode_s, upload_s, wait_s, download_s, reduce_s, decode_s : float
        Seconds in each phase: encoding and packing shares; writing objects (beyond the
        packing they overlap with); polling with backoff; reading objects; combining
        shares at an aggregator; decoding.
    takeovers : int
        Merged shards this call computed for another aggregator.
    duplicates : int
        Publishes that changed nothing because the worker's contribution to the round
        was already counted (a restart's or a duplicate process's repeat).
    """

    bytes_up: int = 0
    bytes_down: int = 0
    puts: int = 0
    gets: int = 0
    lists: int = 0
    encode_s: float = 0.0
    upload_s: float = 0.0
    wait_s: float = 0.0
    download_s: float = 0.0
    reduce_s: float = 0.0
    decode_s: float = 0.0
    takeovers: int = 0
    duplicates: int = 0

    def __add__(self, other: RoundStats) -> RoundStats:
        return RoundStats(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                             for f in dataclasses.fields(self)})

    def as_dict(self) -> dict[str, float]:
        """The fields as a plain dict (for JSON results)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RoundResult:
    """What :meth:`Exchange.collect` decoded.

    Attributes
    ----------
    round : int
        The round.
    total : numpy.ndarray
        The flat float64 sum of the updates of ``n_terms`` workers.
    n_terms : int
        How many workers' updates the sum covers (``n`` in the gradient modes, where the
        code recovers the full sum from ``n - s`` contributions).
    contributors : tuple of int
        Workers whose contributions were combined.
    aggregators : tuple of int
        Aggregators whose merged shards were decoded.
    layout : TensorLayout or None
        Present when the updates were dicts of tensors.
    stats : RoundStats
        This call's traffic and timings (or the whole round's, from :meth:`Exchange.run`).
    completed : bool
        Whether this call was the first to decode the round (it wrote the ``complete``
        marker and cleaned up old rounds).
    """

    round: int
    total: np.ndarray
    n_terms: int
    contributors: tuple[int, ...]
    aggregators: tuple[int, ...]
    layout: TensorLayout | None
    stats: RoundStats
    completed: bool = False

    @property
    def mean(self) -> np.ndarray:
        """``total / n_terms``."""
        return self.total / max(self.n_terms, 1)

    @property
    def tensors(self) -> dict[str, np.ndarray] | None:
        """The total as named tensors, if the updates had a layout."""
        return None if self.layout is None else unflatten(self.total, self.layout)


class _Meter:
    """Counts one call's requests, bytes and phase times (thread-safe)."""

    def __init__(self, store: Store):
        self.store = store
        self.stats = RoundStats()
        self._lock = threading.Lock()

    def _add(self, **delta: float) -> None:
        with self._lock:
            for name, value in delta.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write; return False if an ``if_absent`` write lost the race."""
        self._add(puts=1)
        try:
            self.store.put(key, data, if_absent=if_absent)
        except FileExistsError:
            if not if_absent:
                raise
            return False
        self._add(bytes_up=len(data))
        return True

    def put_parts(self, key: str, parts: list[tuple[str, bytes]]) -> list[tuple[int, int]]:
        """Write ``parts`` as one object (one PUT); their ``(offset, length)`` in it."""
        self._add(puts=1)
        index = self.store.put_parts(key, parts)
        self._add(bytes_up=sum(len(data) for _, data in parts))
        return index

    def get_part(self, key: str, name: str, offset: int, length: int) -> bytes:
        self._add(gets=1)
        data = self.store.get_part(key, name, offset, length)
        self._add(bytes_down=len(data))
        return data

    def get(self, key: str) -> bytes:
        self._add(gets=1)
        data = self.store.get(key)
        self._add(bytes_down=len(data))
        return data

    def get_bounded(self, key: str, max_bytes: int | None) -> bytes:
        if max_bytes is None:
            return self.get(key)
        self._add(gets=1)
        data = self.store.get_bounded(key, max_bytes)
        self._add(bytes_down=len(data))
        return data

    def list(self, prefix: str) -> list[str]:
        self._add(lists=1)
        return self.store.list(prefix)

    def exists(self, key: str) -> bool:
        """A HEAD request (counted with the GETs: S3 prices them alike)."""
        self._add(gets=1)
        return self.store.exists(key)

    def timed(self, phase: str) -> _Timer:
        return _Timer(self, phase + "_s")


class _Timer:
    def __init__(self, meter: _Meter, field: str):
        self.meter, self.field = meter, field

    def __enter__(self) -> _Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.meter._add(**{self.field: time.perf_counter() - self.t0})
