"""The AWS Lambda entry point: ``worker.lambda_handler.handler(event, context)``.

The event is a :meth:`worker.runner.WorkerSpec.to_event` dict (what
:class:`worker.launchers.aws_lambda.LambdaLauncher` sends). The key comes from the
function's environment (``KOFN_KEY`` or the event's ``key_env``), from the Secrets Manager
secret or SSM parameter that ``KOFN_KEY_SECRET`` / ``KOFN_KEY_PARAMETER`` name
(:mod:`worker.aws`), or from a key file in the image, never from the event.

A job may run longer than one invocation may (15 minutes). Before each round the
handler compares ``context.get_remaining_time_in_millis()`` with the longest round this
invocation ran; when the next round might not fit, it stops at that round boundary (the
model of the round before is checkpointed in the store), invokes the function again
asynchronously with the same event and returns ``"continued"``. The fresh invocation
rejoins at the latest complete round, so a job runs as a chain of invocations. An
injected crash or a round timeout raises, so Lambda's asynchronous retry restarts the
worker, which rejoins the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from coding.errors import KofnError

__all__ = ["RESERVE_S", "handler", "invoke_self"]

#: Seconds kept in hand after the last round: the session record and the next invocation.
RESERVE_S = 20.0
#: How much longer than the longest round so far the next one may take.
_MARGIN = 1.5


def invoke_self(event: dict[str, Any], context: Any) -> None:
    """Invoke this function again, asynchronously, with ``event`` (the next link of the chain)."""
    import boto3

    from worker.aws import resolve_region

    arn = getattr(context, "invoked_function_arn", None) or os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    client = boto3.client("lambda", region_name=resolve_region())
    resp = client.invoke(FunctionName=arn, InvocationType="Event",
                         Payload=json.dumps(event, sort_keys=True).encode("utf-8"))
    if int(resp.get("StatusCode", 0)) != 202:
        raise RuntimeError(f"Lambda refused the continuation of worker {event.get('worker')}: "
                           f"status {resp.get('StatusCode')}.")


def out_of_time(context: Any, reserve_s: float = RESERVE_S) -> Callable[[int, list], bool]:
    """``stop_before`` for :func:`worker.runner.run_worker`: True when round ``r`` may not fit."""

    def stop(_r: int, records: list[dict[str, Any]]) -> bool:
        longest = max(float(rec.get("wall_s", 0.0)) for rec in records)
        left_s = context.get_remaining_time_in_millis() / 1000.0
        return left_s < _MARGIN * longest + reserve_s

    return stop


def handler(event: dict[str, Any], context: Any = None, *,
            invoke: Callable[[dict[str, Any], Any], None] | None = None) -> dict[str, Any]:
    """Run one worker of a job, to its end or to the end of this invocation's time.

    Parameters
    ----------
    event : dict
        ``{"store", "job", "worker", "attempt", "encrypt", "key_file", "key_env",
        "threads"}``.
    context : LambdaContext, optional
        Lambda's context; without one (or without ``get_remaining_time_in_millis``) the
        worker runs every round in this call.
    invoke : callable, optional
        ``invoke(event, context)`` starts the continuation (default :func:`invoke_self`);
        tests pass one that runs the handler in a thread.

    Returns
    -------
    dict
        ``{"worker": I, "rounds": [round numbers this invocation ran], "status": S}``
        with ``S`` ``"done"``, or ``"continued"`` when a fresh invocation carries on.

        A permanent failure (:data:`worker.runner.PERMANENT_EXIT`) returns ``"failed"``
        with its ``"error"`` line, and a process that lost its index ``"not owner"``:
        retrying either cannot help.

    Raises
    ------
    worker.runner.WorkerCrash, exchange.errors.RoundTimeoutError, ConnectionError
        Transient failures, so that Lambda retries the invocation.
    """
    from worker.aws import key_from_aws
    from worker.runner import WorkerSpec, run_worker

    # Lambda's file system is read-only apart from /tmp; torch and numba look for caches.
    os.environ.setdefault("TORCH_HOME", "/tmp/torch")
    os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba")
    spec = WorkerSpec.from_event(dict(event))
    key_from_aws(spec.key_env)
    timed = context is not None and hasattr(context, "get_remaining_time_in_millis")
    outcome: dict[str, str] = {}

    def stop(r: int, records: list[dict[str, Any]]) -> bool:
        if timed and out_of_time(context)(r, records):
            outcome["next"] = str(r)
            return True
        return False

    try:
        records = run_worker(spec, stop_before=stop)
    except (KofnError, ValueError, OSError) as err:
        from worker.runner import NO_RESTART_EXITS, NOT_OWNER_EXIT, exit_status, one_line

        status = exit_status(err)
        if status not in NO_RESTART_EXITS:
            raise  # transient: Lambda's asynchronous retry is the restart
        # permanent (or another process owns the index): a retry cannot help, so return;
        # the session record already holds the cause for the driver
        return {"worker": spec.worker, "rounds": [], "error": one_line(err),
                "status": "not owner" if status == NOT_OWNER_EXIT else "failed"}
    rounds = [rec["round"] for rec in records]
    if "next" not in outcome:
        return {"worker": spec.worker, "rounds": rounds, "status": "done"}
    (invoke or invoke_self)(dict(event), context)
    return {"worker": spec.worker, "rounds": rounds, "status": "continued",
            "next_round": int(outcome["next"])}
