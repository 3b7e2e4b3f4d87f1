"""S3 back end (AWS, Ceph RGW, MinIO) on boto3.

Credentials, region and endpoint come from the standard AWS environment and config
(``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ...), never from code.
Every S3 error code is translated to a built-in exception in one table, ``_ERRORS``,
with ``raise ... from err`` (the s3fs approach).

Notes on Ceph RGW (our test server), handled here:

- ``IfMatch`` with a quoted ETag returns 412, so ETags are sent unquoted.
- CompleteMultipartUpload replies with an empty ETag, so ranged reads of a multipart
  object fall back to an unconditional read when there is no ETag to pin.
- Pre-1.36-style checksums are used (``when_required``), which RGW 16 understands.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from coding.validate import check_int, check_real
from exchange.stores.base import Store, check_key

__all__ = ["S3Store", "is_transient", "translate_error"]

log = logging.getLogger(__name__)

_MiB = 1 << 20
_DELETE_BATCH = 1000  # the DeleteObjects limit
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_READ_RETRIES = 4  # an object overwritten during a parallel ranged read is read again

# One table from S3 error code (or bare HTTP status, as HEAD has no body) to a built-in.
_ERRORS: dict[str, type[Exception]] = {
    "NoSuchKey": FileNotFoundError,
    "404": FileNotFoundError,
    "NotFound": FileNotFoundError,
    "NoSuchBucket": FileNotFoundError,
    "NoSuchUpload": FileNotFoundError,
    "AccessDenied": PermissionError,
    "403": PermissionError,
    "Forbidden": PermissionError,
    "InvalidAccessKeyId": PermissionError,
    "SignatureDoesNotMatch": PermissionError,
    "AllAccessDisabled": PermissionError,
    "ExpiredToken": PermissionError,
    "InvalidToken": PermissionError,
    "AccountProblem": PermissionError,
    "PreconditionFailed": FileExistsError,
    "412": FileExistsError,
    "ConditionalRequestConflict": FileExistsError,
    "InvalidBucketName": ValueError,
    "KeyTooLongError": ValueError,
    "EntityTooLarge": ValueError,
    "InvalidArgument": ValueError,
    "InvalidRange": ValueError,
    "SlowDown": ConnectionError,
    "Throttling": ConnectionError,
    "ThrottlingException": ConnectionError,
    "RequestLimitExceeded": ConnectionError,
    "ServiceUnavailable": ConnectionError,
    "InternalError": ConnectionError,
    "500": ConnectionError,
    "502": ConnectionError,
    "503": ConnectionError,
    "504": ConnectionError,
    "RequestTimeout": TimeoutError,
}


def is_transient(err: BaseException) -> bool:
    """Whether a store error may go away by itself (an outage, throttling, a 5xx, a timeout).

    Transient errors are ``ConnectionError`` and ``TimeoutError``; everything else a store
    raises (``FileNotFoundError``, ``PermissionError``, ``ValueError``, ...) is permanent.
    """
    return isinstance(err, (ConnectionError, TimeoutError))


def _rides_outages(method: Callable) -> Callable:
    """Retry ``method`` on transient errors with backoff for up to ``self.outage_s`` seconds.

    botocore retries each request a few times within about a second; this outer loop is
    what carries a call through an outage of tens of seconds (a restarting endpoint, a
    throttled bucket). Every S3 call kofn makes is idempotent: a put overwrites with the
    same bytes, and a conditional put whose first try landed meets ``FileExistsError``,
    which every caller already reads as "somebody wrote it".
    """

    @functools.wraps(method)
    def call(self: S3Store, *args: object, **kwargs: object) -> object:
        deadline = None
        delay = _OUTAGE_MIN_S
        while True:
            try:
                return method(self, *args, **kwargs)
            except (ConnectionError, TimeoutError) as err:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.outage_s
                    log.warning("S3 %s: %s; retrying for up to %.0f s", method.__name__, err,
                                self.outage_s)
                if now >= deadline:
                    raise type(err)(f"{err} (still failing after {self.outage_s:.0f} s of "
                                    "retries)") from err
                time.sleep(min(delay, deadline - now))
                delay = min(2 * delay, _OUTAGE_MAX_S)

    return call


_OUTAGE_MIN_S = 0.25
_OUTAGE_MAX_S = 4.0


def translate_error(err: Exception, *, bucket: str, key: str | None = None,
                    op: str = "request") -> Exception:
    """Return the built-in exception for a boto3/botocore error (to ``raise ... from err``).

    Parameters
    ----------
    err : Exception
        A ``botocore.exceptions.ClientError`` or ``BotoCoreError``.
    bucket : str
        The bucket, named in the message when it is missing.
    key : str, optional
        The object key (without the store prefix), the message of a missing-key error.
    op : str
        The operation, for the message of unmapped errors.
    """
    if isinstance(err, botocore.exceptions.NoCredentialsError):
        return PermissionError(f"No AWS credentials found for bucket {bucket!r}; set "
                               "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE.")
    if isinstance(err, (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError)):
        return TimeoutError(f"S3 {op} on bucket {bucket!r} timed out: {err}")
    if isinstance(err, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return ConnectionError(f"Cannot reach the S3 endpoint for bucket {bucket!r}: {err}")
    if not isinstance(err, botocore.exceptions.ClientError):
        return OSError(f"S3 {op} on bucket {bucket!r} failed: {err}")
    error = err.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = str(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    message = error.get("Message") or code or status
    cls = _ERRORS.get(code) or _ERRORS.get(status) or OSError
    if code == "NoSuchBucket":
        return FileNotFoundError(f"Bucket {bucket!r} does not exist.")
    if cls is FileNotFoundError and key is not None:
        return FileNotFoundError(key)
    if cls is FileExistsError and key is not None:
        return FileExistsError(key)
    if cls is PermissionError:
        return PermissionError(f"S3 refused {op} on bucket {bucket!r}: {code or status} "
                               f"({message}); check the credentials.")
    where = f"{bucket}/{key}" if key is not None else bucket
    return cls(f"S3 {op} on {where!r} failed: {code or status}: {message}")


def _body(data: bytes | bytearray | memoryview) -> bytes | bytearray:
    """A request body botocore accepts, without copying bytes or a bytearray."""
    return data if isinstance(data, (bytes, bytearray)) else bytes(data)


class S3Store(Store):
    """Objects in an S3 bucket, under an optional key prefix.

    Parameters
    ----------
    bucket : str
        The bucket name (it must exist; see :meth:`create_bucket`).
    prefix : str, optional
        Prepended to every key, for example ``"runs/42/"``.
    endpoint_url : str, optional
        Overrides ``AWS_ENDPOINT_URL`` and the AWS default (for RGW or MinIO).
    region : str, optional
        Overrides ``AWS_DEFAULT_REGION`` / the profile's region.
    max_pool : int, optional
        HTTP connections kept per client, also the parallelism of large transfers.
    multipart_threshold : int, optional
        Objects of at least this many bytes (default 64 MiB) are written with a parallel
        multipart upload and read with parallel ranged GETs of ``multipart_chunksize``
        bytes. Smaller objects take one request each way: an exchange round already
        moves ``n`` objects at once, and every part is a billed request (a 33 MB share
        in 8 MiB parts costs 7 PUT requests instead of 1).
    multipart_chunksize : int, optional
        Part size of large transfers (at least 5 MiB, the S3 minimum part size; default
        16 MiB).
    outage_s : float, optional
        How long one call keeps retrying transient errors (refused connections, 5xx,
        throttling, timeouts) before it raises them (default 120 s).

    Notes
    -----
    ``put(..., if_absent=True)`` is a conditional PUT (``If-None-Match: *``) in one
    request whatever the size, since conditional multipart completion is not supported
    everywhere. Each request is retried by botocore's ``adaptive`` retry mode (standard
    retries plus client-side rate limiting when throttled); a call whose retries all fail
    with a transient error (:func:`is_transient`) is tried again with backoff for up to
    ``outage_s`` seconds, so an outage delays a round instead of ending the job.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, max_pool: int = 32,
                 multipart_threshold: int = 64 * _MiB, multipart_chunksize: int = 16 * _MiB,
                 outage_s: float = 120.0):
        if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket):
            raise ValueError("Argument 'bucket' must be a valid S3 bucket name "
                             f"(3-63 lowercase letters, digits, '.' or '-'), not {bucket!r}.")
        if not isinstance(prefix, str):
            raise TypeError(f"Argument 'prefix' must be a string, not {type(prefix).__name__}.")
        if prefix:
            check_key(prefix.rstrip("/"))
        self.max_pool = check_int("max_pool", max_pool, low=1, high=1024)
        self.multipart_threshold = check_int("multipart_threshold", multipart_threshold,
                                             low=5 * _MiB)
        self.multipart_chunksize = check_int("multipart_chunksize", multipart_chunksize,
                                             low=5 * _MiB, high=self.multipart_threshold,
                                             high_name="multipart_threshold")
        self.outage_s = check_real("outage_s", outage_s, low=0.0)
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        config = Config(
            retries={"mode": "adaptive", "max_attempts": 5},
            max_pool_connections=self.max_pool,
            signature_version="s3v4",
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=10,
            read_timeout=60,
        )
        session = boto3.session.Session(region_name=region)
        self.client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._transfer = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=min(self.max_pool, 16),
            use_threads=True,
        )
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, {self.prefix!r})"

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _err(self, err: Exception, key: str | None, op: str) -> Exception:
        return translate_error(err, bucket=self.bucket, key=key, op=op)

    @_rides_outages
    def create_bucket(self) -> None:
        """Create the bucket if it does not exist (for tests and first-time set-up)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except botocore.exceptions.ClientError as err:
            if translate_error(err, bucket=self.bucket).__class__ is not FileNotFoundError:
                raise self._err(err, None, "HeadBucket") from err
        try:
            region = self.client.meta.region_name
            args = {}
            if region and region != "us-east-1" and not self.endpoint_url:
                args["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self.client.create_bucket(Bucket=self.bucket, **args)
        except botocore.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou",):
                return
            raise self._err(err, None, "CreateBucket") from err
        except botocore.exceptions.BotoCoreError as err:
            raise self._err(err, None, "CreateBucket") from err

    @_rides_outages
    def put(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> None:
        """Store ``data`` (a conditional PUT with ``if_absent=True``; multipart if large)."""
        full = self._full(key)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"Argument 'data' must be bytes-like, not {type(data).__name__}.")
        size = memoryview(data).nbytes
        try:
            if if_absent:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=_body(data),
                                       IfNoneMatch="*")
            elif size >= self.multipart_threshold:
                # upload_fileobj aborts the multipart upload on failure: no partial object.
                self.client.upload_fileobj(io.BytesIO(data), self.bucket, full,
                                           Config=self._transfer)
            else:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=_body(data))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
            raise self._err(err, key, "PutObject") from err
        except boto3.exceptions.S3UploadFailedError as err:
            cause = err.__context__ if isinstance(err.__context__, Exception) else err
            raise self._err(cause, key, "multipart upload") from err

    @_rides_outages
    def get(self, key: str) -> bytes | bytearray:
        """Return the object's bytes (a bytearray, not copied again, when it was read in
        parallel ranged GETs)."""
        return self._get(key, None)

    @_rides_outages
    def get_bounded(self, key: str, max_bytes: int) -> bytes | bytearray:
        """``get``, refusing an object over ``max_bytes`` from the first ranged GET's
        ``Content-Range`` (at most ``multipart_threshold`` bytes read), before the rest is
        fetched or its buffer allocated."""
        return self._get(key, check_int("max_bytes", max_bytes, low=0))

    def _get(self, key: str, max_bytes: int | None) -> bytes | bytearray:
        full = self._full(key)
        for _ in range(_READ_RETRIES):
            try:
                return self._get_once(full, key, max_bytes)
            except _Changed:
                continue
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
                raise self._err(err, key, "GetObject") from err
        raise OSError(f"Object {key!r} kept changing while it was read; gave up after "
                      f"{_READ_RETRIES} attempts.")

    def _get_once(self, full: str, key: str = "", max_bytes: int | None = None) -> bytes | bytearray:
        first = self.multipart_threshold if max_bytes is None else min(self.multipart_threshold,
                                                                        max_bytes + 1)
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=full,
                                          Range=f"bytes=0-{first - 1}")
        except botocore.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") != "InvalidRange":
                raise
            resp = self.client.get_object(Bucket=self.bucket, Key=full)  # empty object
            return resp["Body"].read()
        head = resp["Body"].read()
        total = _total_size(resp.get("ContentRange"), len(head))
        if max_bytes is not None and total > max_bytes:
            from exchange.errors import ObjectTooLargeError

            raise ObjectTooLargeError(key or full, total, max_bytes)
        if total <= len(head):
            return head
        etag = (resp.get("ETag") or "").strip('"')
        out = bytearray(total)
        out[: len(head)] = head
        step = self.multipart_chunksize
        ranges = [(s, min(s + step, total)) for s in range(len(head), total, step)]

        def fetch(span: tuple[int, int]) -> None:
            args = {"IfMatch": etag} if etag else {}
            try:
                part = self.client.get_object(Bucket=self.bucket, Key=full,
                                              Range=f"bytes={span[0]}-{span[1] - 1}", **args)
            except botocore.exceptions.ClientError as err:
                if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                    raise _Changed from err
                raise
            body = part["Body"].read()
            if len(body) != span[1] - span[0]:
                raise _Changed
            out[span[0] : span[1]] = body

        for fut in [self._executor().submit(fetch, span) for span in ranges]:
            fut.result()
        return out

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=min(self.max_pool, 16),
                                            thread_name_prefix="kofn-s3")
        return self._pool

    @_rides_outages
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return up to ``length`` bytes of ``key`` from offset ``start`` (one ranged GET)."""
        full = self._full(key)
        start = check_int("start", start, low=0)
        length = check_int("length", length, low=0)
        if length == 0:
            return b""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=full,
                                          Range=f"bytes={start}-{start + length - 1}")
            return resp["Body"].read()
        except botocore.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") == "InvalidRange":
                if self.exists(key):
                    return b""
                raise FileNotFoundError(key) from err
            raise self._err(err, key, "GetObject") from err
        except botocore.exceptions.BotoCoreError as err:
            raise self._err(err, key, "GetObject") from err

    @_rides_outages
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists (one HEAD request)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
            exc = self._err(err, key, "HeadObject")
            if isinstance(exc, FileNotFoundError) and str(exc) == key:
                return False
            raise exc from err
        return True

    @_rides_outages
    def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys starting with ``prefix`` (paginated ListObjectsV2)."""
        if not isinstance(prefix, str):
            raise TypeError(f"Argument 'prefix' must be a string, not {type(prefix).__name__}.")
        cut = len(self.prefix)
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                keys.extend(obj["Key"][cut:] for obj in page.get("Contents", ()))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
            raise self._err(err, None, "ListObjectsV2") from err
        keys.sort()
        return keys

    @_rides_outages
    def delete(self, keys: Iterable[str]) -> None:
        """Delete ``keys`` in batches of 1000 (DeleteObjects); missing keys are ignored."""
        if isinstance(keys, str):
            raise TypeError("Argument 'keys' must be an iterable of keys, not a single string.")
        full = [self._full(k) for k in keys]
        for i in range(0, len(full), _DELETE_BATCH):
            batch = [{"Key": k} for k in full[i : i + _DELETE_BATCH]]
            try:
                resp = self.client.delete_objects(Bucket=self.bucket,
                                                  Delete={"Objects": batch, "Quiet": True})
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
                raise self._err(err, None, "DeleteObjects") from err
            errors = [e for e in resp.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
            if errors:
                first = errors[0]
                fake = botocore.exceptions.ClientError(
                    {"Error": {"Code": first.get("Code"), "Message": first.get("Message")}},
                    "DeleteObjects")
                raise self._err(fake, first.get("Key", "")[len(self.prefix):], "DeleteObjects")

    def close(self) -> None:
        """Close the thread pool and the HTTP connections."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.client.close()


class _Changed(Exception):
    """The object changed between the ranged reads of one ``get``."""


def _total_size(content_range: str | None, got: int) -> int:
    """Total object size from a ``Content-Range: bytes 0-99/1234`` header."""
    if not content_range or "/" not in content_range:
        return got
    total = content_range.rsplit("/", 1)[1]
    return int(total) if total.isdigit() else got


def from_url(url: str, **_options: object) -> S3Store:
    """``s3://bucket/prefix``: an :class:`S3Store`; credentials, region and endpoint come
    from the standard AWS environment."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment or not parts.netloc:
        raise ValueError(f"Argument 'url' must be s3://bucket/prefix, not {url!r}.")
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3Store(parts.netloc, prefix)
