"""Workers as AWS Lambda invocations of :func:`worker.lambda_handler.handler`.

Each worker is one asynchronous invocation (``InvocationType="Event"``) whose payload is
the worker's :meth:`~worker.runner.WorkerSpec.to_event` dict: store URL, job, worker index
and where the key lives, never the key itself (the function reads it from its own
environment, ``KOFN_KEY``, or a key file baked into the image). Lambda retries a failed
asynchronous invocation on its own (twice by default), which is the restart after a
crash; the retried worker counts its earlier sessions in the store to seed its attempt
and rejoins at the latest complete round. The launcher cannot see exits, so :meth:`poll`
never reports completion: the trigger watches the store instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from coding.errors import KofnError
from worker.config import RunConfig
from worker.launchers import Launcher, LaunchReport
from worker.runner import WorkerSpec

__all__ = ["InvokeError", "LambdaLauncher"]


class InvokeError(KofnError):
    """Lambda refused an invocation."""


class LambdaLauncher(Launcher):
    """Asynchronous Lambda invocations, one per worker.

    Parameters
    ----------
    function : str
        Function name or ARN.
    region : str, optional
        AWS region; default from the standard AWS configuration
        (:func:`worker.aws.resolve_region`: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, profile).
    client : botocore client, optional
        A ``boto3.client("lambda")`` (tests pass one wrapped in botocore's ``Stubber``).
        Credentials come from the standard AWS environment and config.
    """

    def __init__(self, *, function: str, region: str | None = None, client: Any = None):
        if not isinstance(function, str) or not function:
            raise ValueError(f"Argument 'function' must be a non-empty string, not {function!r}.")
        self.function = function
        self.region = region
        self._client = client
        self._report = LaunchReport()

    @property
    def client(self) -> Any:
        """The Lambda client (created on first use)."""
        if self._client is None:
            import boto3

            from worker.aws import resolve_region

            self._client = boto3.client("lambda", region_name=resolve_region(self.region))
        return self._client

    @staticmethod
    def payload(spec: WorkerSpec) -> bytes:
        """The invocation payload of one worker: its spec as JSON, attempt left to the store."""
        event = replace(spec, attempt=None, key_file=None, threads=max(spec.threads, 1)).to_event()
        return json.dumps(event, sort_keys=True).encode("utf-8")

    def start(self, specs: Sequence[WorkerSpec]) -> None:
        """Invoke the function once per spec, asynchronously."""
        for spec in specs:
            if not isinstance(spec, WorkerSpec):
                raise TypeError(f"Argument 'specs' must hold WorkerSpec items, not {type(spec).__name__}.")
            resp = self.client.invoke(FunctionName=self.function, InvocationType="Event",
                                      Payload=self.payload(spec))
            status = int(resp.get("StatusCode", 0))
            if status != 202:
                raise InvokeError(f"Lambda {self.function!r} refused worker {spec.worker}: "
                                  f"status {status}.")
            self._report.exits.setdefault(spec.worker, [])

    def poll(self) -> bool:
        """Always False: asynchronous invocations report through the store only."""
        return False

    @property
    def report(self) -> LaunchReport:
        """Invoked workers (no exit statuses are visible)."""
        return self._report


def from_config(cfg: RunConfig, *, log_dir: str | Path | None = None,
                verbose: bool = False) -> LambdaLauncher:
    """The ``lambda`` launcher of :data:`worker.plugins.LAUNCHERS`."""
    return LambdaLauncher(function=cfg.lambda_function, region=cfg.region)
