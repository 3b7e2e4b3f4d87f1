"""Which process owns a worker index: the newest one to start it.

A job's worker index ``w`` can have two live processes: a launcher restarted a worker it
thought dead, or ``kofn train --resume`` started workers next to the orphans of a
SIGKILLed driver (whose ``launcher.stop()`` never ran). The round itself stays exact
either way (each publish writes under its own attempt and the done marker counts one,
see :mod:`exchange.round`), but two processes would do the same work twice. So each
worker session claims its index when it starts, writing ``{job}/owner/{w}`` with a fresh
token; the newest claim wins, because the newest process is the one its launcher means
to run. At every round boundary a worker reads the object back (one small GET) and, if
another process claimed the index since, stops with :class:`NotOwnerError`: exit status
:data:`NOT_OWNER_EXIT`, which no launcher restarts.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from coding.errors import KofnError
from exchange.errors import CorruptShardError, DecryptionError
from exchange.stores.base import Store

__all__ = ["NOT_OWNER_EXIT", "NotOwnerError", "Ownership", "owner_key"]

#: Exit status of a worker process that found another process owning its index.
NOT_OWNER_EXIT = 5


class NotOwnerError(KofnError):
    """Another process claimed this worker index after this one started."""


def owner_key(job: str, worker: int) -> str:
    """The object naming the process that owns worker index ``worker`` of ``job``."""
    return f"{job}/owner/{worker}"


@dataclass
class Ownership:
    """This process's claim on a worker index (see the module docstring).

    Use :meth:`claim` to make one and :meth:`check` at each round boundary.
    """

    store: Store
    job: str
    worker: int
    attempt: int
    token: str

    @classmethod
    def claim(cls, store: Store, job: str, worker: int, attempt: int) -> Ownership:
        """Claim ``worker`` of ``job`` for this process (overwriting any older claim)."""
        token = secrets.token_hex(8)
        body = {"token": token, "attempt": attempt, "claimed_at": time.time()}
        store.put(owner_key(job, worker), json.dumps(body).encode())
        return cls(store, job, worker, attempt, token)

    @staticmethod
    def last_attempt(store: Store, job: str, worker: int) -> int:
        """The attempt number of the newest claim on ``worker``, or -1 if none is readable."""
        try:
            body = json.loads(store.get(owner_key(job, worker)))
        except (FileNotFoundError, ValueError, DecryptionError, CorruptShardError):
            return -1
        attempt = body.get("attempt") if isinstance(body, dict) else None
        return attempt if type(attempt) is int and attempt >= 0 else -1

    def check(self, r: int) -> None:
        """Raise :class:`NotOwnerError` if a newer process claimed this index.

        A missing or unreadable claim (deleted, or a store hiccup the store's own retries
        did not ride out) is not proof of another owner: it is claimed again.
        """
        key = owner_key(self.job, self.worker)
        try:
            body = json.loads(self.store.get(key))
        except FileNotFoundError:
            body = None
        except (ValueError, DecryptionError, CorruptShardError):  # damaged: claim it again
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            fresh = Ownership.claim(self.store, self.job, self.worker, self.attempt)
            self.token = fresh.token
            return
        if body["token"] != self.token:
            raise NotOwnerError(
                f"worker {self.worker} (attempt {self.attempt}) stops before round {r}: another "
                f"process (attempt {body.get('attempt', '?')}) now runs this worker index")
