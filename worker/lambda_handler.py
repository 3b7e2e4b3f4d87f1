"""The AWS Lambda entry point: ``worker.lambda_handler.handler(event, context)``.

The event is a :meth:`worker.runner.WorkerSpec.to_event` dict (what
:class:`worker.launchers.aws_lambda.LambdaLauncher` sends). The key comes from the
function's environment (``KOFN_KEY`` or the event's ``key_env``) or a key file in the
image, never from the event. An injected crash or a round timeout raises, so Lambda's
asynchronous retry restarts the worker, which rejoins at the latest complete round.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["handler"]


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run one worker of a job to the end.

    Parameters
    ----------
    event : dict
        ``{"store", "job", "worker", "attempt", "encrypt", "key_file", "key_env",
        "threads"}``.
    context : LambdaContext, optional
        Unused.

    Returns
    -------
    dict
        ``{"worker": I, "rounds": [round numbers this invocation ran], "status": "done"}``.

    Raises
    ------
    worker.runner.WorkerCrash, exchange.errors.RoundTimeoutError
        So that Lambda retries the invocation.
    """
    from worker.runner import WorkerSpec, run_worker

    # Lambda's file system is read-only apart from /tmp; torch and Ray look for caches.
    os.environ.setdefault("TORCH_HOME", "/tmp/torch")
    spec = WorkerSpec.from_event(dict(event))
    records = run_worker(spec)
    return {"worker": spec.worker, "rounds": [rec["round"] for rec in records], "status": "done"}
