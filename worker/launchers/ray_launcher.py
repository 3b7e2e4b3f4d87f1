"""Workers as Ray tasks, on an existing cluster (``--ray-address``) or a local one.

Each worker is one task running :func:`worker.runner.run_worker` in the task's process and
returning its exit status (0 done, 3 injected crash, 4 round timeout, 2 other error); a
failed task is submitted again, up to ``max_restarts`` times. All ``n`` workers of a round
must run at once, so on a small machine give each task a fraction of a CPU
(``ray_cpus = 0.25``): :meth:`RayLauncher.start` refuses a local cluster too small for all
``n`` tasks, and warns on an existing cluster that has too few CPUs now (it may grow).
A local cluster listens on 127.0.0.1 only and has no dashboard. Ray's own INFO and WARNING
lines and the tasks' output stay off the console unless ``verbose``.

kofn's code travels with the job: :func:`runtime_env` ships ``coding/``, ``exchange/``,
``offload/`` and ``worker/`` as Ray ``py_modules``, so the nodes of a remote cluster need
no checkout. Its third-party dependencies (torch, numpy, galois, ...) must be installed
on every node in the locked versions; :func:`check_nodes` runs one probe task per node
before any worker starts and names, in one line, the first node that lacks one or has
another version. Tasks are spread over the nodes (``SPREAD``).
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from coding.errors import KofnError
from coding.validate import check_int, check_real
from worker.config import RunConfig
from worker.launchers import Launcher, LaunchReport
from worker.runner import NO_RESTART_EXITS, NOT_OWNER_EXIT, WorkerSpec

__all__ = ["RayLauncher", "cancel_running", "check_nodes", "run_task", "runtime_env"]

_REPO = Path(__file__).resolve().parents[2]
#: The packages kofn ships to every node.
PACKAGES = ("coding", "exchange", "offload", "worker")
#: Third-party distributions a worker imports, checked on every node.
DEPENDENCIES = ("numpy", "galois", "torch", "torchvision", "boto3", "cryptography", "scipy",
                "safetensors", "threadpoolctl", "pillow", "pycocotools")


def runtime_env() -> dict[str, Any]:
    """The Ray runtime environment of kofn's jobs: its code as ``py_modules``.

    Ray uploads local folders only for a job's environment, so pass it to ``ray.init``;
    a driver that connected without it ships nothing, and its nodes need kofn installed.
    """
    return {"py_modules": [str(_REPO / name) for name in PACKAGES],
            "env_vars": {"OMP_NUM_THREADS": "1"}}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in DEPENDENCIES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def _probe() -> dict[str, Any]:
    """What one node has: its id and address, where kofn's code came from, the versions."""
    import ray

    import worker

    ctx = ray.get_runtime_context()
    shipped = {name: str(Path(entry).resolve()) for entry in sys.path for name in PACKAGES
               if entry and (Path(entry) / name / "__init__.py").is_file()
               and "runtime_resources" in entry}
    return {"node": ctx.get_node_id(), "ip": ray.util.get_node_ip_address(),
            "code": str(Path(worker.__file__).resolve().parent), "shipped": shipped,
            "versions": _versions()}


def check_nodes(timeout: float = 300.0) -> list[dict[str, Any]]:
    """Probe every alive node of the connected cluster; raise if one cannot run workers.

    Returns
    -------
    list of dict
        One probe per node: ``node``, ``ip``, ``code`` (the folder ``worker`` was
        imported from), ``shipped`` (package name to the shipped copy's folder on the
        node) and ``versions``.

    Raises
    ------
    KofnError
        A node lacks a dependency or has another version than this machine.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    want = _versions()
    probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote() for n in nodes]
    found = ray.get(refs, timeout=timeout)
    for got in found:
        for name, version in want.items():
            there = got["versions"].get(name)
            if there != version:
                have = "lacks it" if there is None else f"has {there}"
                raise KofnError(f"Ray node {got['ip']} ({got['node'][:8]}) cannot run kofn "
                                f"workers: they need {name} {version} and the node {have}; "
                                f"install the locked environment there (uv sync --locked).")
    return found


def run_task(event: dict[str, Any]) -> int:
    """Run one worker from its :meth:`WorkerSpec.to_event` dict; return its exit status."""
    import sys

    from coding.errors import KofnError
    from worker.runner import exit_status, one_line, run_worker

    try:
        run_worker(WorkerSpec.from_event(event))
    except (KofnError, ValueError, OSError) as err:
        print(f"kofn ray worker {event.get('worker')}: error: {one_line(err)}", file=sys.stderr)
        return exit_status(err)
    return 0


def _run_on_node(event: dict[str, Any]) -> tuple[int, str]:
    """:func:`run_task`, and the id of the node it ran on."""
    import ray

    return run_task(event), ray.get_runtime_context().get_node_id()


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
        #: Node id of every task of each worker (where it ran).
        self.nodes: dict[int, list[str]] = {}
        #: The probes of :func:`check_nodes` (remote clusters only).
        self.probes: list[dict[str, Any]] = []

    def _connect(self) -> None:
        import ray

        if not ray.is_initialized():
            env = runtime_env()
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
        if self.address is not None:
            self.probes = check_nodes()
        self._remote = ray.remote(num_cpus=self.num_cpus, max_retries=0,
                                  scheduling_strategy="SPREAD")(_run_on_node)

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
                rc, node = ray.get(ref)
                self.nodes.setdefault(spec.worker, []).append(node)
            except ray.exceptions.RayError:
                rc = 1
            self._report.exits[spec.worker].append(rc)
            if rc == 0 or rc == NOT_OWNER_EXIT:
                continue
            if rc not in NO_RESTART_EXITS and len(self._report.exits[spec.worker]) <= self.max_restarts:
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
        cancel_running(list(self._refs))
        self._refs.clear()
        if self._owns_cluster:
            ray.shutdown()
            self._owns_cluster = False


def cancel_running(refs: Sequence[Any]) -> None:
    """Force-cancel the tasks of ``refs`` that have not finished yet.

    A task that has finished is left alone: a forced cancel racing with the processing of
    its reply can trip a fatal check in Ray's core worker (``Tried to fail task that was
    not pending``, ray-project/ray#54846) and end the driver with a C++ backtrace.
    """
    import ray

    if not refs:
        return
    _, running = ray.wait(list(refs), num_returns=len(refs), timeout=0)
    for ref in running:
        ray.cancel(ref, force=True)
    if running:  # let the cancels settle before the caller tears anything down
        ray.wait(running, num_returns=len(running), timeout=10)


def from_config(cfg: RunConfig, *, log_dir: str | Path | None = None,
                verbose: bool = False) -> RayLauncher:
    """The ``ray`` launcher of :data:`worker.plugins.LAUNCHERS`."""
    return RayLauncher(address=cfg.ray_address, num_cpus=cfg.ray_cpus,
                       max_restarts=cfg.max_restarts, verbose=verbose)
