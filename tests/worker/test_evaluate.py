"""COCO AP through pycocotools and the mean loss, on tiny synthetic sets."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from worker.data import PennFudanDataset, write_synthetic  # noqa: E402
from worker.evaluate import EvalResult, coco_ap, evaluate, mean_loss, predict  # noqa: E402
from worker.models import build_model, state_to_numpy  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ev")
    write_synthetic(root, 4, (64, 64), seed=2)
    ds = PennFudanDataset(root)
    return [ds[i] for i in range(len(ds))]


def _truth(pairs, shift=0.0):
    targets = [t for _, t in pairs]
    sizes = [tuple(img.shape[-2:]) for img, _ in pairs]
    preds = [{"boxes": t["boxes"].numpy() + shift, "scores": np.ones(len(t["boxes"])),
              "labels": t["labels"].numpy(), "masks": t["masks"].numpy()[:, None].astype(np.float32)}
             for t in targets]
    return targets, preds, sizes


def test_perfect_predictions_give_ap_one(pairs):
    targets, preds, sizes = _truth(pairs)
    assert coco_ap(targets, preds, sizes, "bbox") == (1.0, 1.0)
    assert coco_ap(targets, preds, sizes, "segm") == (1.0, 1.0)


def test_shifted_boxes_lower_ap_and_no_detections_give_zero(pairs):
    targets, preds, sizes = _truth(pairs, shift=6.0)
    ap, ap50 = coco_ap(targets, preds, sizes)
    assert 0.0 <= ap < 1.0 and 0.0 <= ap50 <= 1.0
    empty = [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0)} for _ in targets]
    assert coco_ap(targets, empty, sizes) == (0.0, 0.0)
    # Detections of another class do not count.
    other = [{**p, "labels": np.full(len(p["boxes"]), 2)} for p in _truth(pairs)[1]]
    assert coco_ap(targets, other, sizes) == (0.0, 0.0)


def test_no_ground_truth_gives_nan():
    target = {"boxes": np.zeros((0, 4)), "masks": np.zeros((0, 8, 8))}
    pred = {"boxes": np.array([[0, 0, 4, 4]]), "scores": np.ones(1)}
    ap, ap50 = coco_ap([target], [pred], [(8, 8)])
    assert math.isnan(ap) and math.isnan(ap50)


def test_coco_ap_rejects_bad_arguments(pairs):
    targets, preds, sizes = _truth(pairs)
    with pytest.raises(ValueError, match="Argument 'iou_type'"):
        coco_ap(targets, preds, sizes, "keypoints")
    with pytest.raises(ValueError, match="equal lengths"):
        coco_ap(targets, preds[:1], sizes)


def test_evaluate_small_cnn_returns_unit_interval_numbers(pairs, capsys):
    torch.manual_seed(0)
    model = build_model("small_cnn", min_size=64, max_size=64)
    model.roi_heads.score_thresh = 0.0  # an untrained model scores low; keep its detections
    before = state_to_numpy(model)
    result = evaluate(model, pairs)
    assert isinstance(result, EvalResult) and result.n_images == 4
    assert 0.0 <= result.bbox_ap <= 1.0 and 0.0 <= result.bbox_ap50 <= 1.0
    assert result.segm_ap is None and result.segm_ap50 is None
    assert math.isfinite(result.mean_loss) and result.mean_loss > 0
    assert model.training  # mode restored
    after = state_to_numpy(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)  # BN stats untouched
    assert "Average Precision" not in capsys.readouterr().out  # pycocotools kept quiet
    assert mean_loss(model, pairs, seed=1) == mean_loss(model, pairs, seed=1)
    assert evaluate(model, pairs, with_loss=False).mean_loss is None


def test_evaluate_maskrcnn_reports_segm(pairs):
    torch.manual_seed(0)
    model = build_model("maskrcnn_resnet50_fpn", min_size=64, max_size=64)
    model.roi_heads.detections_per_img = 10
    preds = predict(model, pairs[:2], batch_size=2)
    assert len(preds) == 2 and "masks" in preds[0]
    result = evaluate(model, pairs[:2], with_loss=False)
    assert 0.0 <= result.segm_ap <= 1.0 and 0.0 <= result.segm_ap50 <= 1.0


def test_evaluate_rejects_empty(pairs):
    model = build_model("small_cnn")
    with pytest.raises(ValueError, match="at least 1 sample"):
        evaluate(model, [])
    with pytest.raises(ValueError, match="Argument 'batch_size'"):
        predict(model, pairs, batch_size=0)
