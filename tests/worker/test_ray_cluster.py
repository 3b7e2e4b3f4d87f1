"""Ray beyond one machine: a two-node cluster on loopback (``ray start --head``, then a
second ``ray start --address`` with its own resources), a training job and a matmul job
whose workers land on both nodes, with kofn's code shipped as ``py_modules``.

Both nodes run in their own process groups (``ray start --block``), which the fixture
ends by their ids; nothing else's Ray processes are touched. The nodes listen on
127.0.0.2 and 127.0.0.3; ports: GCS on 6391 (or ``KOFN_RAY_PORT``), the others from
it + 10100.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

RAY = Path(sys.executable).with_name("ray")
PORT = int(os.environ.get("KOFN_RAY_PORT", "6391"))


def _node(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - lives as long as the node
    return subprocess.Popen([str(RAY), "start", "--block", "--disable-usage-stats", *args],
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True)


def _ports(base: int) -> list[str]:
    names = ("--node-manager-port", "--object-manager-port", "--metrics-export-port",
             "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
             "--runtime-env-agent-port")
    out = [f"{name}={base + i}" for i, name in enumerate(names)]
    return out + [f"--min-worker-port={base + 20}", f"--max-worker-port={base + 99}"]


def _stop(procs: list[subprocess.Popen], temp: Path) -> None:
    """End the nodes by their process groups, then any straggler of this cluster by pid."""
    for proc in reversed(procs):
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
    for pid in os.listdir("/proc"):  # workers run in process groups of their own
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if pid.isdigit() and str(temp).encode() in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait(check, proc: subprocess.Popen, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("ray-logs")
    temp = Path("/tmp") / f"kofn-ray-{uuid.uuid4().hex[:8]}"  # short: Ray's socket paths
    # Ray turns 127.0.0.1 into this machine's outside address; other loopback addresses
    # stay loopback. Token authentication is off, as for the in-process driver (which
    # reads RAY_AUTH_MODE when ray is first imported): the cluster lives on loopback only.
    address = f"127.0.0.2:{PORT}"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    env.pop("PYTHONPATH", None)
    procs = [_node(["--head", f"--port={PORT}", "--node-ip-address=127.0.0.2", "--num-cpus=1",
                    '--resources={"kofn_head": 1}', "--include-dashboard=false",
                    f"--temp-dir={temp}", *_ports(PORT + 10100)], logs / "head.log", env)]
    try:
        up = _wait(lambda: subprocess.run([str(RAY), "status", f"--address={address}"],
                                          capture_output=True, env=env, check=False).returncode == 0,
                   procs[0], 180)
        assert up, (logs / "head.log").read_text()[-3000:]
        # what RayLauncher(address=...) does on a node of the cluster; here the driver names
        # its node, since Ray would take 127.0.0.1 for this machine's address
        from worker.launchers.ray_launcher import runtime_env

        ray.init(address=address, _node_ip_address="127.0.0.2", runtime_env=runtime_env(),
                 log_to_driver=False)
        for attempt in range(3):  # a loaded machine can miss the raylet's agent deadline
            log = logs / f"node2-{attempt}.log"
            procs.append(_node([f"--address={address}", "--node-ip-address=127.0.0.3",
                                "--num-cpus=1", '--resources={"kofn_node2": 1}',
                                *_ports(PORT + 10300)], log, env))
            if _wait(lambda: len(_node_ids()) >= 2, procs[-1], 180):
                break
        assert len(_node_ids()) == 2, log.read_text()[-3000:]
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop(procs, temp)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def _node_ids() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


@pytest.mark.slow
def test_nodes_are_checked_and_get_kofn_shipped(cluster):
    from worker.launchers.ray_launcher import _REPO, check_nodes

    probes = check_nodes()
    assert {p["node"] for p in probes} == _node_ids()
    for p in probes:  # every node holds a shipped copy of each package, not this checkout
        # (on one machine Ray also hands workers the driver's sys.path, so a node may import
        # this checkout first; a remote node has only the shipped copy)
        assert set(p["shipped"]) == {"coding", "exchange", "offload", "worker"}, p
        assert not any(Path(d).is_relative_to(_REPO) for d in p["shipped"].values()), p
        assert p["versions"]["torch"] is not None


@pytest.mark.slow
def test_training_job_runs_on_both_nodes(cluster, tmp_path):
    pytest.importorskip("worker.local_train")
    from exchange.stores.local import LocalStore
    from worker.config import RunConfig
    from worker.launchers.ray_launcher import RayLauncher
    from worker.runner import WorkerSpec
    from worker.trigger import checkpoint_key, trigger

    url = f"file://{tmp_path / 'store'}"
    store = LocalStore(tmp_path / "store")
    cfg = RunConfig(job="two", store=url, workers=2, mode="mds", k=2, rounds=1, model="small_cnn",
                    min_size=64, max_size=64, image_size=64, synth_images=8, local_iters=1,
                    batch_size=2, encrypt=False, grace=0.3, round_timeout=300.0)
    trigger(cfg, store)
    # one CPU per node and one per task: the two workers cannot share a node
    launcher = RayLauncher(address=cluster, num_cpus=1, max_restarts=0)
    try:
        launcher.start([WorkerSpec(store=url, job="two", worker=i, encrypt=False) for i in range(2)])
        report = launcher.wait(timeout=600)
    finally:
        launcher.stop()
    assert report.exits == {0: [0], 1: [0]}, report
    assert {nodes[0] for nodes in launcher.nodes.values()} == _node_ids()
    assert store.exists(checkpoint_key("two", 1))


@pytest.mark.slow
def test_matmul_job_runs_on_both_nodes(cluster, tmp_path, monkeypatch):
    from worker.cli import main
    from worker.matmul import jobs

    report = tmp_path / "mm.json"
    argv = ["matmul", "--code", "mds", "--n", "4", "--k", "2", "--size", "64x32x16",
            "--launcher", "ray", "--ray-address", cluster, "--store", f"file://{tmp_path / 's'}",
            "--no-encrypt", "--report", str(report)]
    seen: list[list] = []
    real_join = jobs.RayPool._join

    def join(self, timeout):  # record where the executors ran, then stop as usual
        real_join(self, timeout)
        seen.append(list(self.nodes))

    monkeypatch.setattr(jobs.RayPool, "_join", join)
    assert main(argv) == 0
    out = json.loads(report.read_text())
    assert out["launcher"] == "ray" and out["check"]["ok"], out
    assert set(seen[0]) == _node_ids(), seen
    assert np.isfinite(out["check"]["rel_err"])
