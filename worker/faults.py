"""Fault injection for benchmarks and the fault suite: stragglers, crashes, kills, dead workers.

Every rule is a :class:`worker.straggle.Straggle` in the run's config (``--straggle``), and
every draw is seeded from ``(seed, worker, round, attempt)``, so a run's faults repeat
exactly. None of them changes an update: a faulty run must end with the fault-free model.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import numpy as np

from coding.errors import KofnError
from exchange.stores.base import Store, WrappedStore
from worker.config import RunConfig

__all__ = ["KillSwitch", "WorkerCrash", "crashes", "is_dead", "kills", "straggle_delay"]

log = logging.getLogger("worker.runner")


class WorkerCrash(KofnError):
    """An injected crash: the worker stops as if its machine died."""


def straggle_delay(cfg: RunConfig, worker: int, r: int, role: str = "trainer") -> float:
    """Seconds worker ``worker``'s ``role`` is held back in round ``r`` (fixed + shifted-exp)."""
    delay = 0.0
    for i, rule in enumerate(cfg.straggle):
        if not rule.applies_to(worker) or rule.role != role:
            continue
        if rule.kind == "fixed":
            delay += rule.delay
        elif rule.kind == "shiftexp":
            rng = np.random.default_rng([cfg.seed, 1, worker, r, i])
            delay += rule.shift + float(rng.exponential(1.0 / rule.rate))
    return delay


def _fires(cfg: RunConfig, kind: str, stream: int, worker: int, r: int, attempt: int) -> bool:
    """Whether a ``kind`` rule's probability fires, drawn from its own seeded ``stream``."""
    return any(rule.kind == kind and rule.applies_to(worker) and rule.prob > 0
               and np.random.default_rng([cfg.seed, stream, worker, r, attempt, i]).random() < rule.prob
               for i, rule in enumerate(cfg.straggle))


def crashes(cfg: RunConfig, worker: int, r: int, attempt: int) -> bool:
    """Whether the injected crash probability fires for this worker, round and attempt."""
    return _fires(cfg, "crash", 2, worker, r, attempt)


def kills(cfg: RunConfig, worker: int, r: int, attempt: int) -> bool:
    """Whether an injected ``kill`` fires mid-upload for this worker, round and attempt."""
    return _fires(cfg, "kill", 3, worker, r, attempt)


OWN_PROCESS = False
"""Set by ``python -m worker.runner``: an injected kill may SIGKILL this process."""


class KillSwitch(WrappedStore):
    """Passes every call through; once armed, the next contribution written is the process's last.

    The ``kill`` fault: after the PUT of the worker's shares returns, the process sends
    itself SIGKILL, so the round holds its shares and no done marker, as when a machine dies
    mid-upload. Only workers with a ``kill`` rule get this wrapper.
    """

    def __init__(self, inner: Store, worker: int):
        super().__init__(inner)
        self.worker, self.armed = worker, False

    def put(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> Any:
        out = self.inner.put(key, data, if_absent=if_absent)
        self._maybe_die(key)
        return out

    def put_parts(self, key: str, parts: Any, *, if_absent: bool = False) -> Any:
        out = self.inner.put_parts(key, parts, if_absent=if_absent)
        self._maybe_die(key)
        return out

    def get_part(self, key: str, name: str, offset: int, length: int) -> bytes:
        return self.inner.get_part(key, name, offset, length)

    def _maybe_die(self, key: str) -> None:
        if self.armed and "/contrib/" in key:
            self.armed = False
            if OWN_PROCESS:
                log.warning("killing this process (injected kill) after writing %s", key)
                for h in logging.getLogger().handlers:
                    h.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            raise WorkerCrash(f"worker {self.worker} killed (injected) after writing {key}")

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_bounded(self, key: str, max_bytes: int) -> bytes:
        return self.inner.get_bounded(key, max_bytes)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self.inner.get_range(key, start, length)



def is_dead(cfg: RunConfig, worker: int) -> bool:
    """Whether a ``dead`` rule silences this worker for the whole job."""
    return any(rule.kind == "dead" and rule.applies_to(worker) for rule in cfg.straggle)
