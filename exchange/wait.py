"""Waiting on exact keys: look only at the objects you expect, by GET or HEAD, never LIST.

A party of a round knows every key it waits for (``done/{w}`` of each worker,
``merged/{j}`` of each aggregator), so it never needs to LIST in steady state: on S3 a
LIST costs as much as a PUT and 12.5 times a GET. A :class:`KeyProbe` tries the missing
keys in turn: one request per look while nothing arrives, and on from a hit to the next
key until a miss or until it has what it wants (what arrives together is found
together). Trying a key is fetching it where the caller needs the object anyway (a merged
shard: the GET that finds it is the GET that reads it) and a HEAD where only its
existence matters (a done marker). The caller's backoff
(:meth:`exchange.round.Exchange._poll`) decides when to look again, from its shortest
delay whenever a look found something. LIST stays for recovery: a restarted worker
finding the latest complete round, a takeover, and the cleanup of old rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

__all__ = ["KeyProbe"]


class KeyProbe:
    """Which of a fixed set of expected keys exist, found with one request per quiet look.

    Parameters
    ----------
    keys : iterable of (name, key)
        What to look for: a name (a worker or aggregator index) and its object key, in
        the order to try them (low indices first: systematic shards decode cheapest).
    fetch : callable
        ``fetch(name, key)`` returns the object (or ``True``), or ``None`` while it is
        missing.

    Attributes
    ----------
    found : dict
        Name to what ``fetch`` returned, in the order found.
    """

    def __init__(self, keys: Iterable[tuple[Hashable, str]],
                 fetch: Callable[[Hashable, str], Any]):
        self._keys = list(keys)
        self._fetch = fetch
        self.found: dict[Hashable, Any] = {}
        self._cursor = 0

    @classmethod
    def heads(cls, keys: Iterable[tuple[Hashable, str]], exists: Callable[[str], bool]) -> KeyProbe:
        """A probe that only asks whether each key exists (``exists(key)``, a HEAD)."""
        return cls(keys, lambda _name, key: True if exists(key) else None)

    @property
    def missing(self) -> list[Hashable]:
        """The names not found yet, in the given order."""
        return [name for name, _ in self._keys if name not in self.found]

    def forget(self, name: Hashable) -> None:
        """Count ``name`` as missing again (its object turned out corrupt or vanished)."""
        self.found.pop(name, None)

    def look(self, *, want: int | None = None, skip: Sequence[Hashable] = ()) -> list[Hashable]:
        """Try missing keys (not in ``skip``) until a miss or ``want`` hits; return the hits.

        Looks go round-robin, so a key that never comes (a dead worker) costs one request
        per pass and holds up no other.
        """
        todo = [(name, key) for name, key in self._keys
                if name not in self.found and name not in set(skip)]
        if not todo or (want is not None and want <= 0):
            return []
        start = self._cursor % len(todo)
        new: list[Hashable] = []
        for step in range(len(todo)):
            name, key = todo[(start + step) % len(todo)]
            got = self._fetch(name, key)
            if got is None:
                self._cursor = start + step + 1 - len(new)
                break
            self.found[name] = got
            new.append(name)
            if want is not None and len(new) >= want:
                self._cursor = start + step + 1 - len(new)
                break
        return new
