"""SIGKILL a worker process while its upload is in flight: the round still counts it once.

The ``kill`` fault makes worker 1's process send itself SIGKILL right after its first
share of a round is written and before its done marker, a real process death mid-upload
(``kofn train`` with the local launcher, real worker processes). The launcher restarts
it; the new process publishes the round under a fresh attempt token, and the done marker
names that attempt alone, so the dead attempt's stray share is never read. The final
model must equal the fault-free run's on the same seeds, bit for bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from exchange.shards import unpack_shard  # noqa: E402
from exchange.stores.local import LocalStore  # noqa: E402
from tests.faults.table import record  # noqa: E402
from worker.config import RunConfig  # noqa: E402
from worker.faults import kills  # noqa: E402
from worker.straggle import parse_straggle  # noqa: E402
from worker.trigger import checkpoint_key, decode_state  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 3
KILL = "kill:worker=1,prob=0.5"


def _seed() -> int:
    """A seed whose draws kill worker 1's first attempt at round 2 and nothing else."""
    for seed in range(1000):
        cfg = RunConfig(seed=seed, workers=3, straggle=parse_straggle(KILL))
        plan = {(r, a): kills(cfg, 1, r, a) for r in range(1, ROUNDS + 1) for a in range(3)}
        if plan[(2, 0)] and not plan[(1, 0)] and not any(plan[(r, 1)] for r in (2, 3)):
            return seed
    raise AssertionError("no seed gives the wanted plan")


def _kofn(tmp_path: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "worker.cli", *args], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def test_sigkill_mid_upload_is_restarted_and_counted_once(tmp_path):
    seed = _seed()
    (tmp_path / "run.toml").write_text("min_size = 64\nmax_size = 64\n")
    common = ["train", "--workers", "3", "--mode", "plain", "--model", "small_cnn", "--synth-images", "12",
              "--image-size", "64", "--local-iters", "1", "--batch-size", "2", "--no-encrypt",
              "--no-evaluate", "--grace", "0.3", "--rounds", str(ROUNDS), "--seed", str(seed),
              "--config", str(tmp_path / "run.toml"), "--store", f"file://{tmp_path / 'store'}",
              "--runs-dir", str(tmp_path / "runs")]
    _kofn(tmp_path, *common, "--job", "ref")
    out = _kofn(tmp_path, *common, "--job", "kill", "--straggle", KILL)
    store = LocalStore(tmp_path / "store")

    log = (tmp_path / "runs" / "kill" / "logs" / "worker-1.log").read_text()
    killed = [line for line in log.splitlines() if "killing this process (injected kill)" in line]
    assert len(killed) == 1, log
    assert "/r00000002/contrib/" in killed[0]
    # round 2 holds the shares' objects of two attempts of worker 1; its done marker names
    # the survivor's
    rp = "kill/exchange/r00000002/"
    tokens = {k.rsplit(".", 1)[1] for k in store.list(rp + "contrib/1.")}
    assert len(tokens) == 2, tokens
    done = unpack_shard(store.get(rp + "done/1")).header.attempt
    assert done in tokens
    want = decode_state(store.get(checkpoint_key("ref", ROUNDS)))
    got = decode_state(store.get(checkpoint_key("kill", ROUNDS)))
    assert sorted(want) == sorted(got)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    restarts = [line for line in out.splitlines() if "restart" in line.lower()]
    record("worker process SIGKILLed mid-upload (after its first share, before its done marker)",
           "the launcher restarts it; the new process publishes round 2 under a fresh attempt "
           "and the done marker names that one, so the dead attempt's stray share is never "
           "read; the final model equals the fault-free run's bit for bit",
           "0 (round 2 waited for the restart)", "none",
           killed[0].split(": ", 1)[-1] if not restarts else restarts[0])
