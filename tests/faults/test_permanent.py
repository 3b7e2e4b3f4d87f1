"""Permanent failures fail fast with their cause; a second process for an index steps down.

A corrupt encrypted partition used to make its worker exit 2, the launcher restart it
anyway, and the others wait out the round timeout on every attempt (763 s with a 60 s
timeout) before a message listing exit codes. Now exit 2 is permanent: no launcher
restarts it and the driver stops the job with the cause the worker recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

import worker.trigger  # noqa: E402
from coding.errors import KofnError  # noqa: E402
from exchange.crypto import EncryptedStore, Keyring, new_key, write_key_file  # noqa: E402
from exchange.errors import RoundTimeoutError  # noqa: E402
from exchange.stores.local import LocalStore  # noqa: E402
from tests.faults.table import record  # noqa: E402
from worker.commands.train import run_job  # noqa: E402
from worker.config import RunConfig  # noqa: E402
from worker.owner import NotOwnerError, Ownership, owner_key  # noqa: E402
from worker.runner import (  # noqa: E402
    CRASH_EXIT,
    NOT_OWNER_EXIT,
    PERMANENT_EXIT,
    TIMEOUT_EXIT,
    TRANSIENT_EXIT,
    WorkerCrash,
    exit_status,
    session_prefix,
)
from worker.trigger import partition_key, read_manifest, sha256, trigger  # noqa: E402


def test_exit_statuses_separate_permanent_from_transient():
    assert exit_status(WorkerCrash("x")) == CRASH_EXIT
    assert exit_status(RoundTimeoutError(["done/1"])) == TIMEOUT_EXIT
    assert exit_status(ConnectionError("refused")) == TRANSIENT_EXIT
    assert exit_status(NotOwnerError("x")) == NOT_OWNER_EXIT
    for err in (KofnError("bad key"), ValueError("bad config"), FileNotFoundError("no partition")):
        assert exit_status(err) == PERMANENT_EXIT


def test_the_newest_claim_owns_the_index(tmp_path):
    store = LocalStore(tmp_path)
    old = Ownership.claim(store, "job", 2, attempt=0)
    old.check(1)
    new = Ownership.claim(store, "job", 2, attempt=1)  # a restart, or --resume next to an orphan
    new.check(1)
    with pytest.raises(NotOwnerError) as err:
        old.check(2)
    assert str(err.value) == ("worker 2 (attempt 0) stops before round 2: another process "
                              "(attempt 1) now runs this worker index")
    store.delete([owner_key("job", 2)])  # a missing or damaged claim is claimed again
    new.check(3)
    store.put(owner_key("job", 2), b"\x00not json")
    new.check(4)
    assert json.loads(store.get(owner_key("job", 2)))["token"] == new.token
    record("a second live process for a worker index (a restart beside a live one, or "
           "--resume beside a SIGKILLed driver's orphans)",
           "the newest process owns the index; the older one stops at its next round "
           "boundary, exit 5, not restarted (its repeated publish would count once anyway)",
           0, "none", str(err.value))


def test_corrupt_partition_stops_the_job_then_resume_repairs_it(tmp_path, monkeypatch):
    key = write_key_file(tmp_path / "kofn.key", Keyring([new_key()]))
    cfg = RunConfig(job="bad", store=f"file://{tmp_path / 'store'}", workers=3, rounds=2, mode="mds",
                    k=2, model="small_cnn", min_size=64, max_size=64, image_size=64, synth_images=12,
                    local_iters=1, batch_size=2, encrypt=True, key_file=str(key), evaluate=False,
                    grace=0.3, round_timeout=300.0, runs_dir=str(tmp_path / "runs"))
    raw = LocalStore(tmp_path / "store")
    trigger(cfg, EncryptedStore(raw, cfg.load_keyring()))
    path = tmp_path / "store" / Path(*partition_key("bad", 1).split("/"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    lines: list[str] = []
    # the damage happens after resume's check (as if mid-job): the worker finds it
    monkeypatch.setattr(worker.trigger, "repair_partitions", lambda *a, **k: [])
    with pytest.raises(KofnError) as err:
        run_job(cfg, resume=True, log=lines.append, live=False)
    monkeypatch.undo()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("Job 'bad': worker 1 failed permanently (not restarted): Cannot decrypt "
                              "object 'bad/data/part-0001.kpt'"), message
    sessions = raw.list(session_prefix("bad", 1))
    assert len(sessions) == 1  # one attempt: never restarted
    assert json.loads(EncryptedStore(raw, cfg.load_keyring()).get(sessions[0]))["outcome"].startswith(
        "error: Cannot decrypt object 'bad/data/part-0001.kpt'")
    # --resume checks every partition against the manifest's digest and rebuilds the
    # damaged one from the source data (same seed, same bytes), then the job completes
    lines.clear()
    result = run_job(cfg, resume=True, log=lines.append, live=False)
    assert "re-uploading damaged partition 1 from the source data" in lines
    assert result.report is not None
    store = EncryptedStore(raw, cfg.load_keyring())
    assert sha256(store.get(partition_key("bad", 1))) == read_manifest(store, "bad").digests[1]
    record("a flipped byte in an encrypted data partition",
           "its worker exits 2 (permanent), is not restarted, and the driver stops the job; "
           "--resume checks every partition's SHA-256 against the manifest and re-uploads "
           "the damaged one from the source data, and the job completes",
           "job stopped (no round timeout waited)", "none", message.split(" (log: ")[0])
