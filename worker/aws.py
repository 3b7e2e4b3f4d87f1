"""AWS control plane for the Lambda launcher: region, preflight, deploy, policy and keys.

Everything here goes through boto3 with the standard AWS configuration (environment,
``~/.aws/config`` and ``~/.aws/credentials``, instance roles); nothing takes a credential
as an argument.

- :func:`resolve_region`: ``--region``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``,
  else the profile's region.
- :func:`preflight_lambda`: before a Lambda job uploads anything, the store must be
  ``s3://``, the region and credentials must resolve, and the function must exist and
  reach a key; each failure is one line.
- :func:`deploy`: create the function from an ECR image URI, or update its image and
  configuration.
- :func:`execution_policy`: the least-privilege IAM policy of the function's role,
  scoped to the job's bucket prefix.
- :func:`key_from_aws`: the worker's key from Secrets Manager or SSM Parameter Store.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from coding.errors import KofnError

__all__ = ["AwsError", "deploy", "execution_policy", "key_from_aws", "preflight_lambda",
           "resolve_region"]

#: Function environment variables naming where the key lives (checked in this order).
KEY_SOURCES = ("KOFN_KEY_SECRET", "KOFN_KEY_PARAMETER", "KOFN_KEY", "KOFN_KEY_FILE")


class AwsError(KofnError):
    """An AWS setting or resource a Lambda job needs is missing or refused."""


def resolve_region(region: str | None = None) -> str:
    """The AWS region: ``region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the profile's."""
    if region:
        return region
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(name):
            return os.environ[name]
    import boto3

    found = boto3.session.Session().region_name
    if not found:
        raise AwsError("No AWS region: pass --region, set AWS_REGION, or set a region in "
                       "~/.aws/config.")
    return found


def _bucket_prefix(store: str) -> tuple[str, str]:
    url = urlparse(store)
    if url.scheme != "s3" or not url.netloc:
        raise AwsError(f"Argument 'store' must be an s3:// URL for the lambda launcher, not "
                       f"{store!r}: Lambda workers cannot reach this machine's files.")
    return url.netloc, url.path.strip("/")


def _error_code(err: Exception) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", type(err).__name__))


def preflight_lambda(store: str, function: str, region: str | None = None, *,
                     encrypt: bool = True, lambda_client: Any = None,
                     sts_client: Any = None) -> dict[str, Any]:
    """Check a Lambda job's store, region, credentials and function; upload nothing.

    Parameters
    ----------
    store : str
        The job's store URL (must be ``s3://BUCKET[/PREFIX]``).
    function : str
        The function's name or ARN.
    region : str, optional
        See :func:`resolve_region`.
    encrypt : bool
        Whether the job is encrypted (then the function must name a key source).
    lambda_client, sts_client : botocore clients, optional
        Clients to use (tests pass moto's); made from the standard configuration otherwise.

    Returns
    -------
    dict
        The function's configuration (``get_function``'s ``Configuration``).

    Raises
    ------
    AwsError
        One line naming what is missing.
    """
    import boto3
    import botocore.exceptions as bex

    _bucket_prefix(store)
    region = resolve_region(region)
    if sts_client is None and boto3.session.Session().get_credentials() is None:
        raise AwsError("No AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                       "AWS_PROFILE, or run on a role.")
    sts = sts_client or boto3.client("sts", region_name=region)
    lam = lambda_client or boto3.client("lambda", region_name=region)
    try:
        sts.get_caller_identity()
    except (bex.ClientError, bex.BotoCoreError) as err:
        raise AwsError(f"AWS credentials were refused in {region}: {_error_code(err)}.") from None
    try:
        conf = lam.get_function(FunctionName=function)["Configuration"]
    except bex.ClientError as err:
        if _error_code(err) == "ResourceNotFoundException":
            raise AwsError(f"Lambda function {function!r} does not exist in {region}; create it "
                           f"with 'kofn lambda deploy'.") from None
        raise AwsError(f"Lambda function {function!r} in {region} cannot be read: "
                       f"{_error_code(err)}.") from None
    except bex.BotoCoreError as err:
        raise AwsError(f"Lambda in {region} cannot be reached: {err}.") from None
    env = (conf.get("Environment") or {}).get("Variables") or {}
    if encrypt and not any(env.get(name) for name in KEY_SOURCES):
        raise AwsError(f"Lambda function {function!r} has no key: set KOFN_KEY_SECRET or "
                       f"KOFN_KEY_PARAMETER in its environment ('kofn lambda deploy --key-secret').")
    return conf


def deploy(function: str, image_uri: str, role: str, *, memory_mb: int = 3008,
           timeout_s: int = 900, ephemeral_mb: int = 512, environment: dict[str, str] | None = None,
           max_retries: int = 2, client: Any = None, region: str | None = None) -> str:
    """Create ``function`` from ``image_uri``, or update its image and configuration.

    Returns
    -------
    str
        The function's ARN.
    """
    import boto3
    import botocore.exceptions as bex

    if not image_uri or ".dkr.ecr." not in image_uri:
        raise AwsError(f"Argument 'image_uri' must be an ECR image URI "
                       f"(ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG), not {image_uri!r}.")
    lam = client or boto3.client("lambda", region_name=resolve_region(region))
    conf = {"Role": role, "MemorySize": memory_mb, "Timeout": timeout_s,
            "EphemeralStorage": {"Size": ephemeral_mb},
            "Environment": {"Variables": dict(environment or {})}}
    try:
        lam.get_function(FunctionName=function)
        exists = True
    except bex.ClientError as err:
        if _error_code(err) != "ResourceNotFoundException":
            raise AwsError(f"Lambda function {function!r} cannot be read: {_error_code(err)}.") from None
        exists = False
    if exists:
        lam.update_function_code(FunctionName=function, ImageUri=image_uri)
        lam.get_waiter("function_updated_v2").wait(FunctionName=function)
        arn = lam.update_function_configuration(FunctionName=function, **conf)["FunctionArn"]
        lam.get_waiter("function_updated_v2").wait(FunctionName=function)
    else:
        arn = lam.create_function(FunctionName=function, PackageType="Image",
                                  Code={"ImageUri": image_uri}, **conf)["FunctionArn"]
        lam.get_waiter("function_active_v2").wait(FunctionName=function)
    # Lambda's own retries of a failed asynchronous invocation are the worker restarts.
    lam.put_function_event_invoke_config(FunctionName=function, MaximumRetryAttempts=max_retries)
    return arn


def execution_policy(store: str, *, function_arn: str, key_secret_arn: str | None = None,
                     key_parameter_arn: str | None = None) -> dict[str, Any]:
    """The least-privilege IAM policy of the workers' execution role.

    Objects: get, put and delete under ``PREFIX/`` of the bucket only; listing only with
    an ``s3:prefix`` under it. The function may invoke itself (the chain of invocations
    of a long job) and write its own logs; it may read the one secret or parameter that
    holds the key, and nothing else.
    """
    bucket, prefix = _bucket_prefix(store)
    under = f"{prefix}/" if prefix else ""
    parts = function_arn.split(":")
    if len(parts) < 7 or parts[:3] != ["arn", "aws", "lambda"]:
        raise AwsError(f"Argument 'function_arn' must be a Lambda function ARN, not {function_arn!r}.")
    region, account, name = parts[3], parts[4], parts[6]
    statements: list[dict[str, Any]] = [
        {"Sid": "JobObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": f"arn:aws:s3:::{bucket}/{under}*"},
        {"Sid": "JobListing", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": [f"{under}*"]}}},
        {"Sid": "ContinueInFreshInvocation", "Effect": "Allow", "Action": "lambda:InvokeFunction",
         "Resource": f"arn:aws:lambda:{region}:{account}:function:{name}"},
        {"Sid": "OwnLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{name}:*"},
    ]
    if key_secret_arn:
        statements.append({"Sid": "JobKey", "Effect": "Allow",
                           "Action": "secretsmanager:GetSecretValue", "Resource": key_secret_arn})
    if key_parameter_arn:
        statements.append({"Sid": "JobKeyParameter", "Effect": "Allow",
                           "Action": "ssm:GetParameter", "Resource": key_parameter_arn})
    return {"Version": "2012-10-17", "Statement": statements}


def key_from_aws(key_env: str = "KOFN_KEY", *, client: Any = None) -> bool:
    """Put the key from Secrets Manager or SSM into ``key_env`` when it is not set yet.

    ``KOFN_KEY_SECRET`` names a Secrets Manager secret, ``KOFN_KEY_PARAMETER`` an SSM
    SecureString parameter; either holds what ``KOFN_KEY`` would (base64 keys). The key
    is held in this process's environment only, never written anywhere.

    Returns
    -------
    bool
        Whether a key was fetched.
    """
    import boto3
    import botocore.exceptions as bex

    if os.environ.get(key_env):
        return False
    secret, param = os.environ.get("KOFN_KEY_SECRET"), os.environ.get("KOFN_KEY_PARAMETER")
    if not secret and not param:
        return False
    try:
        if secret:
            sm = client or boto3.client("secretsmanager", region_name=resolve_region())
            value = sm.get_secret_value(SecretId=secret)["SecretString"]
        else:
            ssm = client or boto3.client("ssm", region_name=resolve_region())
            value = ssm.get_parameter(Name=param, WithDecryption=True)["Parameter"]["Value"]
    except (bex.ClientError, bex.BotoCoreError) as err:
        where = f"secret {secret!r}" if secret else f"parameter {param!r}"
        raise AwsError(f"The key's {where} cannot be read: {_error_code(err)}.") from None
    os.environ[key_env] = value.strip()
    return True
