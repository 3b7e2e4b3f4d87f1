"""The any-K-of-N coded scatter-reduce round over an object store.

Every worker of a job plays two parts in round ``r``: *contributor* (it publishes its
update) and *aggregator* ``j = worker`` (it combines one share of everybody's update).
Objects, under ``{prefix}/{job}/r{r:08d}/``::

    contrib/{j}/{w}.{a}  attempt a of worker w: its share for aggregator j  (shard, "contrib")
    done/{w}          worker w has written all its shares, naming attempt a (marker, if_absent)
    members           the agreed contributor set                (marker, if_absent)
    merged/{j}        aggregator j's combined shard             (shard, if_absent)

and ``{prefix}/{job}/complete/r{r:08d}`` once somebody decoded the round.

* :meth:`Exchange.publish` encodes the update into ``n`` shares (:mod:`exchange.reduce`),
  writes them in parallel under a fresh attempt token ``a``, then the ``done`` marker
  naming ``a`` with ``if_absent``. The marker is written once, so exactly one attempt of
  each worker counts: a restarted worker's second publish, a retry, or a duplicate process
  publishing the same index concurrently writes shares under its own token, loses the
  marker race, deletes its shares, and changes nothing (in ``secure`` mode its fresh masks
  never meet the first attempt's shares).
* :meth:`Exchange.aggregate` waits for a qualifying contributor set, combines the shares
  and writes ``merged/{j}`` with ``if_absent``: any worker may do a missing aggregator's
  job, and losing that race is success. With the default quorum (``n``) every done worker
  is a member, so it reads each share as soon as its done marker appears.
* :meth:`Exchange.collect` waits for enough merged shards *with the same contributor set*,
  decodes, and returns a :class:`RoundResult`. If merged shards are still missing after
  ``takeover_after_s``, it computes them itself.

Consensus on the contributor set: in ``plain``, ``backup``, ``mds`` and ``secure`` every
aggregator must sum the same workers, or the merged shards would not decode together. The
first aggregator that sees ``quorum`` done markers (``n``; ``n - s`` for ``backup``) writes
``members`` with ``if_absent`` and everybody uses the stored object. In the gradient modes
any ``n - s`` contributors give the exact total, so each aggregator uses the first
``n - s`` it sees and no consensus is needed.

Waiting is looking up the exact keys expected (:class:`exchange.wait.KeyProbe`: one
small GET per look, never a LIST in steady state) with exponential backoff (``poll_min_s``
doubling up to ``poll_max_s``, back to ``poll_min_s`` whenever a look finds something new)
under a per-phase deadline; a missed deadline raises
:class:`~exchange.errors.RoundTimeoutError` naming what was missing. A shard that fails its
checks (:class:`~exchange.errors.CorruptShardError`) is an erasure: a corrupt contribution
disqualifies the aggregators that need it, a corrupt merged shard is deleted and
recomputed or decoded around.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from coding.errors import NotEnoughShardsError
from coding.validate import check_int
from exchange.errors import (
    CorruptShardError,
    DecryptionError,
    NotKeyHolderError,
    RoundBehindError,
)
from exchange.layout import flatten
from exchange.reduce import coded_reduce, decode_aggregate, encode_update
from exchange.round_reads import RoundReader
from exchange.round_types import RoundConfig, RoundResult, RoundStats, _Meter
from exchange.shards import (
    MAX_SHARD_OVERHEAD,
    Shard,
    ShardHeader,
    ShardWriter,
    pack_shard,
)
from exchange.stores.base import Store
from exchange.wait import KeyProbe

__all__ = ["RoundConfig", "RoundStats", "RoundResult", "Exchange"]

log = logging.getLogger(__name__)

class Exchange(RoundReader):
    """One party's view of a job's coded rounds over a :class:`~exchange.stores.base.Store`.

    Parameters
    ----------
    store : Store
        Where the objects live (wrap it in ``EncryptedStore`` to authenticate them).
    config : RoundConfig
        The job's settings; every party must use the same ``code``.

    Notes
    -----
    Thread-safe: several threads may call methods on one instance. The typical worker
    loop is :meth:`run` (publish, aggregate its own shard, collect). Reading the round's
    done markers, members and shards, and waiting for them, is inherited from
    :class:`exchange.round_reads.RoundReader`.
    """

    def __init__(self, store: Store, config: RoundConfig):
        if not isinstance(store, Store):
            raise TypeError(f"Argument 'store' must be a Store, not {type(store).__name__}.")
        if not isinstance(config, RoundConfig):
            raise TypeError(f"Argument 'config' must be a RoundConfig, not {type(config).__name__}.")
        self.store = store
        self.config = config
        self.code = config.code
        self._code_json = config.code.to_json()
        # the largest shard object the job's limit allows: prefix, the header cap, padding
        # and a payload of the longest share in 8-byte elements
        self._max_object = (None if config.max_length is None else
                            MAX_SHARD_OVERHEAD + 8 * max(config.max_length,
                                                         config.code.share_length(config.max_length)))
        self._pool = cf.ThreadPoolExecutor(config.threads, thread_name_prefix="kofn-exchange")
        # (round, worker) -> the attempt its done marker names; markers are written once
        self._attempts: dict[tuple[int, int], str] = {}
        self._parts: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {}

    def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys -------------------------------------------------------------------------------
    @property
    def _base(self) -> str:
        return f"{self.config.prefix}/{self.config.job}/"

    def round_prefix(self, r: int) -> str:
        """The key prefix of round ``r``'s objects."""
        return f"{self._base}r{r:08d}/"

    def _complete_key(self, r: int) -> str:
        return f"{self._base}complete/r{r:08d}"

    def _check_round(self, r: object) -> int:
        return check_int("r", r, low=0)

    def _check_member(self, name: str, value: object) -> int:
        return check_int(name, value, low=0, high=self.code.n - 1, high_name="n-1")

    def _header(self, kind: str, r: int, **fields: object) -> ShardHeader:
        return ShardHeader(kind=kind, job=self.config.job, round=r, code=self._code_json, **fields)

    def _expect(self, kind: str, r: int, **fields: object) -> dict[str, object]:
        return {"kind": kind, "job": self.config.job, "round": r, "code": self._code_json, **fields}

    # -- publish ----------------------------------------------------------------------------
    def publish(
        self,
        r: int,
        worker: int,
        update: np.ndarray | Mapping[str, np.ndarray],
        *,
        rng: np.random.Generator | None = None,
    ) -> RoundStats:
        """Encode ``worker``'s update into ``n`` shares and write them, then its done marker.

        Parameters
        ----------
        r : int
            Round number.
        worker : int
            The contributing worker, ``0 <= worker < n``.
        update : numpy.ndarray or mapping of str to numpy.ndarray
            The flat update (in gradient modes: the coded combination ``f_i``), or named
            tensors, flattened with :func:`exchange.layout.flatten`.
        rng : numpy.random.Generator, optional
            ``secure`` only, for reproducible tests; real masks come from the OS CSPRNG.

        Returns
        -------
        RoundStats

        Notes
        -----
        Idempotent: the shares go under a fresh attempt token and the done marker naming
        it is written with ``if_absent``, so only the first finished publish of a worker
        in a round counts. Publishing again (after a restart, or from a duplicate process)
        leaves the round's result unchanged: if the marker already exists nothing is
        written (``stats.duplicates == 1``); if another attempt wins the race, this one's
        shares are deleted.
        """
        r = self._check_round(r)
        worker = self._check_member("worker", worker)
        meter = _Meter(self.store)
        rp = self.round_prefix(r)
        done_key = f"{rp}done/{worker}"
        if meter.exists(done_key):
            log.info("round %d worker %d: already published; this publish changes nothing", r, worker)
            meter.stats.duplicates += 1
            return meter.stats
        attempt = secrets.token_hex(8)
        with meter.timed("encode"):
            if isinstance(update, Mapping):
                flat, layout = flatten(update)
            else:
                flat, layout = np.asarray(update), None
            headers = [self._header("contrib", r, index=j, worker=worker, contributors=(worker,),
                                    length=int(flat.size), layout=layout, attempt=attempt)
                       for j in range(self.code.n)]
            if self.code.encodes_in_place:  # shares are encoded straight into the objects
                m = self.code.share_length(int(flat.size))
                writers = [ShardWriter(h, self.code.share_dtype_for(flat.dtype), (m,)) for h in headers]
                encode_update(flat, self.code, rng=rng, out=[w.payload for w in writers])
                shares = None
            else:
                shares = encode_update(flat, self.code, rng=rng)
        names = [self._share_key(r, j, worker, attempt) for j in range(self.code.n)]
        with meter.timed("encode"):
            blobs = [writers[j].finish() if shares is None else pack_shard(headers[j], shares[j])
                     for j in range(self.code.n)]
        group = self._group_key(r, worker, attempt)
        with meter.timed("upload"):
            # all n shares in one object (one PUT); the done marker holds where each lies
            index = tuple(meter.put_parts(group, list(zip(names, blobs, strict=True))))
            done = pack_shard(self._header("done", r, worker=worker, contributors=(worker,),
                                           length=int(flat.size), layout=layout, attempt=attempt),
                              np.asarray(index, dtype="<i8").reshape(-1))
            won = meter.put(done_key, done, if_absent=True)
        if won:
            self._attempts[(r, worker)] = attempt
            self._parts[(r, worker)] = index
        else:
            log.warning("round %d worker %d: another publish of this worker finished first "
                        "(a restart or a duplicate process); this one is dropped", r, worker)
            meter.stats.duplicates += 1
            self.store.delete([group])
        return meter.stats

    def share_location(self, r: int, j: int, w: int) -> tuple[str, str, int, int]:
        """Where worker ``w``'s counted share for aggregator ``j`` lies in round ``r``.

        Returns ``(key, name, offset, length)``: the object holding all of ``w``'s shares,
        the share's own name (what encryption and sealing bind it to; read it with
        ``store.get_part(key, name, offset, length)``), and its part of the object, as
        ``w``'s done marker records (for tools and fault tests).

        Raises
        ------
        FileNotFoundError
            ``w`` has not published round ``r``.
        CorruptShardError
            Its done marker is unreadable.
        """
        r, j, w = self._check_round(r), self._check_member("j", j), self._check_member("worker", w)
        attempt = self._read_done(_Meter(self.store), r, w)
        if attempt is None:
            raise FileNotFoundError(f"{self.round_prefix(r)}done/{w}")
        if isinstance(attempt, Exception):
            raise attempt
        offset, length = self._parts[(r, w)][j]
        return self._group_key(r, w, attempt), self._share_key(r, j, w, attempt), offset, length

    # -- aggregate --------------------------------------------------------------------------
    def aggregate(self, r: int, j: int) -> RoundStats:
        """Do aggregator ``j``'s job for round ``r``: combine its shares into ``merged/{j}``.

        Parameters
        ----------
        r : int
            Round number.
        j : int
            Aggregator index, ``0 <= j < n``; any worker may act for any ``j``.

        Returns
        -------
        RoundStats

        Raises
        ------
        CorruptShardError
            A contribution it must use is corrupt (member modes), so shard ``j`` cannot be
            made this round; the round decodes around it where the code has slack.
        RoundTimeoutError
            Not enough contributors before the deadline.
        """
        r = self._check_round(r)
        j = self._check_member("j", j)
        meter = _Meter(self.store)
        self._aggregate(meter, r, j, wait=True)
        return meter.stats

    def _aggregate(self, meter: _Meter, r: int, j: int, *, wait: bool, done: KeyProbe | None = None) -> bool:
        """Make and write ``merged/{j}``; return False if ``wait`` is off and inputs aren't ready.

        ``done`` is a takeover's probe of the done markers, kept across its looks so that
        it finds them by GET instead of listing them on every look.
        """
        if not self.code.needs_consensus:
            got = self._gather_any(meter, r, j, wait=wait, done=done)
        else:
            early: dict[int, cf.Future] = {}
            on_seen = None
            if wait and self.config.quorum == self.code.n:
                # every done worker will be a member: read its share while the others are
                # still publishing, instead of after the member set is agreed
                def on_seen(done: list[int]) -> None:
                    for w in done:
                        if w not in early:
                            early[w] = self._pool.submit(self._read_contrib, meter, r, j, w)
            members = self._members(meter, r, wait=wait, on_seen=on_seen, done=done)
            if members is None:
                return False
            got = self._gather(meter, r, j, members, early)
        if got is None:
            return False
        who, shards = got
        first = shards[0].header
        with meter.timed("reduce"):
            merged = coded_reduce([s.payload for s in shards], self.code, who)
            blob = pack_shard(self._header("merged", r, index=j, contributors=tuple(who),
                                           length=first.length, layout=first.layout), merged)
        with meter.timed("upload"):
            meter.put(self.round_prefix(r) + f"merged/{j}", blob, if_absent=True)
        return True

    # -- collect ----------------------------------------------------------------------------
    def collect(self, r: int) -> RoundResult:
        """Wait for enough consistent merged shards, decode, and return the round's sum.

        Merged shards missing after ``takeover_after_s`` are computed here (idempotent,
        ``if_absent``); corrupt ones are deleted and recomputed, or decoded around.

        Parameters
        ----------
        r : int
            Round number.

        Returns
        -------
        RoundResult

        Raises
        ------
        RoundTimeoutError
            Too few merged shards before the deadline (names the missing aggregators).
        RoundBehindError
            The others completed the round and its objects were already cleaned up.
        NotEnoughShardsError
            Too many aggregators failed for good (corrupt inputs) to decode.
        """
        r = self._check_round(r)
        meter = _Meter(self.store)
        state = _CollectState(time.monotonic())
        group = self._poll(meter, lambda: self._collect_probe(meter, r, state),
                           lambda: [f"merged/{j}" for j in range(self.code.n) if j not in state.have],
                           lambda: len(state.have))
        with meter.timed("decode"):
            indices = self.code.decode_indices(sorted(group))
            first = group[indices[0]].header
            rows = [group[j].payload for j in indices]
            n_terms = self.code.n_terms(first.contributors)
            total = decode_aggregate(rows, indices, self.code, length=first.length, n_terms=n_terms)
        contributors = sorted({w for j in indices for w in group[j].header.contributors})
        meter.stats.takeovers += state.takeovers
        # a HEAD first: a late collector finds the marker (a GET's price) instead of losing
        # the conditional PUT (a PUT's)
        completed = (not meter.exists(self._complete_key(r))
                     and meter.put(self._complete_key(r), pack_shard(self._header("complete", r)), if_absent=True))
        if completed:
            self._cleanup(meter, r)
        return RoundResult(r, total, n_terms, tuple(contributors), tuple(indices), first.layout, meter.stats,
                           completed)

    def _collect_probe(self, meter: _Meter, r: int, state: _CollectState):
        rp = self.round_prefix(r)
        prefix = rp + "merged/"
        if state.merged is None:  # the GET that finds a merged shard is the one that reads it
            def fetch(j: int, key: str) -> Shard | Exception | None:
                with meter.timed("download"):
                    item = self._read_shard(meter, key, self._expect("merged", r, index=j))
                return None if isinstance(item, FileNotFoundError) else item
            state.merged = KeyProbe([(j, f"{prefix}{j}") for j in range(self.code.n)], fetch)
        # read no more than needed; low (systematic) indices decode cheapest
        short = self._merged_needed - len(state.have)
        fresh = state.merged.look(want=short if short > 0 else None, skip=sorted(state.have))
        for j in fresh:
            item = state.merged.found[j]
            if isinstance(item, Shard):
                state.have[j] = item
                continue
            state.merged.forget(j)  # look for it again (rewritten, or recomputed here)
            if isinstance(item, (CorruptShardError, DecryptionError)):
                log.warning("round %d: %s; deleting it for recomputation", r, item)
                self.store.delete([f"{prefix}{j}"])
                state.repair.add(j)
        group = self._best_group(state.have)
        if group is not None:
            return group
        self._maybe_take_over(meter, r, state)
        return None

    @property
    def _merged_needed(self) -> int:
        return self.code.merged_needed

    def _best_group(self, have: dict[int, Shard]) -> dict[int, Shard] | None:
        """The largest set of merged shards that decode together, if it is big enough."""
        need = self._merged_needed
        if not self.code.needs_consensus:
            groups = {(): dict(have)}
        else:
            groups: dict[tuple, dict[int, Shard]] = {}
            for j, shard in have.items():
                groups.setdefault(shard.header.contributors, {})[j] = shard
        for members in groups.values():
            ref = next(iter(members.values())).header if members else None
            if ref is None:
                continue
            agreeing = {j: s for j, s in members.items()
                        if (s.header.length, s.header.layout, s.header.shape)
                        == (ref.length, ref.layout, ref.shape)}
            if len(agreeing) >= need:
                return agreeing
        return None

    def _check_not_behind(self, r: int, state: _CollectState) -> None:
        """Raise RoundBehindError if round ``r`` is complete and already cleaned up (looked
        up at most once a second, and only while overdue)."""
        keep = self.config.keep_rounds
        now = time.monotonic()
        if keep <= 0 or state.have or now - state.behind_checked < 1.0:
            return
        state.behind_checked = now
        seen = [w for w, a in state.done.found.items() if isinstance(a, str)] if state.done else []
        self._raise_if_cleaned(r, probe=f"{self.round_prefix(r)}done/{seen[0]}" if seen else None)

    def _raise_if_cleaned(self, r: int, *, probe: str | None = None, listing: bool = False) -> None:
        """Raise RoundBehindError if round ``r``'s objects have been cleaned up.

        The completer of round ``r + keep_rounds`` deletes round ``r``: one HEAD of that
        round's complete marker finds it, while the others are at most ``keep_rounds``
        further (older complete markers go too). Past that, a done marker of round ``r``
        this party saw (``probe``) is gone, or, on a failure path only, the listing of the
        complete markers (``listing``) shows a round ``>= r + keep_rounds``.
        """
        keep = self.config.keep_rounds
        if keep <= 0:
            return
        gone = self.is_complete(r + keep) or (probe is not None and not self.store.exists(probe))
        if not gone and listing:
            latest = self.latest_complete_round()
            gone = latest is not None and latest >= r + keep
        if gone:
            raise RoundBehindError(r, self.latest_complete_round() or r + keep)

    def _maybe_take_over(self, meter: _Meter, r: int, state: _CollectState) -> None:
        overdue = time.monotonic() - state.start >= self.config.takeover_after_s
        if overdue:
            self._check_not_behind(r, state)
        todo = [j for j in range(self.code.n)
                if j not in state.have and j not in state.failed and j not in state.foreign
                and (overdue or j in state.repair)]
        for j in todo:
            try:
                if state.done is None:  # one probe for every look of this collect
                    state.done = self._done_probe(meter, r)
                made = self._aggregate(meter, r, j, wait=False, done=state.done)
            except NotKeyHolderError:  # sealed to aggregator j alone: wait for its shard
                state.foreign.add(j)
                made = False
            except (CorruptShardError, DecryptionError) as err:
                # an input that vanished may have gone with a later round's cleanup while
                # this collect was taking over: that is being behind, not a damaged round
                self._raise_if_cleaned(r, listing=True)
                log.warning("round %d: cannot make merged shard %d: %s", r, j, err)
                state.failed.add(j)
                made = False
            state.repair.discard(j)
            if made:
                state.takeovers += 1
                return  # re-list: the shard just written may be enough
        alive = self.code.n - len(state.failed)
        need = self._merged_needed
        if alive < need:
            raise NotEnoughShardsError(need, alive, "aggregators with intact inputs")

    # -- housekeeping ------------------------------------------------------------------------
    def completed_rounds(self) -> list[int]:
        """Rounds some party has decoded, ascending (from the ``complete/`` markers)."""
        prefix = self._base + "complete/r"
        return sorted(int(k[len(prefix):]) for k in self.store.list(prefix) if k[len(prefix):].isdigit())

    def is_complete(self, r: int) -> bool:
        """Whether some party decoded round ``r`` (one HEAD of its ``complete`` marker)."""
        return self.store.exists(self._complete_key(self._check_round(r)))

    def latest_complete_round(self) -> int | None:
        """The newest decoded round, where a restarted worker resumes; ``None`` if none."""
        done = self.completed_rounds()
        return done[-1] if done else None

    def _cleanup(self, meter: _Meter, r: int) -> None:
        keep = self.config.keep_rounds
        if keep <= 0 or r - keep < 0:
            return
        base = self._base
        old = []
        for key in meter.list(base):
            rest = key[len(base):]
            part = rest.split("/", 1)[0]
            if part.startswith("r") and part[1:].isdigit() and int(part[1:]) <= r - keep:
                old.append(key)
            elif rest.startswith("complete/r") and rest[10:].isdigit() and int(rest[10:]) <= r - keep:
                old.append(key)
        if old:
            self.store.delete(old)
        for done in [rw for rw in self._attempts if rw[0] <= r - keep]:
            self._attempts.pop(done, None)
            self._parts.pop(done, None)

    # -- the whole round ---------------------------------------------------------------------
    def run(
        self,
        r: int,
        worker: int,
        update: np.ndarray | Mapping[str, np.ndarray],
        *,
        rng: np.random.Generator | None = None,
    ) -> RoundResult:
        """One worker's round: :meth:`publish`, :meth:`aggregate` its own shard, :meth:`collect`.

        A failure of its own aggregation (corrupt input) is logged and dropped; the round
        decodes around it where the code allows. The result's ``stats`` cover all three.
        """
        stats = self.publish(r, worker, update, rng=rng)
        try:
            stats = stats + self.aggregate(r, worker)
        except (CorruptShardError, DecryptionError) as err:
            log.warning("round %d worker %d: own aggregation failed: %s", r, worker, err)
        result = self.collect(r)
        return dataclasses.replace(result, stats=stats + result.stats)


@dataclass
class _CollectState:
    start: float
    have: dict[int, Shard] = dataclasses.field(default_factory=dict)
    failed: set[int] = dataclasses.field(default_factory=set)
    repair: set[int] = dataclasses.field(default_factory=set)
    foreign: set[int] = dataclasses.field(default_factory=set)  # aggregators only their key holder can make
    takeovers: int = 0
    behind_checked: float = 0.0
    merged: KeyProbe | None = None
    done: KeyProbe | None = None  # the done markers, as takeovers look them up
