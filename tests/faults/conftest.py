"""Writes the fault table (see :mod:`tests.faults.table`) when ``KOFN_FAULTS_TABLE`` is set."""

from __future__ import annotations

import os
from pathlib import Path

from tests.faults import table


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001 - pytest's hook signature
    path = os.environ.get("KOFN_FAULTS_TABLE")
    if path and table.ROWS:
        Path(path).write_text(table.markdown())
