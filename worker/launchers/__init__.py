"""Where workers run: local subprocesses, Ray tasks, or AWS Lambda invocations.

Every launcher takes the same :class:`~worker.runner.WorkerSpec` list and exposes
``start``, ``poll`` (all workers finished?), ``wait`` and ``stop``. Workers never talk to
the launcher: they coordinate through the store alone, so a launcher only starts them and,
where it can see them exit, restarts crashed ones (the restarted worker rejoins at the
latest complete round).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from worker.config import RunConfig
from worker.runner import WorkerSpec

__all__ = ["LaunchReport", "Launcher", "make_launcher"]


@dataclass
class LaunchReport:
    """What a launcher saw.

    Attributes
    ----------
    exits : dict of int to list of int
        Exit status of each attempt of each worker (empty where it cannot see them).
    restarts : int
        Restarts after a crash, a timeout or a store outage (never after a permanent
        failure, exit 2, or when another process owns the index, exit 5; see
        :func:`worker.runner.exit_status`).
    failed : list of int
        Workers that failed permanently, or still failed after ``max_restarts`` restarts.
    """

    exits: dict[int, list[int]] = field(default_factory=dict)
    restarts: int = 0
    failed: list[int] = field(default_factory=list)


class Launcher(abc.ABC):
    """Starts the workers of one job."""

    @abc.abstractmethod
    def start(self, specs: Sequence[WorkerSpec]) -> None:
        """Start one worker per spec."""

    @abc.abstractmethod
    def poll(self) -> bool:
        """Restart crashed workers if allowed; return True once every worker has finished."""

    def wait(self, timeout: float | None = None) -> LaunchReport:
        """Poll until every worker finished or ``timeout`` seconds passed; return the report."""
        import time

        end = None if timeout is None else time.monotonic() + timeout
        while not self.poll():
            if end is not None and time.monotonic() >= end:
                break
            time.sleep(0.1)
        return self.report

    @property
    @abc.abstractmethod
    def report(self) -> LaunchReport:
        """What happened so far."""

    def stop(self) -> None:  # noqa: B027 - optional: launchers without handles do nothing
        """Stop every worker still running."""


def make_launcher(cfg: RunConfig, *, log_dir: str | Path | None = None,
                  verbose: bool = False) -> Launcher:
    """The launcher ``cfg.launcher`` names (:data:`worker.plugins.LAUNCHERS`), configured
    from ``cfg``.

    ``verbose`` lets Ray's own INFO/WARNING lines through (the Ray launcher only).
    """
    from worker.plugins import LAUNCHERS

    return LAUNCHERS.load(cfg.launcher)(cfg, log_dir=log_dir, verbose=verbose)
