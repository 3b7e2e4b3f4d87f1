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
OUTAGE_S = 10.0


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
    record("RGW outage of 10 s mid-round (radosgw stopped by PID)",
           "retried each call with backoff; the round completed with the fault-free sums",
           "0 (one round ran ~10 s longer)", "none", seen[0].split(" (")[0][:160])
