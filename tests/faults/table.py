"""The fault table: each fault case records what kofn did, for ``docs/faults.md``.

``record`` keeps one row per case; ``tests/faults/conftest.py`` writes the rows as a
markdown table to the path in ``KOFN_FAULTS_TABLE`` at the end of the session (the suite
never writes into the repository by itself)::

    KOFN_FAULTS_TABLE=/tmp/faults.md .venv/bin/python -m pytest -q tests/faults
"""

from __future__ import annotations

ROWS: dict[str, tuple[str, str, str, str]] = {}


def record(fault: str, action: str, delayed: int | str, lost: str, message: str) -> None:
    """One row: the fault, what kofn did, rounds delayed, data lost, the message a user saw."""
    ROWS[fault] = (action, str(delayed), lost, " ".join(message.split()) or "(none)")


def markdown() -> str:
    """The rows as a markdown table, sorted by fault."""
    lines = ["| fault | what kofn did | rounds delayed | data lost | message seen |",
             "|---|---|---|---|---|"]
    for fault in sorted(ROWS):
        action, delayed, lost, message = ROWS[fault]
        message = message.replace("|", "\\|")
        lines.append(f"| {fault} | {action} | {delayed} | {lost} | `{message}` |")
    return "\n".join(lines) + "\n"
