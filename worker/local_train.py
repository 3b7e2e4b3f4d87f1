"""One worker's local training: a few SGD steps from the global weights, returned as a delta.

Each round a worker receives the current global weights (numpy dict), trains ``local_iters``
SGD steps on its partition, and returns the model delta ``new - old`` for every
floating-point tensor (BatchNorm running statistics included) together with its mean loss.
The coded exchange then aggregates the deltas; the worker never sees torch objects cross
the boundary.

The optimizer is created fresh every call, so momentum does not carry over between rounds
(as in local SGD / FedAvg); this keeps a worker stateless, which a serverless function is.

Reproducibility: the batch order comes from ``numpy.random.default_rng([seed, round_index,
partition])`` and torch's generator (used by torchvision's RPN and box samplers) is seeded
the same way inside ``torch.random.fork_rng``, so the caller's global RNG state is untouched
and the same seed, data and weights give the same delta bit for bit (on the same machine and
thread count).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coding.errors import KofnError
from coding.validate import check_int, check_real
from worker.data.partition import as_pairs
from worker.models import build_model, load_numpy_state, state_to_numpy

__all__ = ["LocalResult", "LocalTrainer", "NonFiniteLossError", "seeded", "to_device"]


class NonFiniteLossError(KofnError):
    """Local training produced a NaN or infinite loss (learning rate too high?)."""

    def __init__(self, step: int, value: float):
        self.step = int(step)
        self.value = float(value)
        super().__init__(f"Local training diverged: loss {value} at step {step}; lower the "
                         "learning rate or enable gradient clipping.")


def to_device(pair: tuple[Any, dict[str, Any]], device: Any) -> tuple[Any, dict[str, Any]]:
    """Move an ``(image, target)`` pair's tensors to ``device`` (other fields unchanged)."""
    image, target = pair
    return image.to(device), {k: v.to(device) if hasattr(v, "to") else v for k, v in target.items()}


@contextlib.contextmanager
def seeded(device: Any, seed: int) -> Iterator[None]:
    """Context manager: fork torch's CPU (and this CUDA device's) RNG and seed it.

    torchvision's RPN and box samplers draw from the generator of the device they run on;
    forking keeps the caller's RNG state unchanged.
    """
    import torch

    device = torch.device(device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


@dataclass(frozen=True)
class LocalResult:
    """What one local training run returns.

    Attributes
    ----------
    delta : dict of str to numpy.ndarray
        ``new - old`` for every floating tensor of the state dict.
    mean_loss : float
        Mean over the steps of the summed detection loss, measured before each step.
    losses : tuple of float
        The per-step summed losses.
    n_samples : int
        Number of samples trained on.
    """

    delta: dict[str, np.ndarray]
    mean_loss: float
    losses: tuple[float, ...]
    n_samples: int


class LocalTrainer:
    """Runs local SGD for one model configuration; reusable across rounds.

    Parameters
    ----------
    model_name : str
        A key of :data:`worker.models.MODELS`.
    lr : float
        SGD learning rate (> 0).
    momentum : float
        SGD momentum in [0, 1).
    weight_decay : float
        L2 penalty (>= 0).
    local_iters : int
        SGD steps per call (>= 1).
    batch_size : int
        Images per step (>= 1); batches cycle through a seeded shuffle of the samples.
    seed : int
        Base seed for batch order and torch's samplers.
    num_classes : int
        Classes including background.
    min_size, max_size : int, optional
        Resize overrides passed to :func:`worker.models.build_model`.
    clip_norm : float, optional
        Clip the global gradient norm to this value (helps training from scratch); ``None``
        disables clipping.
    weights_path : str or Path, optional
        A kofn safetensors or torchvision ``.pth`` file, full model or backbone only, for
        :meth:`initial_weights` (see :func:`worker.models.build_model`).
    device : str, optional
        Torch device to train on (``"cpu"`` by default, or for example ``"cuda"``). Weights
        and deltas cross the boundary as numpy either way.
    """

    def __init__(self, model_name: str, *, lr: float = 0.005, momentum: float = 0.9,
                 weight_decay: float = 5e-4, local_iters: int = 1, batch_size: int = 2,
                 seed: int = 0, num_classes: int = 2, min_size: int | None = None,
                 max_size: int | None = None, clip_norm: float | None = 10.0,
                 weights_path: str | Path | None = None, device: str = "cpu"):
        self.lr = check_real("lr", lr, low=0.0, low_open=True)
        self.momentum = check_real("momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.weight_decay = check_real("weight_decay", weight_decay, low=0.0)
        self.local_iters = check_int("local_iters", local_iters, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.seed = check_int("seed", seed, low=0)
        self.clip_norm = None if clip_norm is None else check_real("clip_norm", clip_norm, low=0.0,
                                                                     low_open=True)
        import torch

        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"Argument 'device' must name a torch device, not {device!r}.") from err
        with seeded("cpu", self.seed):
            model = build_model(model_name, num_classes=num_classes, weights_path=weights_path,
                                min_size=min_size, max_size=max_size)
        self.model = model.to(self.device)
        self.model_name = model_name
        self._initial = state_to_numpy(self.model)

    def initial_weights(self) -> dict[str, np.ndarray]:
        """The starting global weights: the weights file, or the init seeded with ``seed``."""
        return {k: v.copy() for k, v in self._initial.items()}

    def train(self, weights: Mapping[str, np.ndarray], samples: Sequence[Any], *,
              round_index: int = 0, partition: int = 0,
              on_step: Callable[[int, int, float], None] | None = None) -> LocalResult:
        """Run ``local_iters`` SGD steps from ``weights`` on ``samples``; return the delta.

        Parameters
        ----------
        weights : mapping of str to numpy.ndarray
            The global weights (keys as :func:`worker.models.state_to_numpy` gives).
        samples : sequence
            Torch pairs ``(image, target)`` or numpy :class:`Sample` objects (for example
            :func:`worker.data.deserialize_partition` output); at least one.
        round_index, partition : int
            Mixed into the seed, so rounds and partitions draw different batches.
        on_step : callable, optional
            Called as ``on_step(step, steps, loss)`` after each step (1-based), for progress.

        Returns
        -------
        LocalResult
            The delta in each tensor's dtype (float32 for the built-in models) and the losses.

        Raises
        ------
        NonFiniteLossError
            If a step's loss is NaN or infinite.
        """
        import torch

        if len(samples) < 1:
            raise ValueError("Argument 'samples' must hold at least 1 sample, not 0.")
        round_index = check_int("round_index", round_index, low=0)
        partition = check_int("partition", partition, low=0)
        pairs = [to_device(p, self.device) for p in as_pairs(samples)]
        load_numpy_state(self.model, weights)
        start = state_to_numpy(self.model)
        rng = np.random.default_rng([self.seed, round_index, partition])
        order: list[int] = []
        losses = []
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay)
        with seeded(self.device, int(rng.integers(2**62))):
            for step in range(self.local_iters):
                while len(order) < self.batch_size:
                    order.extend(rng.permutation(len(pairs)).tolist())
                batch, order = order[:self.batch_size], order[self.batch_size:]
                images = [pairs[i][0] for i in batch]
                targets = [pairs[i][1] for i in batch]
                loss = sum(self.model(images, targets).values())
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise NonFiniteLossError(step, value)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if self.clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
                opt.step()
                losses.append(value)
                if on_step is not None:
                    on_step(step + 1, self.local_iters, value)
        end = state_to_numpy(self.model)
        delta = {k: (end[k] - start[k]).astype(start[k].dtype, copy=False) for k in start}
        return LocalResult(delta=delta, mean_loss=float(np.mean(losses)), losses=tuple(losses),
                           n_samples=len(pairs))

    def partition_deltas(self, weights: Mapping[str, np.ndarray],
                         partitions: Sequence[Sequence[Any]], *, round_index: int = 0,
                         partition_ids: Sequence[int] | None = None) -> list[LocalResult]:
        """One :meth:`train` result per partition, each from the same starting ``weights``.

        For gradient coding: a worker holding partitions ``S`` returns
        ``sum(coefficients[j] * result[j].delta)``, which the runtime forms with
        ``GradientCode.coefficients``.

        Parameters
        ----------
        partitions : sequence of sequences
            Each partition's samples.
        partition_ids : sequence of int, optional
            Global partition numbers, used as the ``partition`` seed of each run so a
            partition trains identically on whichever worker holds it; defaults to
            ``0..len(partitions)-1``.
        """
        ids = list(range(len(partitions))) if partition_ids is None else [int(i) for i in partition_ids]
        if len(ids) != len(partitions):
            raise ValueError(f"Argument 'partition_ids' must have {len(partitions)} entries, not {len(ids)}.")
        return [self.train(weights, part, round_index=round_index, partition=pid)
                for part, pid in zip(partitions, ids)]
