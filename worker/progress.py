"""A run you can watch: workers log their phase, the driver shows every worker live.

Workers write plain log lines (their ``logs/worker-I.log`` under the local launcher):

    round 2/5: training step 3/8 loss 1.2345
    round 2/5: uploading
    round 2/5: waiting for 4 of 5 merged shards
    round 2/5: decoding
    round 2/5: done in 2.31 s

:func:`phase_line` writes them and :func:`parse_phase` reads them back. :class:`LiveView`
tails the log files from the driver: on a terminal it keeps one tqdm bar per worker (the
bar counts the round's training steps, the text names the phase); elsewhere (a pipe, CI)
it prints one status line whenever something changed and at least every
``heartbeat_s`` seconds, so a run is never silent for long. Warnings, errors and restarts
in a worker's log are echoed to the console as they appear.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["LiveView", "Phase", "parse_phase", "phase_line"]

_PHASE_RE = re.compile(r"round (\d+)/(\d+): (\w+)(?: step (\d+)/(\d+))?(.*)$")
_ECHO_RE = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback|error|crashed|timed out|restart)", re.I)


@dataclass(frozen=True)
class Phase:
    """One worker's latest phase: round ``round`` of ``rounds``, ``name``, step counts."""

    round: int
    rounds: int
    name: str
    step: int = 0
    steps: int = 0
    detail: str = ""

    def text(self) -> str:
        """Short human text: ``r2/5 training 3/8`` or ``r2/5 waiting for 4 of 5 merged shards``."""
        core = f"r{self.round}/{self.rounds} {self.name}"
        if self.steps:
            core += f" {self.step}/{self.steps}"
        return f"{core}{self.detail}".rstrip()


def phase_line(r: int, rounds: int, name: str, *, step: int = 0, steps: int = 0,
               detail: str = "") -> str:
    """A worker's log line for its phase (what :func:`parse_phase` reads)."""
    core = f"round {r}/{rounds}: {name}"
    if steps:
        core += f" step {step}/{steps}"
    return f"{core}{' ' + detail if detail else ''}"


def parse_phase(line: str) -> Phase | None:
    """The phase a log line reports, or ``None`` for any other line."""
    m = _PHASE_RE.search(line.strip())
    if not m:
        return None
    r, rounds, name, step, steps, rest = m.groups()
    return Phase(int(r), int(rounds), name, int(step or 0), int(steps or 0), rest.rstrip())


class _Tail:
    """New complete lines of one growing file."""

    def __init__(self, path: Path):
        self.path, self.offset, self.buf = path, 0, b""

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        self.buf += data
        *done, self.buf = self.buf.split(b"\n")
        return [d.decode("utf-8", "replace") for d in done]


class LiveView:
    """The driver's live view of every worker's phase, from the workers' log files.

    Parameters
    ----------
    workers : int
        Number of workers ``n``.
    log_dir : str or Path or None
        Where ``worker-I.log`` files appear; ``None`` (launchers without local logs)
        shows only the driver's own lines and the heartbeat.
    out : file, optional
        Where to draw (default ``sys.stdout``, where the round lines go).
    tty : bool, optional
        Force bars (True) or status lines (False); default: whether ``out`` is a terminal.
    heartbeat_s : float
        Longest silence without a status line when not on a terminal.
    clock : callable
        Seconds, for tests (default :func:`time.monotonic`).
    """

    def __init__(self, workers: int, log_dir: str | Path | None, *, out: IO[str] | None = None,
                 tty: bool | None = None, heartbeat_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.out = out or sys.stdout
        self.tty = bool(self.out.isatty()) if tty is None else tty
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.t0 = clock()
        self.phases: dict[int, Phase | None] = dict.fromkeys(range(workers))
        self.tails = {} if log_dir is None else {
            w: _Tail(Path(log_dir) / f"worker-{w}.log") for w in range(workers)}
        self._last_out = self.t0
        self._last_status = ""
        self._lock = threading.Lock()
        self._bars: dict[int, Any] = {}
        if self.tty:
            from tqdm import tqdm

            self._bars = {w: tqdm(total=0, position=w, file=self.out, leave=False,
                                  desc=f"worker {w}", bar_format="{desc}: {bar:20} {postfix}",
                                  dynamic_ncols=True) for w in range(workers)}
            for bar in self._bars.values():
                bar.set_postfix_str("starting", refresh=True)

    def write(self, line: str) -> None:
        """A line of the driver's (round lines, evaluation), printed above the bars."""
        with self._lock:
            if self._bars:
                from tqdm import tqdm

                tqdm.write(line, file=self.out)
            else:
                print(line, file=self.out, flush=True)
            self._last_out = self.clock()

    @contextlib.contextmanager
    def keepalive(self, what: str) -> Iterator[None]:
        """While the driver itself works (trigger, evaluation), say so every ``heartbeat_s``.

        A background thread prints ``[t s] still WHAT`` whenever nothing was printed for
        ``heartbeat_s`` seconds, so a long model build or evaluation is never silent.
        """
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(min(self.heartbeat_s / 5, 1.0)):
                now = self.clock()
                if now - self._last_out >= self.heartbeat_s:
                    self.write(f"  [{now - self.t0:6.1f} s] still {what}")

        thread = threading.Thread(target=beat, daemon=True, name="kofn-keepalive")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def poll(self) -> None:
        """Read what the workers logged since the last call and redraw."""
        changed = False
        for w, tail in self.tails.items():
            for line in tail.lines():
                phase = parse_phase(line)
                if phase is not None:
                    self.phases[w] = phase
                    changed = True
                elif _ECHO_RE.search(line):
                    self.write(f"worker {w}: {line.strip()}")
        if self._bars:
            if changed:
                self._draw_bars()
            return
        now = self.clock()
        status = self.status()
        if (changed and status != self._last_status) or now - self._last_out >= self.heartbeat_s:
            self.write(f"  [{now - self.t0:6.1f} s] {status}")
            self._last_status = status

    def status(self) -> str:
        """One line with every worker's phase."""
        parts = [f"w{w} {p.text() if p else 'starting'}" for w, p in self.phases.items()]
        return " | ".join(parts)

    def _draw_bars(self) -> None:
        for w, bar in self._bars.items():
            p = self.phases[w]
            if p is None:
                continue
            if p.steps and (bar.total != p.steps or bar.n != p.step):
                bar.reset(total=p.steps)
                bar.update(p.step)
            bar.set_description_str(f"worker {w} r{p.round}/{p.rounds}", refresh=False)
            bar.set_postfix_str(p.name + (f" {p.step}/{p.steps}" if p.steps else "") + p.detail,
                                refresh=True)

    def close(self) -> None:
        """Remove the bars (the driver's lines stay)."""
        for bar in self._bars.values():
            bar.close()
        self._bars = {}
