"""Launchers: Lambda invoke payloads (botocore Stubber), the Lambda handler, local restarts,
crash-and-rejoin, and the Ray launcher on a local cluster."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from worker.config import RunConfig
from worker.launchers.aws_lambda import InvokeError, LambdaLauncher
from worker.launchers.local import LocalLauncher
from worker.runner import WorkerCrash, WorkerSpec, crashes, straggle_delay
from worker.straggle import parse_straggle


def specs(n: int = 3, **kw) -> list[WorkerSpec]:
    return [WorkerSpec(store="s3://bucket/pre", job="job1", worker=i, key_env="KOFN_KEY", **kw)
            for i in range(n)]


# -- Lambda launcher: payloads checked with botocore's Stubber -----------------------------

@pytest.fixture
def lambda_client(monkeypatch):
    boto3 = pytest.importorskip("boto3")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    return boto3.client("lambda", region_name="us-east-1")


def test_lambda_launcher_invokes_async_with_worker_payloads(lambda_client):
    from botocore.stub import Stubber

    launcher = LambdaLauncher(function="kofn-worker", client=lambda_client)
    todo = specs(3, key_file="/secret/key", attempt=2)
    with Stubber(lambda_client) as stub:
        for spec in todo:
            payload = json.dumps({"store": "s3://bucket/pre", "job": "job1", "worker": spec.worker,
                                  "attempt": None, "encrypt": True, "key_file": None,
                                  "key_env": "KOFN_KEY", "threads": 1}, sort_keys=True).encode()
            stub.add_response("invoke", {"StatusCode": 202},
                              {"FunctionName": "kofn-worker", "InvocationType": "Event",
                               "Payload": payload})
        launcher.start(todo)
        stub.assert_no_pending_responses()
    assert sorted(launcher.report.exits) == [0, 1, 2]
    assert launcher.poll() is False  # async: completion is seen in the store only
    # the payload round-trips into the handler's spec, and never carries a key
    event = json.loads(LambdaLauncher.payload(todo[1]))
    assert WorkerSpec.from_event(event).worker == 1 and "key" not in event


def test_lambda_launcher_refusal_is_an_error(lambda_client):
    from botocore.stub import Stubber

    launcher = LambdaLauncher(function="kofn-worker", client=lambda_client)
    with Stubber(lambda_client) as stub:
        stub.add_response("invoke", {"StatusCode": 400})
        with pytest.raises(InvokeError, match="refused worker 0"):
            launcher.start(specs(1))


def test_lambda_launcher_bad_arguments():
    with pytest.raises(ValueError, match="function"):
        LambdaLauncher(function="")
    with pytest.raises(ValueError, match="unknown field"):
        WorkerSpec.from_event({"store": "file:///x", "job": "j", "worker": 0, "key": "secret"})


# -- local launcher: restarts --------------------------------------------------------------

def test_local_launcher_restarts_crashed_worker(tmp_path):
    # A fake interpreter: crashes (exit 3) on its first run per worker, then succeeds.
    fake = tmp_path / "fake-python"
    fake.write_text(
        "#!/bin/sh\n"
        'w=$(echo "$@" | sed "s/.*--worker \\([0-9]*\\).*/\\1/")\n'
        f'f="{tmp_path}/ran-$w"\n'
        'if [ -e "$f" ]; then exit 0; fi\n'
        'touch "$f"; exit 3\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    launcher = LocalLauncher(max_restarts=2, python=str(fake), log_dir=tmp_path / "logs")
    launcher.start(specs(2, attempt=0))
    report = launcher.wait(timeout=60)
    assert report.exits == {0: [3, 0], 1: [3, 0]}
    assert report.restarts == 2 and report.failed == []


def test_local_launcher_gives_up_after_max_restarts(tmp_path):
    fake = tmp_path / "always-crash"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    launcher = LocalLauncher(max_restarts=1, python=str(fake))
    launcher.start(specs(1))
    report = launcher.wait(timeout=60)
    assert report.exits == {0: [3, 3]} and report.failed == [0]


# -- straggler and fault injection ---------------------------------------------------------

def test_straggle_delays_are_seeded_per_worker():
    cfg = RunConfig(straggle=parse_straggle("worker=1,delay=2;shiftexp:shift=0.5,rate=2"))
    assert straggle_delay(cfg, 1, 3) == straggle_delay(cfg, 1, 3) >= 2.5
    d0 = [straggle_delay(cfg, 0, r) for r in range(200)]
    assert min(d0) >= 0.5 and abs(np.mean(d0) - 1.0) < 0.15  # shift + 1/rate
    assert straggle_delay(RunConfig(), 0, 1) == 0.0


def test_crash_probability_is_seeded_per_attempt():
    cfg = RunConfig(straggle=parse_straggle("crash:worker=2,p=0.5"))
    draws = [crashes(cfg, 2, r, a) for r in range(1, 50) for a in range(3)]
    assert 0.3 < np.mean(draws) < 0.7
    assert draws == [crashes(cfg, 2, r, a) for r in range(1, 50) for a in range(3)]
    assert not any(crashes(cfg, 1, r, 0) for r in range(1, 50))


def _crash_seed() -> int:
    """A seed under which worker 1 crashes in round 2 on its first attempt only."""
    for seed in range(200):
        cfg = RunConfig(seed=seed, straggle=parse_straggle("crash:worker=1,p=0.5"))
        if (not crashes(cfg, 1, 1, 0) and crashes(cfg, 1, 2, 0)
                and not any(crashes(cfg, 1, r, 1) for r in (2, 3))):
            return seed
    raise AssertionError("no suitable seed")


@pytest.mark.slow
def test_crashed_worker_rejoins_from_latest_complete_round(tmp_path):
    pytest.importorskip("worker.local_train")
    import torch

    from exchange.stores.local import LocalStore
    from worker.runner import run_worker
    from worker.trigger import checkpoint_key, trigger

    torch.set_num_threads(1)
    cfg = RunConfig(job="crash", store=f"file://{tmp_path}", workers=3, mode="backup", s=1,
                    rounds=3, model="small_cnn", min_size=64, max_size=64, image_size=64,
                    synth_images=12, local_iters=1, batch_size=2, encrypt=False, grace=0.3,
                    seed=_crash_seed(), straggle=parse_straggle("crash:worker=1,p=0.5"))
    store = LocalStore(tmp_path)
    trigger(cfg, store)
    outcomes: dict[int, list] = {i: [] for i in range(3)}

    def go(i: int) -> None:
        for _attempt in range(3):  # what a launcher does: restart after a crash
            try:
                recs = run_worker(WorkerSpec(store=cfg.store, job="crash", worker=i, attempt=None,
                                             encrypt=False), store=store)
            except WorkerCrash:
                outcomes[i].append("crash")
                continue
            outcomes[i].append([rec["round"] for rec in recs])
            return

    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert outcomes[0] == [[1, 2, 3]] and outcomes[2] == [[1, 2, 3]]
    assert outcomes[1][0] == "crash"
    rejoined = outcomes[1][1]
    assert rejoined and rejoined[-1] == 3 and rejoined[0] >= 2  # did not redo round 1
    assert store.exists(checkpoint_key("crash", 3))
    sessions = store.list("crash/sessions/worker-0001/")
    assert len(sessions) == 2
    assert json.loads(store.get(sessions[0]))["outcome"] == "crash"


# -- the Lambda handler, called directly with a real event ------------------------------------

def _tiny_job(tmp_path: Path, store_url: str, store, **kw) -> RunConfig:
    from worker.trigger import trigger

    cfg = RunConfig(job="lam", store=store_url, workers=1, mode="plain", rounds=1,
                    model="small_cnn", min_size=64, max_size=64, image_size=64, synth_images=4,
                    local_iters=1, batch_size=2, grace=0.2, **kw)
    trigger(cfg, store)
    return cfg


def test_lambda_handler_runs_a_worker_from_an_event(tmp_path):
    pytest.importorskip("worker.local_train")
    pytest.importorskip("exchange.stores.url")
    from exchange.stores.local import LocalStore
    from worker.lambda_handler import handler
    from worker.trigger import checkpoint_key

    url = f"file://{tmp_path / 'store'}"
    store = LocalStore(tmp_path / "store")
    _tiny_job(tmp_path, url, store, encrypt=False)
    event = json.loads(LambdaLauncher.payload(WorkerSpec(store=url, job="lam", worker=0,
                                                         encrypt=False)))
    out = handler(event, None)
    assert out == {"worker": 0, "rounds": [1], "status": "done"}
    assert store.exists(checkpoint_key("lam", 1))


# -- Ray on a local cluster ---------------------------------------------------------------------

@pytest.mark.slow
def test_ray_launcher_on_local_cluster(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("worker.local_train")
    pytest.importorskip("exchange.stores.url")
    from exchange.stores.local import LocalStore
    from worker.launchers.ray_launcher import RayLauncher
    from worker.trigger import checkpoint_key, trigger

    url = f"file://{tmp_path / 'store'}"
    store = LocalStore(tmp_path / "store")
    cfg = RunConfig(job="ray", store=url, workers=2, mode="mds", k=2, rounds=1, model="small_cnn",
                    min_size=64, max_size=64, image_size=64, synth_images=8, local_iters=1,
                    batch_size=2, encrypt=False, grace=0.3)
    trigger(cfg, store)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    launcher = RayLauncher(num_cpus=0.5, max_restarts=0, local_cpus=2)
    try:
        launcher.start([WorkerSpec(store=url, job="ray", worker=i, encrypt=False) for i in range(2)])
        report = launcher.wait(timeout=600)
    finally:
        launcher.stop()
    assert report.exits == {0: [0], 1: [0]}, report
    assert store.exists(checkpoint_key("ray", 1))


@pytest.mark.s3
@pytest.mark.slow
def test_lambda_handler_real_model_on_encrypted_s3(s3_env, s3_bucket, s3_prefix, monkeypatch):
    """One round of fasterrcnn_mobilenet_v3_large_320_fpn on tiny synthetic PennFudan,
    through an encrypted S3Store on the local RGW server, by the Lambda handler."""
    pytest.importorskip("worker.local_train")
    import base64

    from exchange.crypto import EncryptedStore, Keyring, new_key
    from exchange.stores.url import open_store
    from worker.lambda_handler import handler
    from worker.trigger import checkpoint_key, decode_state, trigger

    key = new_key()
    monkeypatch.setenv("KOFN_KEY", base64.b64encode(key).decode())
    monkeypatch.delenv("KOFN_KEY_FILE", raising=False)
    url = f"s3://{s3_bucket}/{s3_prefix.rstrip('/')}"
    store = EncryptedStore(open_store(url), Keyring([key]))
    cfg = RunConfig(job="rgw", store=url, workers=1, mode="plain", rounds=1,
                    model="fasterrcnn_mobilenet_v3_large_320_fpn", min_size=128, max_size=128,
                    image_size=96, synth_images=3, local_iters=1, batch_size=1, grace=0.2)
    cfg.preflight()
    trigger(cfg, store)
    raw = open_store(url)
    assert raw.get("rgw/manifest.json")[:4] == b"KOFN"  # sealed, not plain JSON
    event = json.loads(LambdaLauncher.payload(WorkerSpec(store=url, job="rgw", worker=0)))
    assert handler(event, None) == {"worker": 0, "rounds": [1], "status": "done"}
    before = decode_state(store.get(checkpoint_key("rgw", 0)))
    after = decode_state(store.get(checkpoint_key("rgw", 1)))
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_ray_capacity_refuses_a_small_local_cluster_and_warns_on_a_remote_one():
    from coding.errors import KofnError
    from worker.launchers.ray_launcher import RayLauncher

    seen = []
    launcher = RayLauncher(num_cpus=1.0, warn=seen.append)
    launcher.check_capacity(2, 2.0, local=True)  # fits: nothing happens
    with pytest.raises(KofnError, match=r"Ray cluster has 2 CPUs, but 5 worker tasks x 1 CPUs = 5 "
                                        r"cannot all run at once; pass --ray-cpus 0.4 or fewer\."):
        launcher.check_capacity(5, 2.0, local=True)
    launcher.check_capacity(5, 2.0, local=False)
    assert len(seen) == 1 and seen[0].startswith("kofn: warning: Ray cluster has 2 CPUs")


@pytest.mark.slow
def test_ray_launcher_refuses_more_tasks_than_a_local_cluster_runs(tmp_path):
    pytest.importorskip("ray")
    import ray

    from coding.errors import KofnError
    from worker.launchers.ray_launcher import RayLauncher

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    launcher = RayLauncher(num_cpus=1.0, max_restarts=0, local_cpus=1)
    specs = [WorkerSpec(store=f"file://{tmp_path}", job="j", worker=i, encrypt=False) for i in range(2)]
    with pytest.raises(KofnError, match="cannot all run at once"):
        launcher.start(specs)
    assert not ray.is_initialized()  # the local cluster it started is shut down again
