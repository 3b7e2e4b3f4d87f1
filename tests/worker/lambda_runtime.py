"""Test helpers: the Lambda image's file system and a Runtime API on 127.0.0.1.

:func:`image_layout` reads ``worker/Dockerfile.lambda`` (its requirements file, the code
folders it copies, its ``ENV`` and its entry point) and builds, under a temporary
folder, what the image holds: a ``site-packages`` with links to exactly the files of the
listed distributions (taken from this environment, whose versions the lock fixes), and a
task root with the copied code folders. :class:`RuntimeApi` serves Lambda's Runtime API
(``/2018-06-01/runtime/invocation/next`` and the ``response`` / ``error`` posts) the way
the Lambda service does, since AWS's emulator binary cannot be obtained here.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import queue
import re
import shlex
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "worker" / "Dockerfile.lambda"


@dataclass
class ImageLayout:
    """What the image holds, and how its entry point starts."""

    site: Path
    task_root: Path
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    packages: list[str] = field(default_factory=list)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    lines, out, buf = text.splitlines(), [], ""
    for line in lines:
        if line.lstrip().startswith("#") and not buf:
            continue
        buf += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            if buf.strip():
                word, _, rest = buf.strip().partition(" ")
                out.append((word.upper(), rest.strip()))
            buf = ""
    return out


def _env_pairs(args: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(args))


def image_layout(root: Path) -> ImageLayout:
    """Build the image's site-packages and task root under ``root`` (see the module doc)."""
    from packaging.markers import Marker

    steps = dockerfile_instructions(DOCKERFILE.read_text())
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for w, a in steps if w == "ARG" and "=" in a}
    task_root = root / "task"
    site = root / "site-packages"
    req = None
    for word, rest in steps:
        if word != "COPY":
            continue
        src, dst = rest.split()
        if src.endswith(".txt"):
            req = REPO / src
            continue
        target = task_root / Path(src.rstrip("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(REPO / src.rstrip("/"), target_is_directory=True)
        assert dst.startswith("${FUNCTION_DIR}") or dst.startswith(args.get("FUNCTION_DIR", "?"))
    assert req is not None, "the Dockerfile copies no requirements file"
    packages = []
    for line in req.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line.strip())
        if not m:
            continue
        marker = line.split(";", 1)[1].split("\\")[0].strip() if ";" in line else ""
        if marker and not Marker(marker).evaluate():
            continue
        dist = md.distribution(m.group(1))
        assert dist.version.split("+")[0] == m.group(2), (m.group(1), dist.version)
        packages.append(m.group(1))
        for f in dist.files or ():
            if f.parts[0] == "..":  # scripts installed into bin/, not importable
                continue
            src = Path(dist.locate_file(f))
            dst = site / f
            if src.is_file() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(src)
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    for word, rest in steps:
        if word == "ENV":
            env.update(_env_pairs(rest))
        elif word == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif word == "CMD":
            cmd = json.loads(rest)
    return ImageLayout(site=site, task_root=task_root, env=env, entrypoint=entrypoint, cmd=cmd,
                       packages=packages)


@dataclass
class Invocation:
    """One event handed to the runtime, and what came back."""

    event: dict[str, Any]
    deadline_s: float
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: Any = None


class RuntimeApi:
    """Lambda's Runtime API on 127.0.0.1: hands out queued events, collects the answers."""

    PREFIX = "/2018-06-01/runtime"

    def __init__(self, function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:kofn-worker"):
        self.function_arn = function_arn
        self.pending: queue.Queue[Invocation] = queue.Queue()
        self.by_id: dict[str, Invocation] = {}
        self.init_error: Any = None
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _reply(self, code: int, body: bytes = b"{}", headers: dict[str, str] | None = None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                api.requests.append(f"GET {self.path}")
                if self.path != f"{api.PREFIX}/invocation/next":
                    return self._reply(404)
                inv = api.pending.get()  # blocks, as the service does, until an event comes
                api.by_id[inv.request_id] = inv
                self._reply(200, json.dumps(inv.event).encode(), {
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(inv.deadline_s * 1000)),
                    "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000"})

            def do_POST(self) -> None:  # noqa: N802
                api.requests.append(f"POST {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parsed = json.loads(body) if body else None
                if self.path == f"{api.PREFIX}/init/error":
                    api.init_error = parsed
                    return self._reply(202)
                m = re.match(rf"^{api.PREFIX}/invocation/([^/]+)/(response|error)$", self.path)
                if not m or m.group(1) not in api.by_id:
                    return self._reply(404)
                inv = api.by_id[m.group(1)]
                if m.group(2) == "response":
                    inv.result = parsed
                else:
                    inv.error = parsed
                inv.done.set()
                self._reply(202)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        """``host:port`` for ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> RuntimeApi:
        self.thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def invoke(self, event: dict[str, Any], *, timeout_s: float = 900.0) -> Invocation:
        """Queue one event with ``timeout_s`` of run time; return its invocation."""
        inv = Invocation(event=event, deadline_s=time.time() + timeout_s)
        self.pending.put(inv)
        return inv
