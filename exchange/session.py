"""One worker's coded all-reduce session: ``allreduce(tensors) -> mean``, round after round.

:class:`AllReduce` owns the worker loop that :meth:`exchange.round.Exchange.run` only
sketches: each call publishes the worker's update, does its aggregation duty on a
background thread (so a slow aggregator does not hold back its own trainer), collects
and returns the mean. It also keeps a worker that fell behind in step instead of letting
it time out:

* before publishing round ``r`` it looks at the newest complete round ``R``; if
  ``R >= r`` the others finished without it, its update is no longer needed, and
* while collecting, a round whose objects were already cleaned up raises
  :class:`~exchange.errors.RoundBehindError` inside the round;

in both cases the call returns what the worker missed instead of one round's mean: the
sum of the means of rounds ``r..R``, read from the running total that the completer of
each round writes under ``{prefix}/{job}/total/r{R:08d}`` (a float64 shard, ``if_absent``).
Adding what every call returns keeps every worker's model equal to
``initial + sum of all means``, on time or late. :attr:`AllReduceResult.rounds` says which
rounds a call covered.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from coding.errors import KofnError
from coding.validate import check_int
from exchange.codes import Code
from exchange.errors import CorruptShardError, DecryptionError, RoundBehindError, RoundTimeoutError
from exchange.layout import TensorLayout, flatten, unflatten
from exchange.round import Exchange
from exchange.round_types import RoundConfig, RoundStats
from exchange.shards import ShardHeader, pack_shard, unpack_shard
from exchange.stores.base import Store

__all__ = ["AllReduce", "AllReduceResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AllReduceResult:
    """What one :meth:`AllReduce.step` returned.

    Attributes
    ----------
    rounds : tuple of int
        The rounds this call covers: ``(r,)`` on time, ``(r, ..., R)`` after a catch-up.
    mean : numpy.ndarray
        Flat float64: the round's mean update, or the sum of the means of ``rounds``.
    layout : TensorLayout or None
        The tensors' layout, if the update was a dict.
    contributors : tuple of int
        Workers whose updates the round's mean covers; empty after a catch-up.
    aggregators : tuple of int
        Aggregators whose merged shards were decoded; empty after a catch-up.
    caught_up : bool
        Whether this worker was behind and skipped to the newest complete round.
    stats : RoundStats
        This call's traffic and timings (its aggregation duty included when done).
    """

    rounds: tuple[int, ...]
    mean: np.ndarray
    layout: TensorLayout | None
    contributors: tuple[int, ...]
    aggregators: tuple[int, ...]
    caught_up: bool
    stats: RoundStats

    @property
    def tensors(self) -> dict[str, np.ndarray] | None:
        """The mean as named float64 tensors, if the update was a dict."""
        return None if self.layout is None else unflatten(self.mean, self.layout, cast=False)


class AllReduce:
    """A worker's coded all-reduce over any store, with stragglers handled.

    Parameters
    ----------
    store : Store
        Where the objects live (wrap it in ``EncryptedStore`` to authenticate them).
    code : Code
        The exchange code (:func:`exchange.codes.make_code`), the same for every worker.
    worker : int
        This worker, ``0 <= worker < code.n``.
    job : str, optional
        Job name (a key part); every worker of the job uses the same.
    quorum : int, optional
        Done markers that fix a round's members (see :class:`~exchange.round.RoundConfig`);
        ``n - 1`` lets the fast workers close rounds without one straggler.
    deadline_s, takeover_after_s, keep_rounds, threads, prefix, poll_min_s, poll_max_s :
        As in :class:`~exchange.round.RoundConfig`.
    first_round : int, optional
        The number of the first round (the training runtime counts from 1; round 0 is
        its initial model).

    Notes
    -----
    Rounds count from ``first_round``. A worker that starts after others have run rounds catches up on
    its first call. Close the session (or use it as a context manager) to finish the
    aggregation duty still running.
    """

    def __init__(self, store: Store, code: Code, *, worker: int, job: str = "allreduce",
                 quorum: int | None = None, deadline_s: float = 120.0, takeover_after_s: float = 0.5,
                 keep_rounds: int = 2, threads: int = 4, prefix: str = "kofn",
                 poll_min_s: float = 0.002, poll_max_s: float = 0.05, first_round: int = 0):
        config = RoundConfig(job=job, code=code, prefix=prefix, deadline_s=deadline_s,
                             takeover_after_s=takeover_after_s, keep_rounds=keep_rounds,
                             threads=threads, quorum=quorum, poll_min_s=poll_min_s,
                             poll_max_s=poll_max_s)
        self.worker = check_int("worker", worker, low=0, high=code.n - 1, high_name="n-1")
        self.exchange = Exchange(store, config)
        self.store, self.code, self.config = store, code, config
        self.round = check_int("first_round", first_round, low=0)
        self._total: np.ndarray | None = None  # sum of every mean returned so far
        self._duty = cf.ThreadPoolExecutor(1, thread_name_prefix=f"kofn-duty-{self.worker}")
        self._pending: cf.Future | None = None

    # -- public ------------------------------------------------------------------------------
    def allreduce(self, update: Mapping[str, object] | np.ndarray) -> dict[str, np.ndarray] | np.ndarray:
        """Contribute ``update`` to the next round and return the mean (see :meth:`step`).

        Returns named float64 tensors for a dict, a flat float64 vector otherwise.
        """
        res = self.step(update)
        return res.mean if res.layout is None else res.tensors  # type: ignore[return-value]

    def step(self, update: Mapping[str, object] | np.ndarray) -> AllReduceResult:
        """Run this worker's next round (or catch up) and return the full result."""
        flat, layout = flatten(update) if isinstance(update, Mapping) else (np.asarray(update), None)
        r = self.round
        latest = self.exchange.latest_complete_round()
        if latest is not None and latest >= r:
            return self._catch_up(r, flat.size, layout, RoundStats())
        stats = self.exchange.publish(r, self.worker, flat)
        self._finish_duty()
        self._pending = self._duty.submit(self._aggregate, r)
        try:
            result = self.exchange.collect(r)
        except RoundBehindError:
            return self._catch_up(r, flat.size, layout, stats)
        if self._pending.done():
            stats = stats + (self._pending.result() or RoundStats())
            self._pending = None
        mean = result.mean
        self._total = mean.copy() if self._total is None else self._total + mean
        if result.completed:  # this worker closed the round: it records the running total
            self._put_total(r)
        self.round = r + 1
        return AllReduceResult((r,), mean, layout, result.contributors, result.aggregators, False,
                               stats + result.stats)

    def close(self) -> None:
        """Finish the aggregation duty still running, then release the exchange."""
        self._duty.shutdown(wait=True)
        self.exchange.close()

    def __enter__(self) -> AllReduce:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------
    def _aggregate(self, r: int) -> RoundStats | None:
        try:
            return self.exchange.aggregate(r, self.worker)
        except (KofnError, FileNotFoundError) as err:  # decoded around, or taken over
            log.warning("round %d worker %d: own aggregation failed: %s", r, self.worker, err)
            return None

    def _finish_duty(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def _total_key(self, r: int) -> str:
        return f"{self.config.prefix}/{self.config.job}/total/r{r:08d}"

    def _put_total(self, r: int) -> None:
        header = ShardHeader(kind="total", job=self.config.job, round=r,
                             code=self.code.to_json(), length=int(self._total.size))
        try:
            self.store.put(self._total_key(r), pack_shard(header, self._total), if_absent=True)
        except FileExistsError:
            pass
        keep = max(self.config.keep_rounds, 2) + 1
        if r - keep >= 0:
            self.store.delete([self._total_key(r - keep)])

    def _newest_total(self, r: int) -> tuple[int, np.ndarray] | None:
        prefix = f"{self.config.prefix}/{self.config.job}/total/r"
        rounds = sorted((int(k[len(prefix):]) for k in self.store.list(prefix) if k[len(prefix):].isdigit()),
                        reverse=True)
        for q in (q for q in rounds if q >= r):
            key = self._total_key(q)
            try:
                shard = unpack_shard(self.store.get(key), key=key,
                                     expect={"kind": "total", "job": self.config.job, "round": q,
                                             "code": self.code.to_json()})
            except (FileNotFoundError, CorruptShardError, DecryptionError) as err:
                log.warning("worker %d: cannot read running total %s: %s", self.worker, key, err)
                continue
            return q, np.asarray(shard.payload, dtype=np.float64)
        return None

    def _catch_up(self, r: int, length: int, layout: TensorLayout | None, stats: RoundStats) -> AllReduceResult:
        """Skip to the newest complete round: return the sum of the means this worker missed."""
        deadline = time.monotonic() + self.config.deadline_s
        delay = self.config.poll_min_s
        while (found := self._newest_total(r)) is None:  # its completer may still be writing it
            if time.monotonic() >= deadline:
                raise RoundTimeoutError([f"total/r{r:08d} or later"])
            time.sleep(delay)
            delay = min(2 * delay, self.config.poll_max_s)
        q, total = found
        if total.size != length:
            raise KofnError(f"Round {q}'s running total has {total.size} entries; this worker's "
                            f"update has {length}.")
        missed = total if self._total is None else total - self._total
        self._total = total.copy()
        log.info("worker %d is behind: caught up over rounds %d..%d", self.worker, r, q)
        self.round = q + 1
        return AllReduceResult(tuple(range(r, q + 1)), missed, layout, (), (), True, stats)
