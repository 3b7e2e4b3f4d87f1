"""Session fixtures shared by every test package: a real S3 server.

By default the ``s3_server`` fixture starts Ceph RGW on 127.0.0.1 with
``scripts/s3-server start`` (installing it on first use) and stops it at the end if it
started it. To use another endpoint instead (MinIO, AWS), set ``KOFN_S3_ENDPOINT`` (use
``aws`` for AWS's default endpoint), the standard AWS credential variables and optionally
``KOFN_S3_BUCKET``. ``KOFN_SKIP_S3=1`` skips S3 tests explicitly; otherwise a server that
cannot start FAILS the tests with the server's log tail.

Fixtures: ``s3_server`` (session, the endpoint and credentials), ``s3_env`` (those set
in ``os.environ`` for one test), ``s3_bucket`` (session, the bucket name, created),
``s3_prefix`` (a unique key prefix, everything under it deleted after the test) and
``s3_store`` (an ``S3Store`` on that prefix).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "scripts" / "s3-server"
_START_TIMEOUT_S = 900  # first start downloads ~66 MB of packages


@dataclasses.dataclass(frozen=True)
class S3Server:
    """Where the test S3 server is and how to reach it."""

    endpoint_url: str | None
    access_key: str | None
    secret_key: str | None
    region: str
    bucket: str
    started_here: bool

    def environ(self) -> dict[str, str]:
        """The AWS environment variables for this server (for subprocesses too)."""
        env = {"AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.access_key and self.secret_key:
            env["AWS_ACCESS_KEY_ID"] = self.access_key
            env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return env


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SERVER), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _parse_env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export "):].split("=", 1)
            env[name] = value
    return env


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    """The S3 endpoint for tests: ``KOFN_S3_ENDPOINT`` if set, else a local Ceph RGW."""
    if os.environ.get("KOFN_SKIP_S3") == "1":
        pytest.skip("KOFN_SKIP_S3=1")
    bucket = os.environ.get("KOFN_S3_BUCKET", "kofn-test")
    endpoint = os.environ.get("KOFN_S3_ENDPOINT")
    if endpoint:
        yield S3Server(None if endpoint == "aws" else endpoint,
                       os.environ.get("AWS_ACCESS_KEY_ID"),
                       os.environ.get("AWS_SECRET_ACCESS_KEY"),
                       os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), bucket, False)
        return
    was_running = _run("status").returncode == 0
    if not was_running:
        try:
            res = _run("start", timeout=_START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            res = None
        if res is None or res.returncode != 0:
            tail = _run("log").stdout[-4000:]
            err = "timed out" if res is None else res.stderr[-2000:]
            pytest.fail(f"Could not start the local S3 server (scripts/s3-server start): "
                        f"{err}\n{tail}\nSet KOFN_S3_ENDPOINT to use another server, or "
                        f"KOFN_SKIP_S3=1 to skip S3 tests.", pytrace=False)
    env = _parse_env(_run("env").stdout)
    try:
        yield S3Server(env["AWS_ENDPOINT_URL"], env["AWS_ACCESS_KEY_ID"],
                       env["AWS_SECRET_ACCESS_KEY"], env["AWS_DEFAULT_REGION"], bucket,
                       not was_running)
    finally:
        if not was_running and os.environ.get("KOFN_S3_KEEP") != "1":
            _run("stop", timeout=120)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Set the server's AWS variables in ``os.environ`` for one test."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        if s3_server.access_key:
            monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.environ().items():
        monkeypatch.setenv(name, value)
    if not s3_server.endpoint_url:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return s3_server


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    """The test bucket's name, created if missing."""
    from exchange.stores.s3 import S3Store

    with pytest.MonkeyPatch.context() as mp:
        for name, value in s3_server.environ().items():
            mp.setenv(name, value)
        with S3Store(s3_server.bucket) as store:
            store.create_bucket()
    return s3_server.bucket


@pytest.fixture
def s3_prefix(s3_env: S3Server, s3_bucket: str) -> str:
    """A unique key prefix; every object under it is deleted after the test."""
    from exchange.stores.s3 import S3Store

    prefix = f"test-{uuid.uuid4().hex[:12]}/"
    yield prefix
    with S3Store(s3_bucket, prefix) as store:
        store.delete(store.list())


@pytest.fixture
def s3_store(s3_prefix: str, s3_bucket: str):
    """An ``S3Store`` on a fresh prefix of the test bucket (cleaned up afterwards)."""
    from exchange.stores.s3 import S3Store

    with S3Store(s3_bucket, s3_prefix) as store:
        yield store
