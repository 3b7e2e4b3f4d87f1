"""Starting weights from local files: torchvision .pth and kofn safetensors, full or backbone.

Every .pth here is written by the test from a freshly initialised torchvision module, so
nothing is downloaded; the names and shapes are torchvision's own.
"""

import numpy as np
import pytest
import torch
import torchvision

from worker.models import build_model, load_model, save_model, save_numpy_state, state_to_numpy
from worker.weights import WeightsError, read_weights, resolve_weights


def _float_state(module):
    return {k: v.numpy() for k, v in module.state_dict().items() if v.is_floating_point()}


def _seeded(name, **kw):
    torch.manual_seed(1)
    return build_model(name, **kw)


@pytest.mark.parametrize(("name", "classifier", "target"), [
    ("fasterrcnn_mobilenet_v2", torchvision.models.mobilenet_v2, "backbone."),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", torchvision.models.mobilenet_v3_large, "backbone.body."),
])
def test_imagenet_classifier_pth_fills_the_backbone_only(tmp_path, name, classifier, target):
    torch.manual_seed(7)
    net = classifier()
    path = tmp_path / "imagenet.pth"
    torch.save(net.state_dict(), path)
    src = _float_state(net)
    model = state_to_numpy(_seeded(name, weights_path=path))
    plain = state_to_numpy(_seeded(name))
    for key, arr in src.items():
        if key.startswith("features."):
            np.testing.assert_array_equal(model[target + key[len("features."):]], arr)
    heads = [k for k in model if not k.startswith("backbone.")]
    assert heads and all(np.array_equal(model[k], plain[k]) for k in heads)
    assert not np.array_equal(model[target + "0.0.weight"], plain[target + "0.0.weight"])


def test_resnet50_pth_maps_onto_body(tmp_path):
    torch.manual_seed(8)
    net = torchvision.models.resnet50()
    torch.save(net.state_dict(), tmp_path / "r50.pth")
    model = state_to_numpy(_seeded("fasterrcnn_resnet50_fpn", weights_path=tmp_path / "r50.pth"))
    np.testing.assert_array_equal(model["backbone.body.layer4.2.conv3.weight"],
                                  net.state_dict()["layer4.2.conv3.weight"].numpy())


def test_full_detector_pth_keeps_its_class_head_at_init(tmp_path):
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(9)
    coco = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=91)
    torch.save(coco.state_dict(), tmp_path / "coco.pth")
    model = state_to_numpy(_seeded("fasterrcnn_mobilenet_v3_large_320_fpn",
                                   weights_path=tmp_path / "coco.pth"))
    plain = state_to_numpy(_seeded("fasterrcnn_mobilenet_v3_large_320_fpn"))
    src = _float_state(coco)
    for key in model:
        if key.startswith("roi_heads.box_predictor."):
            np.testing.assert_array_equal(model[key], plain[key])  # 91 classes do not fit 2
        else:
            np.testing.assert_array_equal(model[key], src[key])


def test_full_kofn_file_and_backbone_only_kofn_file(tmp_path):
    torch.manual_seed(3)
    arrays = state_to_numpy(build_model("small_cnn"))
    save_numpy_state({k: v for k, v in arrays.items() if k.startswith("backbone.")},
                     tmp_path / "bb.safetensors")
    torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, tmp_path / "full.pth")
    full = state_to_numpy(_seeded("small_cnn", weights_path=tmp_path / "full.pth"))
    assert all(np.array_equal(full[k], arrays[k]) for k in arrays)
    part = state_to_numpy(_seeded("small_cnn", weights_path=tmp_path / "bb.safetensors"))
    plain = state_to_numpy(_seeded("small_cnn"))
    for key in arrays:
        expect = arrays[key] if key.startswith("backbone.") else plain[key]
        np.testing.assert_array_equal(part[key], expect)


def test_bare_name_is_found_under_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    cache = tmp_path / "th" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), cache / "mobilenet_v2-test.pth")
    monkeypatch.chdir(tmp_path)
    assert resolve_weights("mobilenet_v2-test.pth") == cache / "mobilenet_v2-test.pth"
    build_model("fasterrcnn_mobilenet_v2", weights_path="mobilenet_v2-test.pth")
    with pytest.raises(FileNotFoundError, match="hub"):
        resolve_weights("absent.pth")


def test_bad_files_are_one_line_errors(tmp_path):
    torch.save({"layer": torch.nn.Linear(2, 2)}, tmp_path / "module.pth")  # a pickled object
    with pytest.raises(WeightsError, match="weights_only"):
        read_weights(tmp_path / "module.pth")
    (tmp_path / "junk.bin").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(WeightsError, match="neither safetensors"):
        read_weights(tmp_path / "junk.bin")
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "r50.pth")
    with pytest.raises(WeightsError, match="backbone"):
        build_model("fasterrcnn_mobilenet_v2", weights_path=tmp_path / "r50.pth")
    torch.save(torchvision.models.mobilenet_v2().state_dict(), tmp_path / "v2.pth")
    with pytest.raises(WeightsError, match="no backbone map"):
        build_model("small_cnn", weights_path=tmp_path / "v2.pth")


def test_saved_model_rebuilds_from_its_metadata(tmp_path):
    torch.manual_seed(4)
    arrays = state_to_numpy(build_model("small_cnn", min_size=64, max_size=96))
    save_model(arrays, tmp_path / "m.safetensors", "small_cnn", min_size=64, max_size=96, job="j")
    model = load_model(tmp_path / "m.safetensors")
    assert model.classes == ("background", "person") and not model.training
    assert model.transform.min_size == (64,) and model.transform.max_size == 96
    assert all(np.array_equal(state_to_numpy(model)[k], arrays[k]) for k in arrays)
    with torch.no_grad():
        (det,) = model([torch.rand(3, 64, 80)])
    assert set(det) >= {"boxes", "labels", "scores"}
    save_numpy_state(arrays, tmp_path / "bare.safetensors")
    with pytest.raises(WeightsError, match="no kofn model metadata"):
        load_model(tmp_path / "bare.safetensors")


def test_lite_model_takes_the_imagenet_mobilenet_v2_backbone(tmp_path):
    torch.manual_seed(11)
    net = torchvision.models.mobilenet_v2()
    torch.save(net.state_dict(), tmp_path / "v2.pth")
    model = state_to_numpy(_seeded("fasterrcnn_mobilenet_v2_lite", weights_path=tmp_path / "v2.pth"))
    np.testing.assert_array_equal(model["backbone.body.18.0.weight"],
                                  net.state_dict()["features.18.0.weight"].numpy())
