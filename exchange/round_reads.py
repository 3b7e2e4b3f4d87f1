"""Finding and reading what a round's parties wrote: the mixin :class:`RoundReader`.

Split from :mod:`exchange.round` (the protocol) so each stays a readable size.
:class:`~exchange.round.Exchange` inherits these methods:

* the contribution shares: a worker writes its ``n`` shares as the parts of one object
  ``contrib/{w}.{attempt}`` (one PUT), and its ``done/{w}`` marker names the attempt and
  holds each part's ``(offset, length)`` (read once, then cached in ``_attempts`` and
  ``_parts``); aggregator ``j`` reads its part ``contrib/{j}/{w}.{attempt}`` with one
  ranged GET;
* waiting with exponential backoff (``_poll``), looking the done markers up one by one
  (:class:`exchange.wait.KeyProbe`), and the agreed contributor set (``members``);
* downloading and verifying shards in parallel, and gathering an aggregator's
  contributions (the agreed members, or in the gradient modes the first ``n - s``).

The host provides ``store``, ``config``, ``code``, ``_pool`` (its thread pool),
``_attempts``, ``_parts``, ``_max_object``, :meth:`~exchange.round.Exchange.round_prefix`, ``_header``
and ``_expect``. Records go to the ``exchange.round`` logger, as they did before the split.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from exchange.codes import Code
from exchange.errors import (
    CorruptShardError,
    DecryptionError,
    ObjectTooLargeError,
    RoundTimeoutError,
)
from exchange.round_types import RoundConfig, _Meter
from exchange.shards import Shard, pack_shard, unpack_shard
from exchange.stores.base import Store
from exchange.wait import KeyProbe

__all__ = ["RoundReader", "part_index", "share_parts"]

log = logging.getLogger("exchange.round")


def share_parts(store: Store, round_prefix: str, w: int) -> list[tuple[str, str, int, int]]:
    """Where each of worker ``w``'s counted shares lies, from its done marker alone.

    Returns one ``(key, name, offset, length)`` per aggregator ``j``: the object, the
    share's own name and its part (read one with ``store.get_part(key, name, offset,
    length)``). For tools and tests that hold a store but not the job's round config; the
    exchange itself checks the marker against the job (:meth:`Exchange.share_location`).

    Raises
    ------
    FileNotFoundError
        No done marker: ``w`` has not published this round.
    CorruptShardError
        The marker is damaged or holds no part index.
    """
    key = f"{round_prefix}done/{w}"
    shard = unpack_shard(store.get(key), key=key)
    parts = part_index(shard, key)
    attempt = shard.header.attempt
    group = f"{round_prefix}contrib/{w}.{attempt}"
    return [(group, f"{round_prefix}contrib/{j}/{w}.{attempt}", o, n)
            for j, (o, n) in enumerate(parts)]


def part_index(marker: Shard, key: str, n: int | None = None) -> tuple[tuple[int, int], ...]:
    """The ``(offset, length)`` of each share a done marker records (``n`` of them, if given).

    Raises
    ------
    CorruptShardError
        The payload is not ``2n`` non-negative ``<i8`` (a crafted or damaged marker).
    """
    index = marker.payload
    if (index.dtype.str != "<i8" or index.ndim != 1 or index.size % 2
            or (n is not None and index.size != 2 * n) or (index.size and int(index.min()) < 0)):
        want = "pairs" if n is None else f"{2 * n}"
        raise CorruptShardError(key, f"its part index has shape {index.shape} and dtype "
                                     f"{index.dtype.str}, not {want} non-negative <i8")
    return tuple((int(o), int(m)) for o, m in index.reshape(-1, 2).tolist())


class RoundReader:
    """The reading half of :class:`~exchange.round.Exchange` (a mixin; see the module)."""

    store: Store
    config: RoundConfig
    code: Code
    _pool: cf.ThreadPoolExecutor
    _attempts: dict[tuple[int, int], str]
    _parts: dict[tuple[int, int], tuple[tuple[int, int], ...]]
    _max_object: int | None

    # -- done markers and share keys --------------------------------------------------------
    def _share_key(self, r: int, j: int, w: int, attempt: str) -> str:
        """The key of attempt ``attempt`` of worker ``w``'s share for aggregator ``j``."""
        key = f"{self.round_prefix(r)}contrib/{j}/{w}"
        return f"{key}.{attempt}" if attempt else key

    def _group_key(self, r: int, w: int, attempt: str) -> str:
        """The object holding all ``n`` shares of attempt ``attempt`` of worker ``w``."""
        return f"{self.round_prefix(r)}contrib/{w}.{attempt}"

    def _read_done(self, meter: _Meter, r: int, w: int) -> str | None | Exception:
        """The attempt worker ``w``'s done marker names; None if missing; the error if bad.

        The marker's payload is its shares' part index, ``n`` pairs ``(offset, length)``;
        one that is not (a crafted or damaged marker) makes the contribution an erasure.
        """
        cached = self._attempts.get((r, w))
        if cached is not None:
            return cached
        key = f"{self.round_prefix(r)}done/{w}"
        item = self._read_shard(meter, key, self._expect("done", r, worker=w))
        if isinstance(item, FileNotFoundError):
            return None
        if not isinstance(item, Exception):
            try:
                parts = part_index(item, key, self.code.n)
            except CorruptShardError as err:
                item = err
        if isinstance(item, Exception):
            log.warning("round %d: done marker of worker %d is unreadable, so its contribution "
                        "is an erasure: %s", r, w, item)
            return item
        self._parts[(r, w)] = parts
        self._attempts[(r, w)] = item.header.attempt
        return item.header.attempt

    def _contrib_key(self, meter: _Meter, r: int, j: int, w: int) -> str:
        """The name of worker ``w``'s counted share for aggregator ``j`` (its marker's attempt)."""
        attempt = self._read_done(meter, r, w)
        return self._share_key(r, j, w, attempt if isinstance(attempt, str) else "")

    def _read_contrib(self, meter: _Meter, r: int, j: int, w: int) -> Shard | Exception:
        """Worker ``w``'s share for aggregator ``j``: one ranged GET of its part, verified.

        Every failure is returned, not raised, and is an erasure: no done marker
        (``FileNotFoundError``), an unreadable one, a part longer than the job allows, a
        missing, short, tampered or undecryptable part.
        """
        attempt = self._read_done(meter, r, w)
        name = self._share_key(r, j, w, attempt if isinstance(attempt, str) else "")
        if attempt is None:
            return FileNotFoundError(name)
        if isinstance(attempt, Exception):
            return attempt
        offset, length = self._parts[(r, w)][j]
        limit = self._part_limit()
        if limit is not None and length > limit:
            return CorruptShardError(name, f"{length} bytes, more than the job allows ({limit})")
        expect = self._expect("contrib", r, index=j, worker=w, attempt=attempt)
        try:
            blob = meter.get_part(self._group_key(r, w, attempt), name, offset, length)
            return unpack_shard(blob, key=name, expect=expect, max_length=self.config.max_length)
        except (CorruptShardError, DecryptionError, FileNotFoundError) as err:
            return err  # every failed read is an erasure

    def _part_limit(self) -> int | None:
        """The longest stored part a share may take: the shard bound plus what wrappers add
        (encryption's header and a tag per chunk of at least 4 KiB, a seal)."""
        if self._max_object is None:
            return None
        return self._max_object + self._max_object // 256 + 4096

    # -- waiting ----------------------------------------------------------------------------
    def _poll(self, meter: _Meter, probe: Callable[[], object], missing: Callable[[], list[object]],
              progress: Callable[[], int] | None = None):
        """Call ``probe`` with exponential backoff until it returns non-None or the deadline.

        ``progress`` counts what the probes have seen so far (done markers, merged
        shards); when it grows, the next objects are likely close behind, so the backoff
        starts again from ``poll_min_s`` instead of sleeping up to ``poll_max_s`` past them.
        """
        deadline = time.monotonic() + self.config.deadline_s
        delay = self.config.poll_min_s
        seen = -1
        while True:
            result = probe()
            if result is not None:
                return result
            now = time.monotonic()
            if now >= deadline:
                raise RoundTimeoutError(missing())
            if progress is not None:
                count = progress()
                if count > seen:
                    seen, delay = count, self.config.poll_min_s
            with meter.timed("wait"):
                time.sleep(min(delay, deadline - now))
            delay = min(2 * delay, self.config.poll_max_s)

    def _done_probe(self, meter: _Meter, r: int) -> KeyProbe:
        """A probe of round ``r``'s ``done/{w}`` markers, in worker order (each a small GET
        that also reads the attempt the marker names)."""
        rp = self.round_prefix(r)
        return KeyProbe([(w, f"{rp}done/{w}") for w in range(self.code.n)],
                        lambda w, _key: self._read_done(meter, r, w))

    def _done_workers(self, meter: _Meter, r: int, done: KeyProbe | None = None) -> list[int]:
        """The workers with a readable done marker: looked up with ``done``, else listed
        (recovery). A marker that fails its checks is an erasure of that worker."""
        if done is not None:
            done.look()
            return sorted(w for w, a in done.found.items() if isinstance(a, str))  # type: ignore[misc]
        prefix = self.round_prefix(r) + "done/"
        listed = sorted(int(key[len(prefix):]) for key in meter.list(prefix)
                        if key[len(prefix):].isdigit() and int(key[len(prefix):]) < self.code.n)
        return [w for w in listed if isinstance(self._read_done(meter, r, w), str)]

    def _members(self, meter: _Meter, r: int, *, wait: bool = True,
                 on_seen: Callable[[list[int]], None] | None = None,
                 done: KeyProbe | None = None) -> tuple[int, ...] | None:
        """The agreed contributor set of round ``r`` (member modes), writing it if first.

        With ``quorum == n`` the set is every worker, known without a ``members`` object.

        ``on_seen`` is called with the done workers of every look (for prefetching).
        """
        key = self.round_prefix(r) + "members"
        quorum = int(self.config.quorum)  # type: ignore[arg-type]
        seen: list[int] = []
        # Waiting: look the done markers up one by one. A one-off look (a takeover) reads
        # the agreed set if there is one, else looks the markers up with the caller's
        # probe, or lists them once (recovery) when it has none.
        if wait and done is None:
            done = self._done_probe(meter, r)

        def probe() -> tuple[int, ...] | None:
            if not wait:
                try:
                    return unpack_shard(meter.get(key), key=key,
                                        expect=self._expect("members", r)).header.contributors
                except FileNotFoundError:
                    pass
            seen[:] = self._done_workers(meter, r, done)
            if on_seen is not None:
                on_seen(seen)
            if len(seen) < quorum:
                return None
            mine = tuple(seen[:quorum])
            if quorum == self.code.n:  # every worker is a member: nothing to agree on, or write
                return mine
            blob = pack_shard(self._header("members", r, contributors=mine))
            if meter.put(key, blob, if_absent=True):
                return mine
            return unpack_shard(meter.get(key), key=key, expect=self._expect("members", r)).header.contributors

        def missing() -> list[object]:
            return [f"done/{w}" for w in range(self.code.n) if w not in seen]

        if not wait:
            return probe()
        return self._poll(meter, probe, missing, lambda: len(seen))

    # -- reading shards ----------------------------------------------------------------------
    def _read_shard(self, meter: _Meter, key: str, expect: dict) -> Shard | Exception:
        try:
            return unpack_shard(meter.get_bounded(key, self._max_object), key=key, expect=expect,
                                max_length=self.config.max_length)
        except ObjectTooLargeError as err:  # refused before it was read: an erasure too
            return CorruptShardError(key, f"{err.size} bytes, more than the job allows ({err.limit})")
        except (CorruptShardError, DecryptionError, FileNotFoundError) as err:
            return err  # every failed read is an erasure

    def _read_contribs(self, meter: _Meter, r: int, j: int, workers: Sequence[int]) -> list[Shard | Exception]:
        """:meth:`_read_contrib` of each of ``workers``, in parallel."""
        with meter.timed("download"):
            return list(self._pool.map(lambda w: self._read_contrib(meter, r, j, w), workers))

    def _consistent(self, shards: list[Shard], keys: list[str]) -> None:
        """All contributions must agree on the update's length and layout."""
        ref = shards[0].header
        for shard, key in zip(shards[1:], keys[1:], strict=True):
            h = shard.header
            if (h.length, h.layout, h.shape) != (ref.length, ref.layout, ref.shape):
                raise CorruptShardError(key, f"length/layout differ from {keys[0]!r}")

    def _gather(self, meter: _Meter, r: int, j: int, members: Sequence[int],
                early: Mapping[int, cf.Future] | None = None) -> tuple[list[int], list[Shard]]:
        keys = [self._contrib_key(meter, r, j, w) for w in members]
        early = early or {}
        rest = [w for w in members if w not in early]
        fetched = dict(zip(rest, self._read_contribs(meter, r, j, rest), strict=True))
        with meter.timed("download"):
            got = [early[w].result() if w in early else fetched[w] for w in members]
        for item, key in zip(got, keys, strict=True):
            if isinstance(item, FileNotFoundError):
                raise CorruptShardError(key, "missing although its worker is done")
            if isinstance(item, Exception):
                raise item
        shards = [s for s in got if isinstance(s, Shard)]
        self._consistent(shards, keys)
        return list(members), shards

    def _gather_any(self, meter: _Meter, r: int, j: int, *, wait: bool, done: KeyProbe | None = None):
        """Gradient modes: the first ``n - s`` good contributions for aggregator ``j``."""
        need = self.code.contributions_needed
        good: dict[int, Shard] = {}
        bad: set[int] = set()
        seen: list[int] = []
        if done is None and wait:
            done = self._done_probe(meter, r)

        def probe():
            seen[:] = self._done_workers(meter, r, done)
            fresh = [w for w in seen if w not in good and w not in bad][: need - len(good)]
            if len(good) + len(fresh) < need:
                return None
            for w, item in zip(fresh, self._read_contribs(meter, r, j, fresh), strict=True):
                if isinstance(item, Shard):
                    good[w] = item
                else:
                    log.warning("round %d aggregator %d: dropping contribution of %d: %s", r, j, w, item)
                    bad.add(w)
            if len(good) < need:
                return None
            who = sorted(good)
            shards = [good[w] for w in who]
            self._consistent(shards, [self._contrib_key(meter, r, j, w) for w in who])
            return who, shards

        def missing() -> list[object]:
            return [f"contrib/{j}/{w}" for w in range(self.code.n) if w not in good]

        if not wait:
            return probe()
        return self._poll(meter, probe, missing, lambda: len(seen))
