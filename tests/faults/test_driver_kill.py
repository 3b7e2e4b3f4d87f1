"""SIGKILL the driver alone, then ``--resume``: its orphaned workers and the new ones overlap.

The driver's ``finally: launcher.stop()`` never runs under SIGKILL, so its workers keep
running while ``kofn train --resume`` starts a second set. The new processes claim the
worker indices (worker/owner.py), the orphans stop at their next round boundary, and any
round both sets publish counts each worker once (exchange/round.py attempts). The final
model must equal the fault-free run's on the same seeds, bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from exchange.stores.local import LocalStore  # noqa: E402
from tests.faults.table import record  # noqa: E402
from worker.runner import session_prefix  # noqa: E402
from worker.trigger import checkpoint_key, decode_state  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 4
ARGS = ["train", "--workers", "3", "--mode", "plain", "--model", "small_cnn", "--synth-images", "12",
        "--image-size", "64", "--local-iters", "1", "--batch-size", "2", "--no-encrypt",
        "--no-evaluate", "--grace", "0.3", "--rounds", str(ROUNDS), "--seed", "5",
        # every round takes 3 s or more, so the orphans are still mid-job when the resumed
        # workers start (the delays change no update)
        "--straggle", "worker=0,delay=3"]


def _kofn(tmp_path: Path, *args: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "worker.cli", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _running(job: str) -> bool:
    """Whether a worker process of ``job`` (an orphan) is still alive on this machine."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker.runner" in cmd and job.encode() in cmd:
            return True
    return False


def _final(store: LocalStore, job: str) -> dict[str, np.ndarray]:
    return decode_state(store.get(checkpoint_key(job, ROUNDS)))


def test_driver_sigkill_then_resume_equals_the_fault_free_run(tmp_path):
    (tmp_path / "run.toml").write_text("min_size = 64\nmax_size = 64\n")
    store_url = f"file://{tmp_path / 'store'}"
    common = [*ARGS, "--config", str(tmp_path / "run.toml"), "--store", store_url,
              "--runs-dir", str(tmp_path / "runs")]
    ref = _kofn(tmp_path, *common, "--job", "ref")
    out, _ = ref.communicate(timeout=900)
    assert ref.returncode == 0, out

    proc = _kofn(tmp_path, *common, "--job", "kill")
    store = LocalStore(tmp_path / "store")
    deadline = time.monotonic() + 600
    while not store.exists(checkpoint_key("kill", 1)):
        assert proc.poll() is None, proc.stdout.read()
        if time.monotonic() > deadline:  # a hang guard, not a timing assertion
            pytest.fail("round 1 did not complete within the 600 s guard")
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # the driver only: its workers live on as orphans
    proc.wait()
    again = _kofn(tmp_path, "train", "--resume", "kill", "--store", store_url, "--no-encrypt",
                  "--runs-dir", str(tmp_path / "runs"))
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out
    # the orphans end: they finished, or stepped down when the new workers claimed
    deadline = time.monotonic() + 120
    while _running("kill") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running("kill")
    outcomes = sorted(json.loads(store.get(k))["outcome"] for w in range(3)
                      for k in store.list(session_prefix("kill", w)))
    assert len(outcomes) >= 3 and set(outcomes) <= {"done", "not owner"}, outcomes
    logs = "".join(p.read_text() for p in (tmp_path / "runs" / "kill" / "logs").glob("worker-*.log"))
    stepped = [line.split("error: ", 1)[1] for line in logs.splitlines() if "now runs this worker index" in line]
    assert len(stepped) == outcomes.count("not owner")
    seen = stepped[0] if stepped else ""
    want, got = _final(store, "ref"), _final(store, "kill")
    assert sorted(want) == sorted(got)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    record("driver SIGKILLed after round 1 (its workers orphaned), then --resume",
           "the resumed workers claim the indices; orphans stop at their next round "
           f"(session outcomes {outcomes}); rounds both sets published count each worker once",
           "0 (model equals the fault-free run's bit for bit)", "none", seen)
