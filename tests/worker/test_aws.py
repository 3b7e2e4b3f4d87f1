"""Lambda preflight, `kofn lambda deploy`, the execution policy and keys from Secrets
Manager / SSM. No Lambda, IAM, STS, Secrets Manager or SSM service runs here: these
control-plane calls go to moto's in-process AWS mock (``moto.mock_aws``)."""

from __future__ import annotations

import json

import pytest

moto = pytest.importorskip("moto")
import boto3  # noqa: E402

from worker.aws import (  # noqa: E402
    AwsError,
    execution_policy,
    key_from_aws,
    preflight_lambda,
    resolve_region,
)
from worker.cli import main  # noqa: E402

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/kofn-worker:1"
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:kofn-worker"


@pytest.fixture
def aws(monkeypatch, tmp_path):
    """Fake credentials, region eu-west-1 via AWS_REGION only, and moto's mock."""
    for name in ("AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "KOFN_KEY",
                 "KOFN_KEY_SECRET", "KOFN_KEY_PARAMETER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    with moto.mock_aws():
        yield


def _role() -> str:
    iam = boto3.client("iam", region_name="eu-west-1")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "lambda.amazonaws.com"}}]}
    return iam.create_role(RoleName="kofn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def test_region_comes_from_aws_region(aws, monkeypatch):
    assert resolve_region() == "eu-west-1"
    assert resolve_region("us-west-2") == "us-west-2"
    from worker.launchers.aws_lambda import LambdaLauncher

    assert LambdaLauncher(function="f").client.meta.region_name == "eu-west-1"
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(AwsError, match="No AWS region: pass --region, set AWS_REGION"):
        resolve_region()


def test_preflight_errors_are_one_line(aws, monkeypatch):
    with pytest.raises(AwsError, match="must be an s3:// URL for the lambda launcher"):
        preflight_lambda("file:///tmp/store", "kofn-worker")
    with pytest.raises(AwsError, match="'kofn-worker' does not exist in eu-west-1; create it "
                                       "with 'kofn lambda deploy'"):
        preflight_lambda("s3://bucket/jobs", "kofn-worker")
    boto3.client("lambda", region_name="eu-west-1").create_function(
        FunctionName="kofn-worker", Role=_role(), PackageType="Image", Code={"ImageUri": IMAGE})
    with pytest.raises(AwsError, match="has no key: set KOFN_KEY_SECRET or KOFN_KEY_PARAMETER"):
        preflight_lambda("s3://bucket/jobs", "kofn-worker")
    assert preflight_lambda("s3://bucket/jobs", "kofn-worker", encrypt=False)["FunctionName"] \
        == "kofn-worker"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AwsError, match="No AWS credentials"):
        preflight_lambda("s3://bucket/jobs", "kofn-worker")


TRAIN = ["train", "--launcher", "lambda", "--workers", "2", "--mode", "mds", "--k", "2",
         "--model", "small_cnn", "--rounds", "1", "--no-encrypt", "--no-evaluate",
         "--synth-images", "6", "--image-size", "64"]


def test_kofn_train_on_lambda_checks_before_uploading(aws, tmp_path, capsys):
    local = tmp_path / "store"
    assert main([*TRAIN, "--store", str(local), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "must be an s3:// URL for the lambda launcher" in err
    assert not local.exists()
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="jobs", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert main([*TRAIN, "--store", "s3://jobs/pre", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("kofn: error: Lambda function 'kofn-worker' does not exist in eu-west-1; "
                   "create it with 'kofn lambda deploy'.")
    assert s3.list_objects_v2(Bucket="jobs").get("KeyCount", 0) == 0  # nothing uploaded


def test_kofn_lambda_deploy_creates_then_updates(aws, capsys):
    role = _role()
    args = ["lambda", "deploy", "--image-uri", IMAGE, "--role", role, "--key-secret", "kofn/key"]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(f"deployed {ARN} from {IMAGE} (3008 MB, 900 s)")
    lam = boto3.client("lambda", region_name="eu-west-1")
    conf = lam.get_function(FunctionName="kofn-worker")
    assert conf["Code"]["ImageUri"] == IMAGE
    assert conf["Configuration"]["Environment"]["Variables"] == {"KOFN_KEY_SECRET": "kofn/key"}
    assert lam.get_function_event_invoke_config(FunctionName="kofn-worker")[
        "MaximumRetryAttempts"] == 2
    newer = IMAGE.replace(":1", ":2")
    assert main([*args[:3], newer, *args[4:], "--memory", "4096"]) == 0
    conf = lam.get_function(FunctionName="kofn-worker")
    assert conf["Code"]["ImageUri"] == newer
    assert conf["Configuration"]["MemorySize"] == 4096
    assert preflight_lambda("s3://bucket/jobs", "kofn-worker")["MemorySize"] == 4096


def test_kofn_lambda_deploy_bad_arguments(aws, capsys):
    assert main(["lambda", "deploy", "--image-uri", "kofn:latest", "--role", "r",
                 "--key-secret", "s"]) == 2
    assert "must be an ECR image URI" in capsys.readouterr().err
    assert main(["lambda", "deploy", "--image-uri", IMAGE, "--role", "r"]) == 2
    assert "exactly one of --key-secret and --key-parameter" in capsys.readouterr().err


def test_execution_policy_is_scoped_to_the_job_prefix(aws, capsys):
    secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kofn/key-AbCdEf"
    assert main(["lambda", "policy", "--store", "s3://bucket/jobs/team", "--function-arn", ARN,
                 "--key-secret-arn", secret]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["JobObjects"]["Resource"] == "arn:aws:s3:::bucket/jobs/team/*"
    assert by_sid["JobListing"]["Condition"] == {"StringLike": {"s3:prefix": ["jobs/team/*"]}}
    assert by_sid["ContinueInFreshInvocation"]["Resource"] == ARN
    assert by_sid["JobKey"] == {"Sid": "JobKey", "Effect": "Allow",
                                "Action": "secretsmanager:GetSecretValue", "Resource": secret}
    actions = {a for s in doc["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                      else s["Action"])}
    assert not any(a.endswith("*") for a in actions)
    assert all(s["Resource"] != "*" for s in doc["Statement"])
    iam = boto3.client("iam", region_name="eu-west-1")  # IAM accepts the document
    iam.create_policy(PolicyName="kofn-worker", PolicyDocument=json.dumps(doc))
    with pytest.raises(AwsError, match="function_arn"):
        execution_policy("s3://bucket/jobs", function_arn="kofn-worker")


def test_key_from_secrets_manager_or_ssm(aws, monkeypatch):
    import base64
    import os

    from exchange.crypto import Keyring, new_key

    key = base64.b64encode(new_key()).decode()
    boto3.client("secretsmanager", region_name="eu-west-1").create_secret(Name="kofn/key", SecretString=key)
    boto3.client("ssm", region_name="eu-west-1").put_parameter(Name="/kofn/key", Value=key, Type="SecureString")
    monkeypatch.setenv("KOFN_KEY_SECRET", "kofn/key")
    assert key_from_aws() is True and os.environ["KOFN_KEY"] == key
    Keyring.from_env()  # a valid key
    assert key_from_aws() is False  # already there: no second fetch
    monkeypatch.delenv("KOFN_KEY")
    monkeypatch.delenv("KOFN_KEY_SECRET")
    monkeypatch.setenv("KOFN_KEY_PARAMETER", "/kofn/key")
    assert key_from_aws() is True and os.environ["KOFN_KEY"] == key
    monkeypatch.delenv("KOFN_KEY")
    monkeypatch.setenv("KOFN_KEY_PARAMETER", "/kofn/missing")
    with pytest.raises(AwsError, match="The key's parameter '/kofn/missing' cannot be read: "
                                       "ParameterNotFound."):
        key_from_aws()
