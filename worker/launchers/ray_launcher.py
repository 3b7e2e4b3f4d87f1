"""Workers as Ray tasks, on an existing cluster (``--ray-address``) or a local one.

Each worker is one task running :func:`worker.runner.run_worker` in the task's process and
returning its exit status (0 done, 3 injected crash, 4 round timeout, 2 other error); a
failed task is submitted again, up to ``max_restarts`` times. All ``n`` workers of a round
must run at once, so on a small machine give each task a fraction of a CPU
(``ray_cpus = 0.25``): :meth:`RayLauncher.start` refuses a local cluster too small for all
``n`` tasks, and warns on an existing cluster that has too few CPUs now (it may grow).
A local cluster listens on 127.0.0.1 only and has no dashboard. Ray's own INFO and WARNING
lines and the tasks' output stay off the console unless ``verbose``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from coding._validate import check_int, check_real
from coding.errors import KofnError
from worker.launchers import Launcher, LaunchReport
from worker.runner import WorkerSpec

__all__ = ["RayLauncher", "run_task"]

_REPO = str(Path(__file__).resolve().parents[2])


def run_task(event: dict[str, Any]) -> int:
    """Run one worker from its :meth:`WorkerSpec.to_event` dict; return its exit status."""
    import sys

    from coding.errors import KofnError
    from exchange.errors import RoundTimeoutError
    from worker.runner import CRASH_EXIT, TIMEOUT_EXIT, WorkerCrash, run_worker

    try:
        run_worker(WorkerSpec.from_event(event))
    except WorkerCrash:
        return CRASH_EXIT
    except RoundTimeoutError:
        return TIMEOUT_EXIT
    except (KofnError, ValueError, OSError) as err:
        print(f"kofn ray worker {event.get('worker')}: error: {err}", file=sys.stderr)
        return 2
    return 0


class RayLauncher(Launcher):
    """Ray tasks, one per worker.

    Parameters
    ----------
    address : str or None
        An existing cluster's address; ``None`` starts a local cluster on 127.0.0.1 with
        ``local_cpus`` CPUs (and shuts it down in :meth:`stop`).
    num_cpus : float
        CPUs each task reserves.
    max_restarts : int
        Resubmissions allowed per worker.
    local_cpus : int, optional
        CPUs of a local cluster (default: this machine's count).
    verbose : bool
        Let Ray's INFO/WARNING lines and the tasks' output through to the console.
    warn : callable, optional
        Receives the warning when an existing cluster cannot run every task at once
        (default: print to stderr).
    """

    def __init__(self, *, address: str | None = None, num_cpus: float = 1.0, max_restarts: int = 3,
                 local_cpus: int | None = None, verbose: bool = False,
                 warn: Callable[[str], None] | None = None):
        self.address = address
        self.verbose = bool(verbose)
        self._warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.num_cpus = check_real("num_cpus", num_cpus, low=0.0)
        self.max_restarts = check_int("max_restarts", max_restarts, low=0)
        self.local_cpus = local_cpus
        self._refs: dict[Any, WorkerSpec] = {}
        self._report = LaunchReport()
        self._owns_cluster = False
        self._remote = None

    def _connect(self) -> None:
        import ray

        if not ray.is_initialized():
            env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
                filter(None, [_REPO, os.environ.get("PYTHONPATH")])), "OMP_NUM_THREADS": "1"}}
            quiet = {"log_to_driver": self.verbose,
                     "logging_level": logging.INFO if self.verbose else logging.ERROR}
            if not self.verbose:
                logging.getLogger("ray").setLevel(logging.ERROR)
            if self.address is None:
                ray.init(address="local", num_cpus=self.local_cpus or os.cpu_count() or 1,
                         include_dashboard=False, _node_ip_address="127.0.0.1",
                         runtime_env=env, **quiet)
                self._owns_cluster = True
            else:
                ray.init(address=self.address, runtime_env=env, **quiet)
        self._remote = ray.remote(num_cpus=self.num_cpus, max_retries=0)(run_task)

    def _submit(self, spec: WorkerSpec) -> None:
        self._refs[self._remote.remote(spec.to_event())] = spec  # type: ignore[union-attr]

    def check_capacity(self, tasks: int, cpus: float, *, local: bool) -> None:
        """Refuse (local cluster) or warn (existing one) when ``tasks`` cannot all run at once.

        A round needs every worker at once: a task Ray cannot schedule yet leaves the others
        waiting until they time out and restart, silently.

        Raises
        ------
        KofnError
            On a local cluster with fewer than ``tasks * num_cpus`` CPUs.
        """
        need = tasks * self.num_cpus
        if need <= cpus + 1e-9:
            return
        fit = cpus / tasks
        msg = (f"Ray cluster has {cpus:g} CPUs, but {tasks} worker tasks x {self.num_cpus:g} "
               f"CPUs = {need:g} cannot all run at once; pass --ray-cpus {fit:.3g} or fewer.")
        if local:
            raise KofnError(msg)
        self._warn(f"kofn: warning: {msg} Rounds will wait for the late tasks.")

    def start(self, specs: Sequence[WorkerSpec]) -> None:
        """Connect (or start a local cluster), check its CPUs, and submit one task per spec."""
        import ray

        self._connect()
        try:
            self.check_capacity(len(specs), float(ray.cluster_resources().get("CPU", 0.0)),
                                local=self._owns_cluster)
        except KofnError:
            self.stop()
            raise
        for spec in specs:
            if not isinstance(spec, WorkerSpec):
                raise TypeError(f"Argument 'specs' must hold WorkerSpec items, not {type(spec).__name__}.")
            self._report.exits.setdefault(spec.worker, [])
            self._submit(spec)

    def poll(self) -> bool:
        """Collect finished tasks and resubmit failed ones; True when all are finished."""
        import ray

        if not self._refs:
            return True
        ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        for ref in ready:
            spec = self._refs.pop(ref)
            try:
                rc = int(ray.get(ref))
            except ray.exceptions.RayError:
                rc = 1
            self._report.exits[spec.worker].append(rc)
            if rc == 0:
                continue
            if len(self._report.exits[spec.worker]) <= self.max_restarts:
                self._report.restarts += 1
                self._submit(spec)
            else:
                self._report.failed.append(spec.worker)
        return not self._refs

    @property
    def report(self) -> LaunchReport:
        """Exit statuses and resubmissions so far."""
        return self._report

    def stop(self) -> None:
        """Cancel running tasks; shut a local cluster down."""
        import ray

        if not ray.is_initialized():
            return
        for ref in list(self._refs):
            ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owns_cluster:
            ray.shutdown()
            self._owns_cluster = False
