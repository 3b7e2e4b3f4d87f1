"""``kofn lambda``: deploy the worker function and print its execution role's policy.

``kofn lambda deploy --image-uri URI --role ARN`` creates the function from a container
image built with ``worker/Dockerfile.lambda`` (or updates its image and configuration),
with the key read from a Secrets Manager secret (``--key-secret``) or an SSM parameter
(``--key-parameter``) at run time instead of a plain environment variable.
``kofn lambda policy --store s3://BUCKET/PREFIX --function-arn ARN`` prints the
least-privilege IAM policy document of the function's execution role as JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def _deploy(args: argparse.Namespace) -> int:
    from worker.aws import AwsError, deploy

    if bool(args.key_secret) == bool(args.key_parameter):
        raise AwsError("Give exactly one of --key-secret and --key-parameter: workers read the "
                       "job's key from there.")
    env = {"KOFN_KEY_SECRET": args.key_secret} if args.key_secret else {
        "KOFN_KEY_PARAMETER": args.key_parameter}
    arn = deploy(args.function, args.image_uri, args.role, memory_mb=args.memory,
                 timeout_s=args.timeout, ephemeral_mb=args.ephemeral, environment=env,
                 region=args.region)
    print(f"deployed {arn} from {args.image_uri} ({args.memory} MB, {args.timeout} s)")
    return 0


def _policy(args: argparse.Namespace) -> int:
    from worker.aws import execution_policy

    doc = execution_policy(args.store, function_arn=args.function_arn,
                           key_secret_arn=args.key_secret_arn,
                           key_parameter_arn=args.key_parameter_arn)
    print(json.dumps(doc, indent=2))
    return 0


def register(subparsers: Any) -> None:
    """Add ``kofn lambda deploy|policy`` to the ``kofn`` command line."""
    p = subparsers.add_parser("lambda", help="deploy the Lambda worker function",
                              description="Deploy the kofn worker function and print its policy.")
    sub = p.add_subparsers(dest="lambda_command", metavar="ACTION", required=True)
    d = sub.add_parser("deploy", help="create or update the function from an ECR image")
    d.add_argument("--image-uri", dest="image_uri", required=True,
                   help="ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG")
    d.add_argument("--role", required=True, help="execution role ARN (see 'kofn lambda policy')")
    d.add_argument("--function", default="kofn-worker")
    d.add_argument("--region", help="default: AWS_REGION, AWS_DEFAULT_REGION or ~/.aws/config")
    d.add_argument("--memory", type=int, default=3008, help="MB (default 3008)")
    d.add_argument("--timeout", type=int, default=900, help="seconds (default 900)")
    d.add_argument("--ephemeral", type=int, default=512, help="MB of /tmp (default 512)")
    d.add_argument("--key-secret", dest="key_secret", help="Secrets Manager secret with the key")
    d.add_argument("--key-parameter", dest="key_parameter", help="SSM parameter with the key")
    d.set_defaults(func=_deploy)
    q = sub.add_parser("policy", help="print the execution role's least-privilege policy")
    q.add_argument("--store", required=True, help="s3://BUCKET/PREFIX of the jobs")
    q.add_argument("--function-arn", dest="function_arn", required=True)
    q.add_argument("--key-secret-arn", dest="key_secret_arn")
    q.add_argument("--key-parameter-arn", dest="key_parameter_arn")
    q.set_defaults(func=_policy)
