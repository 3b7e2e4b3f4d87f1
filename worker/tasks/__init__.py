"""Training tasks: what a user brings (model, data, loss, evaluation) to kofn's runtime.

A task is named the way Flower names a ``ClientApp``: ``"pkg.module:factory"``, where
``factory()`` returns an object with the :class:`TrainingTask` methods (``task =`` in the
TOML, ``--task`` on ``kofn train``). The engine owns the rounds, stragglers, catch-up and
checkpoints (:mod:`worker.tasks.runtime`); the task owns the rest.
"""

from __future__ import annotations

from worker.tasks.base import TrainingTask, load_task, resolve_device

__all__ = ["TrainingTask", "load_task", "resolve_device"]
