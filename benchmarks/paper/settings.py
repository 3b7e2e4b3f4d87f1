"""The paper benchmark's settings: the paper's values, and what ``--quick`` shrinks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

#: The paper's three detectors (torchvision's tutorial MobileNetV2 Faster R-CNN first).
PAPER_MODELS = ("fasterrcnn_mobilenet_v2", "fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn")


@dataclass(frozen=True)
class PaperSettings:
    """Every knob of ``python -m benchmarks.paper`` (the defaults are the paper's).

    Attributes
    ----------
    models : tuple of str
        Registry models of Fig 3 (one curve family each).
    workers : tuple of int
        Worker counts of Fig 3; one machine (``n = 1``, the whole training set) is added.
    epochs, batch_size, lr, momentum, weight_decay :
        Training; one epoch is one pass over a worker's partition, and a round (one
        exchange) closes every epoch.
    data : str or None
        A PennFudanPed folder; ``None`` draws ``images`` synthetic images of ``image_size``
        pixels square.
    holdout : float
        Fraction held out for AP.
    min_size, max_size : int or None
        The detectors' internal resize (``None``: torchvision's 800/1333).
    fig4_batches : tuple of int
        Batch sizes of Fig 4 (first model, first worker count).
    lambda_mb : int
        The Lambda memory size each worker's measured peak is held against (the paper's).
    pretrained_model : str
        The model of the pretrained-backbone against random-weights comparison.
    weights : str or None
        Its backbone file (``None``: torchvision's ``mobilenet_v2-b0353104.pth`` from
        ``scripts/fetch_weights.py``).
    coded_model, coded_workers, coded_rounds, coded_images, coded_size : ...
        The coded modes under stragglers (real jobs through a store, see
        :mod:`benchmarks.training`).
    quick : bool
        Shrunk sizes (:func:`quick_settings`), written under ``results/tmp/paper/``.
    out : str or None
        Output folder instead of ``results/paper/`` (or ``results/tmp/paper/``).
    shrunk : tuple of str
        What the quick mode changed, each with its full-run value.
    """

    models: tuple[str, ...] = PAPER_MODELS
    workers: tuple[int, ...] = (5, 7, 9)
    epochs: int = 3
    batch_size: int = 1
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 0.0005
    data: str | None = None
    images: int = 170
    image_size: int = 320
    holdout: float = 0.2
    min_size: int | None = None
    max_size: int | None = None
    seed: int = 0
    fig4_batches: tuple[int, ...] = (1, 2, 4, 8)
    lambda_mb: int = 3008
    pretrained_model: str = "fasterrcnn_mobilenet_v2"
    weights: str | None = None
    coded_model: str = "small_cnn"
    coded_workers: int = 5
    coded_rounds: int = 6
    coded_images: int = 40
    coded_size: int = 64
    quick: bool = False
    out: str | None = None
    shrunk: tuple[str, ...] = field(default_factory=tuple)

    def replace(self, **changes: object) -> PaperSettings:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


def quick_settings(base: PaperSettings) -> PaperSettings:
    """``base`` shrunk to run in about a minute on two busy cores; every change is listed."""
    quick = {
        "models": ("small_cnn",), "workers": (2, 3), "epochs": 2, "images": 20,
        "image_size": 64, "min_size": 64, "max_size": 64, "fig4_batches": (1, 2, 4),
        "pretrained_model": "fasterrcnn_mobilenet_v2_lite", "coded_workers": 3,
        "coded_rounds": 3, "coded_images": 12,
    }
    if base.data is not None:  # real images keep their count; only the resize shrinks
        quick.pop("images")
        quick.pop("image_size")
    notes = []
    for name, value in quick.items():
        old = getattr(base, name)
        if old != value:
            notes.append(f"{name}: {_fmt(value)} (full run: {_fmt(old)})")
    return base.replace(quick=True, shrunk=tuple(notes), **quick)


def _fmt(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return "torchvision's default" if value is None else str(value)
