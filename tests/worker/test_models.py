"""Model registry and the torch <-> numpy state bridge."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from worker.data import synth_sample  # noqa: E402
from worker.data.pennfudan import Sample, boxes_from_masks, masks_from_ids  # noqa: E402
from worker.models import (  # noqa: E402
    DEFAULT_MODEL,
    MODELS,
    StateMismatchError,
    build_model,
    flatten,
    load_numpy_state,
    save_numpy_state,
    state_to_numpy,
    unflatten,
)

torch.set_num_threads(1)


def _pair(size: int = 64, seed: int = 0):
    image, ids = synth_sample(np.random.default_rng(seed), size, size)
    masks = masks_from_ids(ids)
    boxes, keep = boxes_from_masks(masks)
    return Sample(image, masks[keep], boxes, np.ones(len(boxes), np.int64), seed).to_torch()


def test_registry_names():
    assert set(MODELS.names()) == {"fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v2",
                           "fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "small_cnn",
                           "fasterrcnn_mobilenet_v2_lite"}
    assert DEFAULT_MODEL == "fasterrcnn_mobilenet_v3_large_320_fpn"


def _tiny(num_classes, size):  # a builder of this test file's own
    model = MODELS.load("small_cnn")(num_classes, size)
    model.tiny = True
    return model


def test_a_model_registered_from_a_test_file_builds_and_is_accepted():
    from worker.config import RunConfig

    MODELS.register("tiny_test", _tiny)
    try:
        model = build_model("tiny_test", min_size=64, max_size=64)
        assert model.tiny and model.training
        RunConfig(model="tiny_test", workers=2, synth_images=4, encrypt=False).preflight()
    finally:
        MODELS.unregister("tiny_test")
    with pytest.raises(ValueError, match="Argument 'model' must be one of .*, not 'tiny_test'"):
        RunConfig(model="tiny_test", workers=2, synth_images=4, encrypt=False).preflight()


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="must be one of .*small_cnn.*, not 'yolo'"):
        build_model("yolo")


@pytest.mark.parametrize("kwargs, exc", [
    ({"num_classes": 1}, ValueError),
    ({"num_classes": 2.0}, TypeError),
    ({"min_size": 8}, ValueError),
    ({"max_size": 10**5}, ValueError),
])
def test_build_model_rejects_bad_arguments(kwargs, exc):
    with pytest.raises(exc, match="Argument"):
        build_model("small_cnn", **kwargs)


@pytest.mark.parametrize("name", sorted(MODELS.names()))
def test_every_model_trains_one_step_on_a_tiny_image(name):
    torch.manual_seed(0)
    model = build_model(name, min_size=64, max_size=64)
    image, target = _pair()
    losses = model([image], [target])
    assert "loss_classifier" in losses and "loss_rpn_box_reg" in losses
    if name.startswith("maskrcnn"):
        assert "loss_mask" in losses
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > len(grads) // 2


def test_small_cnn_predicts_in_eval_mode():
    torch.manual_seed(0)
    model = build_model("small_cnn").eval()
    with torch.no_grad():
        (pred,) = model([_pair(96)[0]])
    assert set(pred) == {"boxes", "labels", "scores"}


def test_state_to_numpy_covers_floats_and_skips_counters():
    torch.manual_seed(0)
    model = build_model("small_cnn")
    arrays = state_to_numpy(model)
    state = model.state_dict()
    assert list(arrays) == [k for k, v in state.items() if v.is_floating_point()]
    assert any(k.endswith("running_var") for k in arrays)
    assert not any(k.endswith("num_batches_tracked") for k in arrays)
    assert all(a.dtype == np.float32 for a in arrays.values())
    key = next(iter(arrays))
    arrays[key][...] = 123.0  # a copy, not a view into the model
    assert not torch.all(state[key] == 123.0)


def test_load_numpy_state_round_trip_and_flat_layout():
    torch.manual_seed(0)
    a = build_model("small_cnn")
    torch.manual_seed(1)
    b = build_model("small_cnn")
    wa = state_to_numpy(a)
    flat, layout = flatten(wa)
    # float32 weights (and small integer counters) travel as float32: exactly, half the bytes
    assert flat.dtype == np.float32 and flat.size == sum(v.size for v in wa.values())
    load_numpy_state(b, unflatten(flat, layout))
    wb = state_to_numpy(b)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_same_torch_seed_gives_same_initial_weights():
    torch.manual_seed(3)
    a = state_to_numpy(build_model("small_cnn"))
    torch.manual_seed(3)
    b = state_to_numpy(build_model("small_cnn"))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_load_numpy_state_rejects_mismatches():
    model = build_model("small_cnn")
    arrays = state_to_numpy(model)
    key = next(iter(arrays))
    with pytest.raises(StateMismatchError, match="missing"):
        load_numpy_state(model, {k: v for k, v in arrays.items() if k != key})
    with pytest.raises(StateMismatchError, match="unexpected \\['extra'\\]"):
        load_numpy_state(model, {**arrays, "extra": np.zeros(1)})
    with pytest.raises(StateMismatchError, match=f"{key!r} has shape"):
        load_numpy_state(model, {**arrays, key: np.zeros(3)})
    with pytest.raises(TypeError, match="Argument 'arrays'"):
        load_numpy_state(model, [1, 2])


def test_weights_file_round_trip(tmp_path):
    torch.manual_seed(5)
    arrays = state_to_numpy(build_model("small_cnn"))
    path = tmp_path / "w.safetensors"
    save_numpy_state(arrays, path)
    torch.manual_seed(6)
    loaded = state_to_numpy(build_model("small_cnn", weights_path=path))
    assert all(np.array_equal(arrays[k], loaded[k]) for k in arrays)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model("small_cnn", weights_path=tmp_path / "none.safetensors")
    save_numpy_state({"x": np.zeros(2, np.float32)}, tmp_path / "bad.safetensors")
    with pytest.raises(StateMismatchError):
        build_model("small_cnn", weights_path=tmp_path / "bad.safetensors")
