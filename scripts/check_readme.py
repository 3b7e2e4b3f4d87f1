"""Run every command of README.md's ``bash`` blocks as written, on a fresh clone; print a table.

Usage::

    python3 scripts/check_readme.py            # clone HEAD to a temporary folder, make setup, run
    python3 scripts/check_readme.py --here     # run in this checkout (writes runs/, data/, ...)

A command is one line of a ```` ```bash ```` block (a trailing backslash continues it);
``make run`` and ``make test`` are the set-up itself and are not run again. A line ending
with ``# needs: WHAT`` names what a fresh clone lacks and is listed as skipped with that
reason. Each command runs under ``bash`` from the clone's root with ``.venv/bin`` first on
``PATH``; an ``export NAME=value`` line sets ``NAME`` for the commands after it, as in one
shell. The exit status is 1 if any command failed. ``tests/test_readme.py`` runs the
cheap commands (and the training ones with ``--print-config``) in the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_NEEDS = re.compile(r"#\s*needs:\s*(.+)$")


@dataclass(frozen=True)
class Command:
    """One README command: the line as written and why it is skipped (``""``: it runs)."""

    line: str
    skip: str = ""

    @property
    def export(self) -> tuple[str, str] | None:
        """``(NAME, value)`` of an ``export NAME=value`` line, else ``None``."""
        m = re.fullmatch(r"export ([A-Za-z_][A-Za-z0-9_]*)=(\S+)", self.shell)
        return (m.group(1), m.group(2)) if m else None

    @property
    def shell(self) -> str:
        """The command without its trailing comment (a ``#`` after a space, outside quotes)."""
        quote = ""
        for i, ch in enumerate(self.line):
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "#" and (i == 0 or self.line[i - 1].isspace()):
                return self.line[:i].strip()
        return self.line.strip()


def commands(readme: str) -> list[Command]:
    """Every command of the ``bash`` blocks of ``readme``, in order."""
    out: list[Command] = []
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for raw in joined.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            needs = _NEEDS.search(line)
            if needs:
                out.append(Command(line, f"needs {needs.group(1).strip()}"))
            elif re.match(r"make (run|test)\b", line):
                out.append(Command(line, "the set-up itself"))
            else:
                out.append(Command(line))
    return out


def _clone() -> Path:
    where = Path(tempfile.mkdtemp(prefix="kofn-readme-"))
    subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
    print(f"clone: {where}; make setup ...", flush=True)
    subprocess.run(["make", "setup"], cwd=where, check=True, stdout=subprocess.DEVNULL)
    return where


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--here", action="store_true", help="run in this checkout, not a clone")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    args = ap.parse_args(argv)
    where = ROOT if args.here else _clone()
    env = dict(os.environ, PATH=f"{where / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    rows, failed = [], 0
    for cmd in commands((where / "README.md").read_text()):
        if cmd.skip:
            rows.append(("skipped", "", cmd.skip, cmd.shell))
            continue
        if cmd.export:  # the README's shell keeps it for the commands after it
            env[cmd.export[0]] = cmd.export[1]
            rows.append(("ok", "", f"sets {cmd.export[0]}", cmd.shell))
            continue
        print(f"$ {cmd.shell}", flush=True)
        t0 = time.perf_counter()
        try:
            res = subprocess.run(["bash", "-c", cmd.shell], cwd=where, env=env,
                                 timeout=args.timeout, capture_output=True, text=True)
            rc, tail = res.returncode, (res.stderr.strip() or res.stdout.strip())
        except subprocess.TimeoutExpired:
            rc, tail = 124, f"timed out after {args.timeout:g} s"
        took = time.perf_counter() - t0
        last = tail.splitlines()[-1] if tail else ""
        rows.append(("ok" if rc == 0 else f"exit {rc}", f"{took:.1f}", last[:100], cmd.shell))
        failed += rc != 0
    print("\n| result | s | last line | command |\n|---|---:|---|---|")
    for r in rows:
        print("| " + " | ".join(s.replace("|", "\\|") for s in r) + " |")
    print(f"\n{len(rows) - failed} of {len(rows)} fine, {failed} failed ({where})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
