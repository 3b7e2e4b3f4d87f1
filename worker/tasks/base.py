"""The :class:`TrainingTask` protocol and how a task named ``"pkg.module:factory"`` loads."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from coding.errors import KofnError

__all__ = ["TaskError", "TrainingTask", "load_task", "resolve_device"]


class TaskError(KofnError, ValueError):
    """A task name does not resolve to a usable task."""


@runtime_checkable
class TrainingTask(Protocol):
    """What a training task provides; the runtime calls nothing else.

    Every worker builds its own task object (``factory()``), so the methods must give the
    same answers on every worker: seed what is random.
    """

    def build_model(self) -> Any:
        """A fresh ``torch.nn.Module`` (the runtime seeds torch first, so every worker
        starts from the same weights)."""

    def partition(self, index: int, count: int) -> Any:
        """The training data of partition ``index`` of ``count`` (one per worker)."""

    def batches(self, data: Any, *, seed: int) -> Iterable[Any]:
        """Batches of one partition's data, in an order drawn from ``seed`` (the runtime
        takes ``local_iters`` of them per round; an endless iterator is fine)."""

    def loss(self, model: Any, batch: Any) -> Any:
        """The scalar loss tensor of ``batch``."""

    def evaluate(self, model: Any) -> dict[str, float]:
        """Held-out metrics of the final model (printed and put in the report)."""


def load_task(name: str) -> TrainingTask:
    """Import ``"pkg.module:factory"`` and call the factory.

    Raises
    ------
    TaskError
        Malformed name, missing module or attribute, or an object lacking a method of
        :class:`TrainingTask`.
    """
    if not isinstance(name, str) or name.count(":") != 1 or not all(name.split(":")):
        raise TaskError(f"Argument 'task' must be 'pkg.module:factory', not {name!r}.")
    module, attr = name.split(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as err:
        raise TaskError(f"Argument 'task' names module {module!r}, which cannot be imported "
                        f"({err.name!r} is missing; is it on PYTHONPATH or installed?).") from None
    except AttributeError:
        raise TaskError(f"Argument 'task': module {module!r} has no {attr!r}.") from None
    task = factory() if callable(factory) else factory
    missing = [m for m in ("build_model", "partition", "batches", "loss", "evaluate")
               if not callable(getattr(task, m, None))]
    if missing:
        raise TaskError(f"Argument 'task' {name!r} gives an object without {', '.join(missing)}; "
                        f"see worker.tasks.TrainingTask.")
    return task


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when torch sees a GPU, else ``"cpu"``; others pass."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
