"""S3 error translation (unit tests with moto; the real-server tests are in test_stores)."""

from __future__ import annotations

import botocore.exceptions
import pytest
from moto import mock_aws

from exchange.stores.s3 import S3Store, translate_error


@pytest.fixture
def moto_env(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.fixture
def store(moto_env):
    s = S3Store("kofn-moto", "p/")
    s.create_bucket()
    s.create_bucket()  # idempotent
    yield s
    s.close()


def _client_error(code: str, status: int = 400) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": f"msg {code}"},
         "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(("code", "status", "cls"), [
    ("NoSuchKey", 404, FileNotFoundError),
    ("", 404, FileNotFoundError),
    ("NoSuchBucket", 404, FileNotFoundError),
    ("AccessDenied", 403, PermissionError),
    ("InvalidAccessKeyId", 403, PermissionError),
    ("SignatureDoesNotMatch", 403, PermissionError),
    ("PreconditionFailed", 412, FileExistsError),
    ("ConditionalRequestConflict", 409, FileExistsError),
    ("InvalidBucketName", 400, ValueError),
    ("SlowDown", 503, ConnectionError),
    ("SomethingNew", 400, OSError),
])
def test_table(code, status, cls) -> None:
    exc = translate_error(_client_error(code, status), bucket="bkt", key="a/b", op="GetObject")
    assert type(exc) is cls
    assert "\n" not in str(exc)
    if code == "NoSuchBucket":
        assert "'bkt' does not exist" in str(exc)
    elif cls in (FileNotFoundError, FileExistsError):
        assert str(exc) == "a/b"


def test_botocore_errors() -> None:
    exc = translate_error(botocore.exceptions.NoCredentialsError(), bucket="b")
    assert isinstance(exc, PermissionError) and "AWS_ACCESS_KEY_ID" in str(exc)
    exc = translate_error(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
                          bucket="b")
    assert isinstance(exc, ConnectionError)


def test_missing_key(store) -> None:
    with pytest.raises(FileNotFoundError, match="^nope$") as info:
        store.get("nope")
    assert isinstance(info.value.__cause__, botocore.exceptions.ClientError)
    assert not store.exists("nope")
    with pytest.raises(FileNotFoundError):
        store.get_range("nope", 0, 4)


def test_if_absent_conflict(store) -> None:
    store.put("k", b"1", if_absent=True)
    with pytest.raises(FileExistsError, match="^k$"):
        store.put("k", b"2", if_absent=True)
    assert store.get("k") == b"1"


def test_missing_bucket(moto_env) -> None:
    with S3Store("kofn-absent") as s:
        for call in (lambda: s.put("k", b"x"), lambda: s.get("k"), lambda: s.list(),
                     lambda: s.delete(["k"])):
            with pytest.raises(FileNotFoundError, match="Bucket 'kofn-absent' does not exist"):
                call()


def test_no_credentials(monkeypatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                 "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Signing fails before any request is sent; the loopback endpoint is a safety net.
    with S3Store("kofn-nocreds", region="us-east-1", endpoint_url="http://127.0.0.1:9") as s:
        with pytest.raises(PermissionError, match="No AWS credentials"):
            s.get("k")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"bucket": "Bad_Name"}, "Argument 'bucket'"),
    ({"bucket": "ab"}, "Argument 'bucket'"),
    ({"bucket": "ok-bucket", "prefix": "../x/"}, "Argument 'key'"),
    ({"bucket": "ok-bucket", "max_pool": 0}, "Argument 'max_pool' must be at least 1, not 0"),
    ({"bucket": "ok-bucket", "multipart_threshold": 1}, "Argument 'multipart_threshold'"),
    ({"bucket": "ok-bucket", "multipart_chunksize": 65 << 20},
     "Argument 'multipart_chunksize' must be at most multipart_threshold"),
])
def test_constructor_validation(moto_env, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        S3Store(**kwargs)
