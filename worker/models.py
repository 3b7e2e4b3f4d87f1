"""Detection models by name, and the bridge between torch state dicts and numpy.

Nothing here downloads: every torchvision builder is called with ``weights=None,
weights_backbone=None``, and starting weights come either from the seeded random
initialisation or from a local file (``weights_path``): a kofn safetensors file or a
torchvision ``.pth`` state dict, for the full model or for the backbone only (see
:mod:`worker.weights`, which maps an ImageNet classifier's names onto each model's backbone
with :data:`BACKBONES`).

A model saved with :func:`save_model` records its name, classes and image size in the
safetensors metadata, so one line rebuilds it for inference::

    from worker.models import load_model; model = load_model("runs/JOB/model.safetensors")

Weights leave this module as ``dict[str, numpy.ndarray]`` (see :func:`state_to_numpy`) or
as one flat float64 vector with a :class:`exchange.layout.TensorLayout` (:func:`flatten`,
re-exported from :mod:`exchange.layout`), never as torch objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coding.errors import KofnError
from coding.validate import check_int
from exchange.layout import TensorLayout, flatten, unflatten
from exchange.registry import Registry

__all__ = [
    "BACKBONES",
    "CLASSES",
    "DEFAULT_MODEL",
    "MODELS",
    "StateMismatchError",
    "build_model",
    "flatten",
    "load_model",
    "load_numpy_state",
    "model_metadata",
    "save_model",
    "save_numpy_state",
    "state_to_numpy",
    "TensorLayout",
    "unflatten",
]

DEFAULT_MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"
#: PennFudanPed's classes, background first (label 0).
CLASSES = ("background", "person")


class StateMismatchError(KofnError, ValueError):
    """Arrays do not match a model's state dict (missing, unexpected or mis-shaped keys)."""


def _size_kwargs(min_size: int | None, max_size: int | None) -> dict[str, int]:
    out = {}
    if min_size is not None:
        out["min_size"] = min_size
    if max_size is not None:
        out["max_size"] = max_size
    return out


def _mobilenet_v3_320(num_classes: int, size: dict[str, int]) -> Any:
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    return fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None,
                                                 num_classes=num_classes, **size)


def _mobilenet_v2(num_classes: int, size: dict[str, int]) -> Any:
    """The paper's model, built as torchvision's detection tutorial builds it."""
    import torchvision
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    backbone = torchvision.models.mobilenet_v2(weights=None).features
    backbone.out_channels = 1280
    anchors = AnchorGenerator(sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
    pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    return FasterRCNN(backbone, num_classes=num_classes, rpn_anchor_generator=anchors,
                      box_roi_pool=pool, **size)


def _resnet50(num_classes: int, size: dict[str, int]) -> Any:
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    return fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes, **size)


def _maskrcnn(num_classes: int, size: dict[str, int]) -> Any:
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes, **size)


def _small_heads(backbone: Any, size: dict[str, int], num_classes: int) -> Any:
    """torchvision's FasterRCNN with small RPN and box-head budgets, for CPU runs at 64-160 px.

    Anchors are sized and shaped for upright pedestrians (height/width 1-3).
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    anchors = AnchorGenerator(sizes=((16, 32, 64, 128),), aspect_ratios=((1.0, 2.0, 3.0),))
    pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    kwargs = {"min_size": 128, "max_size": 160, **size}
    return FasterRCNN(
        backbone, num_classes=None, rpn_anchor_generator=anchors, box_roi_pool=pool,
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, 128),
        box_predictor=FastRCNNPredictor(128, num_classes),
        rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=150,
        rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=100,
        rpn_batch_size_per_image=64, box_batch_size_per_image=64, **kwargs,
    )


def _small_cnn(num_classes: int, size: dict[str, int]) -> Any:
    """A four-layer conv backbone (stride 16, 64 channels) with :func:`_small_heads`.

    Meant for tests and CPU demos at 64-160 px: about 0.5 M parameters.
    """
    from torch import nn

    layers: list[nn.Module] = []
    channels = (3, 16, 32, 64, 64)
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    backbone = nn.Sequential(*layers)
    backbone.out_channels = channels[-1]
    return _small_heads(backbone, size, num_classes)


def _mobilenet_v2_lite(num_classes: int, size: dict[str, int]) -> Any:
    """The paper's MobileNetV2 backbone, reduced to 64 channels by a 1x1 conv, small heads.

    The ImageNet ``mobilenet_v2`` features load onto ``backbone.body`` (see
    :data:`BACKBONES`), so a CPU run at 64-160 px can start from a pretrained backbone;
    the paper's tutorial head (a 62,720 x 1,024 box layer, 64 M parameters) dominates a
    training step of ``fasterrcnn_mobilenet_v2`` at such sizes.
    """
    from collections import OrderedDict

    import torchvision
    from torch import nn

    reduce = nn.Sequential(nn.Conv2d(1280, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
    backbone = nn.Sequential(OrderedDict(body=torchvision.models.mobilenet_v2(weights=None).features,
                                         reduce=reduce))
    backbone.out_channels = 64
    return _small_heads(backbone, size, num_classes)


#: Registry: model name -> builder ``(num_classes, size_kwargs) -> torch.nn.Module``, where
#: ``size_kwargs`` holds ``min_size``/``max_size`` when set. A model of your own is one
#: ``MODELS.register("name", "pkg.module:builder")`` (imported when a job first builds it);
#: ``--model name`` and the config's check then accept it. (A whole training task of your
#: own, data and loss included, is named with ``--task``: :mod:`worker.tasks`.)
MODELS = Registry("model", {
    "fasterrcnn_mobilenet_v3_large_320_fpn": _mobilenet_v3_320,
    "fasterrcnn_mobilenet_v2": _mobilenet_v2,
    "fasterrcnn_resnet50_fpn": _resnet50,
    "maskrcnn_resnet50_fpn": _maskrcnn,
    "small_cnn": _small_cnn,
    "fasterrcnn_mobilenet_v2_lite": _mobilenet_v2_lite,
})


def _backbone_maps() -> dict[str, Any]:
    from worker.weights import BackboneMap

    mobilenet = {"source": "features.", "drop": ("classifier.",)}
    resnet = BackboneMap(source="", target="backbone.body.", drop=("fc.",))
    return {
        "fasterrcnn_mobilenet_v3_large_320_fpn": BackboneMap(target="backbone.body.", **mobilenet),
        "fasterrcnn_mobilenet_v2": BackboneMap(target="backbone.", **mobilenet),
        "fasterrcnn_mobilenet_v2_lite": BackboneMap(target="backbone.body.", **mobilenet),
        "fasterrcnn_resnet50_fpn": resnet,
        "maskrcnn_resnet50_fpn": resnet,
    }


#: Registry: model name -> how an ImageNet classifier's state dict (torchvision's
#: ``mobilenet_v3_large``, ``mobilenet_v2``, ``resnet50``) maps onto its backbone.
#: Models without an entry take full files and ``backbone.*`` files only.
BACKBONES: dict[str, Any] = _backbone_maps()


def build_model(name: str = DEFAULT_MODEL, *, num_classes: int = 2, weights_path: str | Path | None = None,
                min_size: int | None = None, max_size: int | None = None) -> Any:
    """Build a detection model by name, without downloading anything.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`: ``fasterrcnn_mobilenet_v3_large_320_fpn`` (default, fast
        on a CPU), ``fasterrcnn_mobilenet_v2`` (the paper's model), ``fasterrcnn_resnet50_fpn``,
        ``maskrcnn_resnet50_fpn``, ``small_cnn`` (tiny, for tests) or
        ``fasterrcnn_mobilenet_v2_lite`` (the paper's backbone with small heads, for CPUs).
    num_classes : int
        Classes including background; 2 for PennFudanPed (background, person).
    weights_path : str or Path, optional
        A local kofn safetensors or torchvision ``.pth`` file, with the full state dict or
        the backbone only (:func:`worker.weights.apply_weights`); a bare file name is looked
        up in ``$TORCH_HOME/hub/checkpoints``. What the file does not cover keeps torch's
        random initialisation, which depends on ``torch.manual_seed``.
    min_size, max_size : int, optional
        Override the model's internal resize (shorter side / cap on the longer side), so
        small images stay small.

    Returns
    -------
    torch.nn.Module
        The model, in training mode.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the allowed names).
    StateMismatchError
        If the weights file does not match the model.
    """
    if name not in MODELS:
        raise ValueError(f"Argument 'name' must be one of {', '.join(sorted(MODELS.names()))}, "
                         f"not {name!r}.")
    num_classes = check_int("num_classes", num_classes, low=2)
    if min_size is not None:
        min_size = check_int("min_size", min_size, low=16, high=4096)
    if max_size is not None:
        max_size = check_int("max_size", max_size, low=16, high=8192)
    model = MODELS.load(name)(num_classes, _size_kwargs(min_size, max_size))
    if weights_path is not None:
        from worker.weights import apply_weights, read_weights

        apply_weights(model, read_weights(weights_path), BACKBONES.get(name))
    model.train()
    return model


def state_to_numpy(model: Any) -> dict[str, np.ndarray]:
    """Copy every floating-point tensor of ``model.state_dict()`` into numpy.

    Parameters and floating buffers (BatchNorm ``running_mean``/``running_var``) are
    included, in state-dict order. Integer buffers such as BatchNorm's
    ``num_batches_tracked`` are skipped: they only count steps and are not averaged
    across workers (with the default ``momentum=0.1`` BatchNorm never reads them).

    Returns
    -------
    dict of str to numpy.ndarray
        Fresh arrays (not views of the model's memory), in each tensor's dtype.
    """
    return {k: v.detach().cpu().numpy().copy()
            for k, v in model.state_dict().items() if v.is_floating_point()}


def load_numpy_state(model: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Copy ``arrays`` into the model's floating-point state, in place.

    The keys must be exactly those :func:`state_to_numpy` returns for this model, with the
    same shapes; values are cast to each tensor's dtype. Integer buffers are left alone.

    Raises
    ------
    StateMismatchError
        On missing, unexpected or mis-shaped keys (the first few are named).
    """
    import torch

    if not isinstance(arrays, Mapping):
        raise TypeError(f"Argument 'arrays' must be a mapping of name to array, not {type(arrays).__name__}.")
    state = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    missing = [k for k in state if k not in arrays]
    extra = [k for k in arrays if k not in state]
    if missing or extra:
        raise StateMismatchError(f"Weights do not match the model: missing {missing[:3]}"
                                 f"{'...' if len(missing) > 3 else ''}, unexpected {extra[:3]}"
                                 f"{'...' if len(extra) > 3 else ''}.")
    for key, tensor in state.items():
        arr = np.asarray(arrays[key])
        if tuple(arr.shape) != tuple(tensor.shape):
            raise StateMismatchError(f"Weights do not match the model: {key!r} has shape "
                                     f"{tuple(arr.shape)}, the model expects {tuple(tensor.shape)}.")
    with torch.no_grad():
        for key, tensor in state.items():
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(arrays[key])).to(tensor.dtype))


def save_numpy_state(arrays: Mapping[str, np.ndarray], path: str | Path) -> None:
    """Write named arrays to a safetensors file that ``build_model(weights_path=...)`` reads."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def model_metadata(name: str, *, classes: tuple[str, ...] = CLASSES, min_size: int | None = None,
                   max_size: int | None = None, **extra: str) -> dict[str, str]:
    """The safetensors metadata :func:`load_model` rebuilds a model from (all strings)."""
    import json

    meta = {"format": "kofn-model", "model": name, "classes": json.dumps(list(classes)),
            "min_size": "" if min_size is None else str(min_size),
            "max_size": "" if max_size is None else str(max_size)}
    meta.update({k: str(v) for k, v in extra.items()})
    return meta


def save_model(arrays: Mapping[str, np.ndarray], path: str | Path, name: str, *,
               classes: tuple[str, ...] = CLASSES, min_size: int | None = None,
               max_size: int | None = None, **extra: str) -> None:
    """Write a model state with the metadata (name, classes, image size) to rebuild it."""
    from safetensors.numpy import save_file

    meta = model_metadata(name, classes=classes, min_size=min_size, max_size=max_size, **extra)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path), metadata=meta)


def load_model(path: str | Path) -> Any:
    """Rebuild a model saved with :func:`save_model` (or a run's ``model.safetensors``).

    Returns
    -------
    torch.nn.Module
        The model with the file's weights, in evaluation mode, with ``classes`` (tuple of
        str) set as an attribute, so ``model.classes[label]`` names a detection.

    Raises
    ------
    WeightsError
        The file has no kofn model metadata.
    """
    import json

    from safetensors import safe_open

    from worker.weights import WeightsError, read_weights, resolve_weights

    path = resolve_weights(path)
    with safe_open(str(path), framework="numpy") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != "kofn-model" or meta.get("model") not in MODELS:
        raise WeightsError(f"Weights file {str(path)!r} has no kofn model metadata "
                           "(format, model); build the model and pass weights_path instead.")
    classes = tuple(json.loads(meta["classes"]))
    model = build_model(meta["model"], num_classes=len(classes),
                        min_size=int(meta["min_size"]) if meta.get("min_size") else None,
                        max_size=int(meta["max_size"]) if meta.get("max_size") else None)
    load_numpy_state(model, read_weights(path))
    model.classes = classes
    return model.eval()
