"""Held-out evaluation: COCO AP through pycocotools, and the mean detection loss.

The COCO ground truth is built in memory from the targets (one category, ``person``),
predictions are converted to COCO results, and ``COCOeval`` runs with its printing
captured. AP is the COCO primary metric AP@[.5:.95] (area ``all``, 100 detections) and AP50
is AP at IoU 0.5 (Lin et al., Microsoft COCO, 2014). Segmentation AP is added for models
that predict masks (Mask R-CNN).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coding.validate import check_int
from worker.data.partition import as_pairs
from worker.local_train import seeded, to_device

__all__ = ["EvalResult", "coco_ap", "evaluate", "mean_loss", "predict"]


@dataclass(frozen=True)
class EvalResult:
    """Evaluation of a model on a held-out set.

    Attributes
    ----------
    bbox_ap, bbox_ap50 : float
        Box AP@[.5:.95] and AP@.5 in [0, 1] (NaN if the set has no ground-truth boxes).
    segm_ap, segm_ap50 : float or None
        Mask AP for models that predict masks, else ``None``.
    mean_loss : float or None
        Mean summed detection loss (``None`` when not computed).
    n_images : int
        Number of images evaluated.
    """

    bbox_ap: float
    bbox_ap50: float
    segm_ap: float | None
    segm_ap50: float | None
    mean_loss: float | None
    n_images: int


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)


def _ground_truth(targets: Sequence[dict[str, Any]], sizes: Sequence[tuple[int, int]],
                  with_masks: bool) -> Any:
    from pycocotools.coco import COCO

    images, anns = [], []
    for img_id, (target, (h, w)) in enumerate(zip(targets, sizes)):
        images.append({"id": img_id, "height": int(h), "width": int(w)})
        boxes = _np(target["boxes"]).reshape(-1, 4)
        masks = _np(target["masks"]) if with_masks else None
        for j, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            ann = {"id": len(anns) + 1, "image_id": img_id, "category_id": 1, "iscrowd": 0,
                   "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)}
            if masks is not None:
                ann["segmentation"] = _rle(masks[j])
                ann["area"] = float(masks[j].sum())
            anns.append(ann)
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": 1, "name": "person"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def coco_ap(targets: Sequence[dict[str, Any]], predictions: Sequence[dict[str, Any]],
            sizes: Sequence[tuple[int, int]], iou_type: str = "bbox") -> tuple[float, float]:
    """COCO AP@[.5:.95] and AP@.5 of per-image predictions against targets.

    Parameters
    ----------
    targets : sequence of dict
        Ground truth per image with ``boxes`` ``(N, 4)`` as ``(x0, y0, x1, y1)`` (and
        ``masks`` ``(N, H, W)`` for ``iou_type="segm"``). Every box counts as a person.
    predictions : sequence of dict
        Per image: ``boxes`` ``(M, 4)``, ``scores`` ``(M,)`` and, for ``segm``, ``masks``
        ``(M, H, W)`` or ``(M, 1, H, W)`` (binarised at 0.5). Labels other than 1 are ignored.
    sizes : sequence of (int, int)
        Each image's ``(height, width)``.
    iou_type : {"bbox", "segm"}
        What to match on.

    Returns
    -------
    (float, float)
        AP@[.5:.95] and AP@.5; 0.0 when there are no detections, NaN when there is no
        ground truth.
    """
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"Argument 'iou_type' must be one of bbox, segm, not {iou_type!r}.")
    if not len(targets) == len(predictions) == len(sizes):
        raise ValueError(f"Arguments 'targets', 'predictions' and 'sizes' must have equal lengths, "
                         f"not {len(targets)}, {len(predictions)} and {len(sizes)}.")
    segm = iou_type == "segm"
    gt = _ground_truth(targets, sizes, with_masks=segm)
    if not gt.dataset["annotations"]:
        return math.nan, math.nan
    results = []
    for img_id, pred in enumerate(predictions):
        boxes = _np(pred["boxes"]).reshape(-1, 4)
        scores = _np(pred["scores"]).reshape(-1)
        labels = _np(pred["labels"]).reshape(-1) if "labels" in pred else np.ones(len(boxes), int)
        masks = _np(pred["masks"]) if segm else None
        for j, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            if int(labels[j]) != 1:
                continue
            res = {"image_id": img_id, "category_id": 1, "score": float(scores[j]),
                   "bbox": [x0, y0, x1 - x0, y1 - y0]}
            if masks is not None:
                res["segmentation"] = _rle(masks[j].reshape(masks.shape[-2:]) >= 0.5)
            results.append(res)
    if not results:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ap, ap50 = (float(v) for v in ev.stats[:2])
    return (max(ap, 0.0), max(ap50, 0.0))


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def predict(model: Any, samples: Sequence[Any], *, batch_size: int = 2) -> list[dict[str, np.ndarray]]:
    """Run the model in eval mode; return numpy predictions per image.

    The model's training/eval mode is restored afterwards.
    """
    import torch

    batch_size = check_int("batch_size", batch_size, low=1)
    device = _device(model)
    pairs = [to_device(p, device) for p in as_pairs(samples)]
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for i in range(0, len(pairs), batch_size):
                for pred in model([p[0] for p in pairs[i:i + batch_size]]):
                    out.append({k: v.detach().cpu().numpy() for k, v in pred.items()})
    finally:
        model.train(was_training)
    return out


def mean_loss(model: Any, samples: Sequence[Any], *, batch_size: int = 2, seed: int = 0) -> float:
    """Mean summed detection loss over ``samples``, without changing the model.

    torchvision detectors return losses only in training mode, so the model runs in training
    mode with every BatchNorm layer switched to eval (so running statistics are not
    updated), under ``torch.no_grad`` and a forked, seeded RNG (the RPN and box samplers draw
    random proposals).
    """
    import torch

    batch_size = check_int("batch_size", batch_size, low=1)
    device = _device(model)
    pairs = [to_device(p, device) for p in as_pairs(samples)]
    if not pairs:
        raise ValueError("Argument 'samples' must hold at least 1 sample, not 0.")
    modes = {m: m.training for m in model.modules()}
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad(), seeded(device, seed):
            for i in range(0, len(pairs), batch_size):
                chunk = pairs[i:i + batch_size]
                losses = model([p[0] for p in chunk], [p[1] for p in chunk])
                total += float(sum(losses.values())) * len(chunk)
                count += len(chunk)
    finally:
        for m, mode in modes.items():
            m.training = mode
    return total / count


def evaluate(model: Any, samples: Sequence[Any], *, batch_size: int = 2,
             with_loss: bool = True) -> EvalResult:
    """COCO box AP (and mask AP for Mask R-CNN) plus the mean loss on a held-out set.

    Parameters
    ----------
    model : torch.nn.Module
        A torchvision detection model.
    samples : sequence
        Torch pairs ``(image, target)`` or numpy :class:`worker.data.Sample` objects.
    batch_size : int
        Images per forward pass.
    with_loss : bool
        Also compute :func:`mean_loss`.
    """
    pairs = as_pairs(samples)
    if not pairs:
        raise ValueError("Argument 'samples' must hold at least 1 sample, not 0.")
    preds = predict(model, pairs, batch_size=batch_size)
    targets = [p[1] for p in pairs]
    sizes = [tuple(p[0].shape[-2:]) for p in pairs]
    ap, ap50 = coco_ap(targets, preds, sizes, "bbox")
    segm_ap = segm_ap50 = None
    if preds and "masks" in preds[0] and all("masks" in t for t in targets):
        segm_ap, segm_ap50 = coco_ap(targets, preds, sizes, "segm")
    loss = mean_loss(model, pairs, batch_size=batch_size) if with_loss else None
    return EvalResult(bbox_ap=ap, bbox_ap50=ap50, segm_ap=segm_ap, segm_ap50=segm_ap50,
                      mean_loss=loss, n_images=len(pairs))
