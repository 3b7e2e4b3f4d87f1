"""Training tasks: loading ``pkg.module:factory`` and refusing what is not a task."""

from __future__ import annotations

import pytest

from worker.config import ConfigError, RunConfig
from worker.tasks import TrainingTask, load_task
from worker.tasks.base import TaskError


class NotATask:
    def build_model(self):
        return None


def test_load_task_checks_the_protocol():
    pytest.importorskip("sklearn")
    task = load_task("examples.digits_task:task")
    assert isinstance(task, TrainingTask)
    with pytest.raises(TaskError, match="'pkg.module:factory'"):
        load_task("examples.digits_task")
    with pytest.raises(TaskError, match="cannot be imported"):
        load_task("kofn_no_such_pkg.mod:task")
    with pytest.raises(TaskError, match="has no 'nope'"):
        load_task("examples.digits_task:nope")
    with pytest.raises(TaskError, match="without partition, batches, loss, evaluate"):
        load_task("tests.worker.test_tasks:NotATask")


def test_config_takes_task_and_device():
    cfg = RunConfig(task="examples.digits_task:task", device="auto", encrypt=False)
    assert cfg.with_job_name("x").job.endswith("-mds-x")
    with pytest.raises(ConfigError, match="Argument 'device' must be"):
        RunConfig(device="gpu0")
    with pytest.raises(ConfigError, match="Argument 'task' must be"):
        RunConfig(task="no-colon")
