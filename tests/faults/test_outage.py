"""Store outages: a round over the real Ceph RGW rides through radosgw being down for 10 s.

Only radosgw is stopped, by the PID ``scripts/s3-server`` recorded (``rgw-stop``); mon
and osd keep running and keep the data, as a restarting S3 front end would.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from exchange.reduce import CodeSpec
from exchange.round import Exchange, RoundConfig
from exchange.stores.s3 import S3Store
from tests.faults.table import record

SERVER = Path(__file__).resolve().parents[2] / "scripts" / "s3-server"
# 10 s in make test; the 30 s-plus outage the guarantee names is run by hand with
# KOFN_OUTAGE_S=35 .venv/bin/python -m pytest -q tests/faults/test_outage.py
OUTAGE_S = float(os.environ.get("KOFN_OUTAGE_S", "10"))


def _round(store, job: str, updates: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    """One secure round (exact in GF(p)), one thread per worker; the decoded sums."""
    spec = CodeSpec("secure", n=len(updates), k=1, t=1)
    cfg = RoundConfig(job=job, code=spec, deadline_s=120.0, poll_max_s=0.2, takeover_after_s=30.0)
    out, errors = {}, {}

    def go(w: int) -> None:
        try:
            with Exchange(store, cfg) as ex:
                out[w] = ex.run(0, w, updates[w], rng=np.random.default_rng([seed, w])).total
        except Exception as err:  # noqa: BLE001 - reported below
            errors[w] = err

    threads = [threading.Thread(target=go, args=(w,)) for w in range(len(updates))]
    for t in threads:
        t.start()
    return threads, out, errors


def test_refused_endpoint_is_transient_and_bounded(monkeypatch):
    """Nothing listens: the call retries for outage_s, then raises ConnectionError."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    store = S3Store("kofn-none", endpoint_url="http://127.0.0.1:9", region="us-east-1",
                    outage_s=0.5)
    with pytest.raises(ConnectionError, match="still failing after"):
        store.get("a")
    with pytest.raises(ConnectionError, match="still failing after"):  # every read rides it out
        store.get_bounded("a", 10)


@pytest.mark.skipif(bool(os.environ.get("KOFN_S3_ENDPOINT")), reason="needs the local RGW")
def test_rgw_outage_mid_round_delays_and_completes(s3_store, caplog):
    updates = np.random.default_rng(5).normal(size=(3, 64))
    threads, reference, errors = _round(s3_store, "clean", updates, seed=1)
    for t in threads:
        t.join()
    assert not errors

    caplog.set_level(logging.WARNING, logger="exchange.stores.s3")
    threads, got, errors = _round(s3_store, "outage", updates, seed=1)
    deadline = time.monotonic() + 60
    while not s3_store.list("kofn/outage/") and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until the round is under way
    subprocess.run([str(SERVER), "rgw-stop"], check=True, capture_output=True, timeout=60)
    try:
        time.sleep(OUTAGE_S)
    finally:
        subprocess.run([str(SERVER), "rgw-start"], check=True, capture_output=True, timeout=120)
    for t in threads:
        t.join()
    assert not errors, errors
    for w in range(3):  # GF(p) decoding is exact: bit for bit the fault-free sums
        np.testing.assert_array_equal(got[w], reference[w])
    seen = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert seen, "no retry was logged"
    record(f"RGW outage of {OUTAGE_S:g} s mid-round (radosgw stopped by PID)",
           "retried each call with backoff; the round completed with the fault-free sums",
           f"0 (one round ran ~{OUTAGE_S:g} s longer)", "none", seen[0].split(" (")[0][:160])


@pytest.mark.skipif(bool(os.environ.get("KOFN_S3_ENDPOINT")), reason="needs the local RGW")
def test_rgw_outage_mid_job_is_ridden_through_by_driver_and_workers(s3_prefix, s3_bucket, tmp_path):
    """A whole ``kofn train`` job on RGW (driver in this process, worker processes), radosgw
    down for OUTAGE_S after round 1: nobody stops, and the model equals the local run's."""
    pytest.importorskip("torch")
    from worker.commands.train import run_job
    from worker.config import RunConfig
    from worker.trigger import checkpoint_key

    def cfg(job: str, store: str) -> RunConfig:
        return RunConfig(job=job, store=store, workers=3, rounds=3, mode="plain", model="small_cnn",
                         min_size=64, max_size=64, image_size=64, synth_images=8, local_iters=1,
                         batch_size=2, encrypt=False, evaluate=False, grace=0.3, round_timeout=300.0,
                         runs_dir=str(tmp_path / "runs"), seed=3)

    ref = run_job(cfg("ref", str(tmp_path / "store")), live=False, log=lambda _m: None)
    s3 = S3Store(s3_bucket, s3_prefix)
    stopped: list[float] = []

    def outage() -> None:
        deadline = time.monotonic() + 600
        while not s3.exists(checkpoint_key("out", 1)) and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run([str(SERVER), "rgw-stop"], check=True, capture_output=True, timeout=60)
        stopped.append(time.monotonic())
        try:
            time.sleep(OUTAGE_S)
        finally:
            subprocess.run([str(SERVER), "rgw-start"], check=True, capture_output=True, timeout=120)

    chaos = threading.Thread(target=outage)
    chaos.start()
    lines: list[str] = []
    try:
        got = run_job(cfg("out", f"s3://{s3_bucket}/{s3_prefix.rstrip('/')}"), live=False,
                      log=lines.append)
    finally:
        chaos.join()
    assert stopped, "the outage never started"
    assert got.launch is not None and got.launch.restarts == 0, lines  # nobody was stopped
    for name, value in ref.final_state.items():
        np.testing.assert_array_equal(got.final_state[name], value, err_msg=name)
    record(f"RGW outage of {OUTAGE_S:g} s mid-job (a whole kofn train job: driver and worker "
           "processes)", "the driver kept following and the workers kept retrying; no worker "
           "was stopped or restarted, and the final model equals the local store run's bit for "
           "bit", "0 (the job ran that much longer)", "none", "(retry warnings in the logs)")
