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

pytest.importorskip("ray")

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


def _drive(address: str, work: Path, log: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the driver once against the cluster; its whole output goes to ``log``."""
    work.mkdir(parents=True)
    driver = subprocess.run([sys.executable, "-m", "tests.worker.ray_cluster_driver", address,
                             "127.0.0.2", str(work)], capture_output=True, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[2], timeout=1200, check=False)
    log.write_text(f"exit {driver.returncode}\n--- stdout\n{driver.stdout}\n"
                   f"--- stderr\n{driver.stderr}")
    return driver


def _ray_crash(stderr: str) -> bool:
    """Whether the driver died on one of Ray's own fatal checks (a C++ stack trace)."""
    return "Check failed" in stderr or "*** StackTrace Information ***" in stderr


def _cause(stderr: str) -> str:
    """The lines of the driver's stderr that say why it failed: a Python traceback's last
    lines, or Ray's fatal check, without Ray's start-up chatter."""
    lines = stderr.splitlines()
    keep = [ln for ln in lines if "Check failed" in ln or "Error" in ln or "Traceback" in ln]
    return "\n".join((keep or lines)[-12:])[-3000:]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Start the two nodes, run the driver against them, stop them; the driver's result."""
    logs = tmp_path_factory.mktemp("ray-logs")
    work = tmp_path_factory.mktemp("ray-work")
    temp = Path("/tmp") / f"kofn-ray-{uuid.uuid4().hex[:8]}"  # short: Ray's socket paths
    # Ray turns 127.0.0.1 into this machine's outside address; other loopback addresses
    # stay loopback. A token of the cluster's own (not the shared ~/.ray/auth_token)
    # keeps other clusters on this machine out.
    address = f"127.0.0.2:{PORT}"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=uuid.uuid4().hex)
    env.pop("PYTHONPATH", None)

    def status() -> str:
        res = subprocess.run([str(RAY), "status", f"--address={address}"], capture_output=True,
                             text=True, env=env, check=False)
        return res.stdout if res.returncode == 0 else ""

    def alive() -> int:
        text = status()
        block = text.split("Active:", 1)[1].split("Pending:", 1)[0] if "Active:" in text else ""
        return sum(1 for line in block.splitlines() if "node_" in line)

    procs: list[subprocess.Popen] = []
    try:
        for attempt in range(3):  # a loaded machine can miss Ray's start-up deadlines
            head = logs / f"head-{attempt}.log"
            procs.append(_node(["--head", f"--port={PORT}", "--node-ip-address=127.0.0.2",
                                "--num-cpus=1", '--resources={"kofn_head": 1}',
                                "--include-dashboard=false", f"--temp-dir={temp}",
                                *_ports(PORT + 10100)], head, env))
            if _wait(lambda: alive() >= 1, procs[-1], 180):
                break
            _stop(procs[-1:], temp)
        assert alive() >= 1, head.read_text()[-3000:]
        for attempt in range(3):
            log = logs / f"node2-{attempt}.log"
            procs.append(_node([f"--address={address}", "--node-ip-address=127.0.0.3",
                                "--num-cpus=1", '--resources={"kofn_node2": 1}',
                                *_ports(PORT + 10300)], log, env))
            if _wait(lambda: alive() >= 2, procs[-1], 180):
                break
        assert alive() == 2, log.read_text()[-3000:]
        # Ray's core worker has fatal checks that a race inside Ray can trip (for example
        # ray-project/ray#54846, "Tried to fail task that was not pending"); such a crash is
        # Ray's, not kofn's, so the driver runs once more, on a fresh work folder, and the
        # first crash stays in its log. Any other failure fails at once.
        for attempt in range(2):
            driver = _drive(address, work / f"try-{attempt}", logs / f"driver-{attempt}.log", env)
            lines = [ln for ln in driver.stdout.splitlines() if ln.startswith("RESULT ")]
            if (driver.returncode == 0 and lines) or not _ray_crash(driver.stderr):
                break
        assert driver.returncode == 0 and lines, (driver.returncode, _cause(driver.stderr),
                                                  f"full output: {logs / f'driver-{attempt}.log'}")
        yield json.loads(lines[-1][len("RESULT "):])
    finally:
        _stop(procs, temp)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


@pytest.mark.slow
def test_nodes_are_checked_and_get_kofn_shipped(run):
    probes = run["probes"]
    assert len(run["nodes"]) == 2
    assert sorted(p["node"] for p in probes) == run["nodes"]
    for p in probes:  # every node holds a shipped copy of each package, not this checkout
        # (on one machine Ray also hands workers the driver's sys.path, so a node may import
        # this checkout first; a remote node has only the shipped copy)
        assert set(p["shipped"]) == {"coding", "exchange", "offload", "worker"}, p
        assert not any(Path(d).is_relative_to(run["repo"]) for d in p["shipped"].values()), p
        assert p["versions"]["torch"] is not None


@pytest.mark.slow
def test_training_job_runs_on_both_nodes(run):
    train = run["train"]
    assert train["exits"] == {"0": [0], "1": [0]}, train
    assert sorted(nodes[0] for nodes in train["nodes"].values()) == run["nodes"]
    assert train["checkpoint"]


@pytest.mark.slow
def test_matmul_job_runs_on_both_nodes(run):
    mm = run["matmul"]
    assert mm["rc"] == 0, mm
    assert mm["report"]["launcher"] == "ray" and mm["report"]["check"]["ok"], mm["report"]
    assert set(mm["nodes"]) == set(run["nodes"]), mm["nodes"]
    assert np.isfinite(mm["report"]["check"]["rel_err"])
