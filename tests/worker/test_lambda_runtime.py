"""The worker as Lambda runs it: the image's entry point (``python -m awslambdaric``) with
only the image's packages importable, against a Runtime API served on 127.0.0.1, running
a real job's worker on the local Ceph RGW server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.worker.lambda_runtime import RuntimeApi, image_layout
from worker.config import RunConfig
from worker.launchers.aws_lambda import LambdaLauncher
from worker.runner import WorkerSpec


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    pytest.importorskip("awslambdaric")
    return image_layout(tmp_path_factory.mktemp("lambda-image"))


def _runtime_env(image, tmp: Path, extra: dict[str, str]) -> dict[str, str]:
    """The image's ENV, with its /tmp moved under ``tmp`` and its task root in place."""
    env = {k: v.replace("/tmp", str(tmp)) for k, v in image.env.items()}
    env["PYTHONPATH"] = os.pathsep.join([str(image.task_root), str(image.site)])
    env["PATH"] = "/usr/bin:/bin"
    env["LAMBDA_TASK_ROOT"] = str(image.task_root)
    env.update(extra)
    return env


def _start(image, env: dict[str, str], tmp: Path) -> subprocess.Popen:
    entry = list(image.entrypoint)
    assert entry[:3] == ["/usr/local/bin/python", "-m", "awslambdaric"], entry
    # The image's python, without this environment's site-packages (-S): only the
    # image's package list (PYTHONPATH) and the standard library can be imported.
    argv = [sys.executable, "-S", *entry[1:], *image.cmd]
    log = open(tmp / "runtime.log", "wb")  # noqa: SIM115 - closed by the caller's Popen
    return subprocess.Popen(argv, cwd=image.task_root, env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)


def test_the_image_lists_threadpoolctl_and_the_runtime_client(image):
    assert {"threadpoolctl", "awslambdaric", "torch", "torchvision", "numpy"} <= set(image.packages)
    assert "ray" not in image.packages and "pytest" not in image.packages


def test_only_the_image_packages_are_importable(image, tmp_path):
    env = _runtime_env(image, tmp_path, {})
    probe = ("import importlib.util as u, sys; "
             "print(sys.flags.no_site, [m for m in ('ray', 'pytest', 'matplotlib', 'moto') "
             "if u.find_spec(m)], [m for m in ('torch', 'threadpoolctl', 'coding', 'worker') "
             "if u.find_spec(m) is None])")
    out = subprocess.run([sys.executable, "-S", "-c", probe], env=env, capture_output=True,
                         text=True, check=True, cwd=image.task_root).stdout.strip()
    assert out == "1 [] []", out


@pytest.mark.s3
@pytest.mark.slow
def test_runtime_client_runs_a_worker_on_rgw(image, s3_server, s3_env, s3_bucket, s3_prefix,
                                             tmp_path):
    pytest.importorskip("worker.local_train")
    from exchange.crypto import EncryptedStore, Keyring, new_key
    from exchange.stores.url import open_store
    from worker.trigger import checkpoint_key, trigger

    key = new_key()
    url = f"s3://{s3_bucket}/{s3_prefix.rstrip('/')}"
    store = EncryptedStore(open_store(url), Keyring([key]))
    cfg = RunConfig(job="ric", store=url, workers=1, mode="plain", rounds=1, model="small_cnn",
                    min_size=64, max_size=64, image_size=64, synth_images=4, local_iters=1,
                    batch_size=2, grace=0.2)
    trigger(cfg, store)
    event = json.loads(LambdaLauncher.payload(WorkerSpec(store=url, job="ric", worker=0)))
    with RuntimeApi() as api:
        env = _runtime_env(image, tmp_path, {
            **s3_server.environ(), "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "kofn-worker", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
            "KOFN_KEY": base64.b64encode(key).decode()})
        proc = _start(image, env, tmp_path)
        try:
            inv = api.invoke(event)
            finished = inv.done.wait(timeout=300)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        log = (tmp_path / "runtime.log").read_text(errors="replace")
        assert api.init_error is None, log[-2000:]
        assert finished, log[-2000:]
    assert inv.error is None, inv.error
    assert inv.result == {"worker": 0, "rounds": [1], "status": "done"}
    assert f"POST /2018-06-01/runtime/invocation/{inv.request_id}/response" in api.requests
    assert store.exists(checkpoint_key("ric", 1))
    # the caches Lambda would have to write went under the image's /tmp
    assert not (image.task_root / "__pycache__").exists()
