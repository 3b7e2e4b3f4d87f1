"""The Lambda image is built from the lock: its package list is the locked versions."""

from __future__ import annotations

import importlib.util
import shutil
import tomllib
from pathlib import Path

import pytest

from tests.worker.lambda_runtime import DOCKERFILE, REPO, dockerfile_instructions

_spec = importlib.util.spec_from_file_location("lambda_image", REPO / "scripts" / "lambda_image.py")
lambda_image = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lambda_image)


def _locked() -> dict[str, set[str]]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    out: dict[str, set[str]] = {}
    for pkg in lock["package"]:
        out.setdefault(pkg["name"], set()).add(pkg["version"])
    return out


def test_every_listed_package_is_pinned_to_its_locked_version_with_hashes():
    text = lambda_image.REQUIREMENTS.read_text()
    pins = lambda_image.pins(text)
    locked = _locked()
    assert pins
    for name, version, _marker in pins:
        assert version in locked[name.lower().replace("_", "-")], (name, version)
    names = {name for name, _, _ in pins}
    assert {"threadpoolctl", "awslambdaric", "torch", "torchvision", "galois", "boto3"} <= names
    assert text.count("--hash=sha256:") >= len(pins)


def test_the_list_is_what_uv_exports_from_the_lock():
    if shutil.which("uv") is None and not (REPO / ".tools" / "bin" / "uv").exists():
        pytest.skip("uv is not installed")
    assert lambda_image.export() == lambda_image.REQUIREMENTS.read_text(), (
        "worker/lambda-requirements.txt is stale: run scripts/lambda_image.py requirements")


def test_the_dockerfile_installs_the_list_hash_checked_and_caches_under_tmp():
    steps = dockerfile_instructions(DOCKERFILE.read_text())
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "--require-hashes" in runs and "--no-deps" in runs
    assert ("COPY", "worker/lambda-requirements.txt /tmp/lambda-requirements.txt") in steps
    env = {}
    for word, rest in steps:
        if word == "ENV":
            env.update(part.split("=", 1) for part in rest.split())
    for name in ("NUMBA_CACHE_DIR", "TORCH_HOME", "MPLCONFIGDIR", "TRITON_CACHE_DIR",
                 "XDG_CACHE_HOME", "HOME", "TMPDIR"):
        assert Path(env[name]).is_relative_to("/tmp"), name
    assert not any("pip install" in rest and ">=" in rest for word, rest in steps if word == "RUN")
