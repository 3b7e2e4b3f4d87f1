"""The default launcher: one ``python -m worker.runner`` subprocess per worker.

A worker that exits non-zero (an injected crash, a round timeout, a real error) is started
again, up to ``max_restarts`` times; it rejoins at the latest complete round. Workers get
one torch thread each and inherit the environment (so a key in ``KOFN_KEY`` reaches them
without appearing on any command line).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from coding.validate import check_int
from worker.config import RunConfig
from worker.launchers import Launcher, LaunchReport
from worker.runner import NO_RESTART_EXITS, NOT_OWNER_EXIT, WorkerSpec

__all__ = ["LocalLauncher"]

_REPO = Path(__file__).resolve().parents[2]


class LocalLauncher(Launcher):
    """Worker subprocesses on this machine.

    Parameters
    ----------
    max_restarts : int
        Restarts allowed per worker.
    log_dir : str or Path, optional
        Each worker's stderr goes to ``log_dir/worker-I.log``; without it, to this
        process's stderr.
    python : str, optional
        The interpreter (default: this one).
    """

    def __init__(self, *, max_restarts: int = 3, log_dir: str | Path | None = None,
                 python: str | None = None):
        self.max_restarts = check_int("max_restarts", max_restarts, low=0)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.python = python or sys.executable
        self._procs: dict[int, subprocess.Popen] = {}
        self._specs: dict[int, WorkerSpec] = {}
        self._report = LaunchReport()
        self._finished: set[int] = set()

    def _spawn(self, spec: WorkerSpec) -> subprocess.Popen:
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(spec.threads))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
        err = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            err = open(self.log_dir / f"worker-{spec.worker}.log", "ab")  # noqa: SIM115
        try:
            return subprocess.Popen([self.python, "-m", "worker.runner", *spec.to_args()],
                                    stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env)
        finally:
            if err is not None:
                err.close()

    def start(self, specs: Sequence[WorkerSpec]) -> None:
        """Start one subprocess per spec."""
        for spec in specs:
            if not isinstance(spec, WorkerSpec):
                raise TypeError(f"Argument 'specs' must hold WorkerSpec items, not {type(spec).__name__}.")
            self._specs[spec.worker] = spec
            self._report.exits.setdefault(spec.worker, [])
            self._procs[spec.worker] = self._spawn(spec)

    def poll(self) -> bool:
        """Reap exited workers, restart failed ones; True when all are finished."""
        for w, proc in list(self._procs.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del self._procs[w]
            self._report.exits[w].append(rc)
            if rc == 0 or rc == NOT_OWNER_EXIT:  # done, or another process runs index w
                self._finished.add(w)
            elif rc not in NO_RESTART_EXITS and len(self._report.exits[w]) <= self.max_restarts:
                self._report.restarts += 1
                spec = self._specs[w]
                if spec.attempt is not None:
                    spec = replace(spec, attempt=len(self._report.exits[w]))
                self._procs[w] = self._spawn(spec)
            else:
                self._finished.add(w)
                self._report.failed.append(w)
        return not self._procs

    @property
    def report(self) -> LaunchReport:
        """Exit statuses and restarts so far."""
        return self._report

    def stop(self) -> None:
        """Terminate the workers still running (each by its own process id)."""
        for proc in self._procs.values():
            proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._procs.clear()


def from_config(cfg: RunConfig, *, log_dir: str | Path | None = None,
                verbose: bool = False) -> LocalLauncher:
    """The ``local`` launcher of :data:`worker.plugins.LAUNCHERS`."""
    return LocalLauncher(max_restarts=cfg.max_restarts, log_dir=log_dir)
