"""Synthetic data, the PennFudanPed loader, partition blobs and index splits."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from worker.cli import main
from worker.data import (
    DatasetError,
    PartitionFormatError,
    PennFudanDataset,
    Sample,
    boxes_from_masks,
    deserialize_partition,
    parse_size,
    partition_blobs,
    read_partition,
    serialize_partition,
    split_indices,
    synth_sample,
    train_holdout_split,
    write_synthetic,
)
from worker.data.partition import MAGIC


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_synthetic(root, 6, (80, 64), seed=7)
    return root


@pytest.fixture(scope="module")
def samples(synth_root) -> list[Sample]:
    return PennFudanDataset(synth_root).samples()


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


# --- synthetic generator -------------------------------------------------------------------


def test_synth_sample_masks_are_exact_instances():
    for i in range(10):
        image, ids = synth_sample(np.random.default_rng([1, i]), 96, 64)
        assert image.shape == (64, 96, 3) and image.dtype == np.uint8
        assert ids.shape == (64, 96) and ids.dtype == np.uint8
        present = sorted(set(np.unique(ids).tolist()) - {0})
        assert 1 <= len(present) <= 4
        assert present == list(range(1, len(present) + 1))  # ids are 1..k, none vanished


def test_write_synthetic_is_seeded_and_independent_of_count(tmp_path):
    write_synthetic(tmp_path / "a", 3, (64, 64), seed=5)
    write_synthetic(tmp_path / "b", 5, (64, 64), seed=5)
    write_synthetic(tmp_path / "c", 3, (64, 64), seed=6)
    for sub in ("PNGImages/SynthPed00002.png", "PedMasks/SynthPed00002_mask.png"):
        a = (tmp_path / "a" / sub).read_bytes()
        assert a == (tmp_path / "b" / sub).read_bytes()
        assert a != (tmp_path / "c" / sub).read_bytes()


def test_write_synthetic_progress_and_names(tmp_path):
    seen = []
    stems = write_synthetic(tmp_path, 3, (40, 32), seed=0, progress=lambda d, n: seen.append((d, n)))
    assert stems == ["SynthPed00001", "SynthPed00002", "SynthPed00003"]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with Image.open(tmp_path / "PNGImages" / "SynthPed00001.png") as im:
        assert im.size == (40, 32) and im.mode == "RGB"


@pytest.mark.parametrize("kwargs, exc", [
    ({"count": 0}, ValueError),
    ({"count": 1.5}, TypeError),
    ({"size": (31, 64)}, ValueError),
    ({"size": (64, 4097)}, ValueError),
    ({"size": 64}, TypeError),
    ({"seed": -1}, ValueError),
])
def test_write_synthetic_rejects_bad_arguments(tmp_path, kwargs, exc):
    args = {"count": 1, "size": (64, 64), "seed": 0, **kwargs}
    with pytest.raises(exc, match="Argument"):
        write_synthetic(tmp_path, **args)


def test_parse_size():
    assert parse_size("128x96") == (128, 96)
    assert parse_size("64X64") == (64, 64)
    for bad in ("128", "axb", "12x64", "64x5000", "-64x64"):
        with pytest.raises(ValueError, match="Argument"):
            parse_size(bad)


# --- loader --------------------------------------------------------------------------------


def test_loader_boxes_match_masks(synth_root, samples):
    ds = PennFudanDataset(synth_root)
    assert len(ds) == 6
    for i in range(len(ds)):
        image, target = ds[i]
        s = samples[i]
        assert tuple(image.shape) == (3, 64, 80)
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        n = len(target["boxes"])
        assert n >= 1
        assert target["masks"].shape == (n, 64, 80) and str(target["masks"].dtype) == "torch.uint8"
        assert target["labels"].tolist() == [1] * n
        assert target["iscrowd"].tolist() == [0] * n
        assert target["image_id"] == i
        for box, mask in zip(target["boxes"].tolist(), target["masks"].numpy()):
            assert box == _bbox(mask)
        widths = s.boxes[:, 2] - s.boxes[:, 0]
        heights = s.boxes[:, 3] - s.boxes[:, 1]
        np.testing.assert_array_equal(target["area"].numpy(), widths * heights)
        # The id mask on disk and the split masks agree pixel for pixel.
        with Image.open(synth_root / "PedMasks" / f"{ds.stems[i]}_mask.png") as im:
            ids = np.asarray(im)
        np.testing.assert_array_equal((ids > 0), s.masks.any(axis=0))


def test_loader_ids_and_transforms(synth_root):
    calls = []

    def flip(image, target):
        calls.append(target["image_id"])
        return image.flip(-1), target

    ds = PennFudanDataset(synth_root, ids=[4, 1], transforms=flip)
    assert len(ds) == 2
    _, target = ds[0]
    assert target["image_id"] == 4 and calls == [4]
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(ValueError, match="Argument 'ids'"):
        PennFudanDataset(synth_root, ids=[6])
    with pytest.raises(TypeError, match="Argument 'transforms'"):
        PennFudanDataset(synth_root, transforms=3)


def test_loader_reads_palette_masks_like_the_official_files(tmp_path):
    (tmp_path / "PNGImages").mkdir()
    (tmp_path / "PedMasks").mkdir()
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "PNGImages" / "FudanPed00001.png")
    ids = np.zeros((40, 50), np.uint8)
    ids[5:30, 3:12] = 1
    ids[10:20, 30:41] = 2
    mask = Image.fromarray(ids).convert("P")
    mask.save(tmp_path / "PedMasks" / "FudanPed00001_mask.png")
    s = PennFudanDataset(tmp_path).sample(0)
    np.testing.assert_array_equal(s.boxes, [[3, 5, 12, 30], [30, 10, 41, 20]])


def test_boxes_from_masks_drops_empty_instances():
    masks = np.zeros((3, 10, 10), np.uint8)
    masks[0, 2:5, 3:4] = 1
    masks[2, 9, 9] = 1
    boxes, keep = boxes_from_masks(masks)
    assert keep.tolist() == [True, False, True]
    np.testing.assert_array_equal(boxes, [[3, 2, 4, 5], [9, 9, 10, 10]])


def _layout(tmp_path, with_masks=True) -> Path:
    (tmp_path / "PNGImages").mkdir(parents=True)
    (tmp_path / "PedMasks").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "PNGImages" / "a.png")
    if with_masks:
        Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "PedMasks" / "a_mask.png")
    return tmp_path


def test_loader_errors_name_the_path_and_what_is_missing(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        PennFudanDataset(tmp_path / "nope")
    (tmp_path / "PNGImages").mkdir()
    with pytest.raises(DatasetError, match="no PedMasks/ subfolder"):
        PennFudanDataset(tmp_path)
    (tmp_path / "PedMasks").mkdir()
    with pytest.raises(DatasetError, match="contains no .png images"):
        PennFudanDataset(tmp_path)


def test_loader_errors_on_missing_or_mismatched_mask(tmp_path):
    root = _layout(tmp_path / "x", with_masks=False)
    with pytest.raises(DatasetError, match="lacks the masks of a"):
        PennFudanDataset(root)
    root = _layout(tmp_path / "y")
    with pytest.raises(DatasetError, match="is 9x8 but its image is 8x8"):
        PennFudanDataset(root)[0]


# --- partitions ----------------------------------------------------------------------------


def _same(a: Sample, b: Sample) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.image_id == b.image_id


def test_partition_round_trip(synth_root, samples):
    blob = serialize_partition(samples)
    assert blob[:8] == MAGIC
    for a, b in zip(samples, read_partition(blob), strict=True):
        _same(a, b)
    ds = PennFudanDataset(synth_root)
    pairs = deserialize_partition(blob)
    for i, (image, target) in enumerate(pairs):
        ref_image, ref_target = ds[i]
        assert bool((image == ref_image).all())
        for key in ("boxes", "labels", "masks", "area", "iscrowd"):
            assert bool((target[key] == ref_target[key]).all()), key
        assert target["image_id"] == ref_target["image_id"]
    # Torch pairs serialize to the same bytes as the numpy samples.
    assert serialize_partition([ds[i] for i in range(len(ds))]) == blob


def test_partition_keeps_overlapping_masks_and_empty_images():
    masks = np.zeros((2, 12, 10), np.uint8)
    masks[0, 1:8, 1:6] = 1
    masks[1, 4:11, 3:9] = 1  # overlaps the first
    image = np.arange(12 * 10 * 3, dtype=np.uint8).reshape(12, 10, 3)
    s = Sample(image, masks, np.array([[1, 1, 6, 8], [3, 4, 9, 11]], np.float32),
               np.array([1, 1]), image_id=42)
    empty = Sample(image, np.zeros((0, 12, 10), np.uint8), np.zeros((0, 4), np.float32),
                   np.zeros(0, np.int64), image_id=43)
    out = read_partition(serialize_partition([s, empty]))
    _same(s, out[0])
    _same(empty, out[1])
    assert read_partition(serialize_partition([])) == []


def test_serialize_rejects_inconsistent_samples():
    image = np.zeros((8, 8, 3), np.uint8)
    bad = Sample(image, np.zeros((1, 8, 8), np.uint8), np.zeros((2, 4), np.float32),
                 np.ones(2, np.int64), 0)
    with pytest.raises(ValueError, match="disagree"):
        serialize_partition([bad])
    with pytest.raises(TypeError, match="Expected a Sample"):
        serialize_partition([42])


def _rebuild(manifest: dict, payload: bytes) -> bytes:
    body = json.dumps(manifest).encode()
    return MAGIC + struct.pack("<Q", len(body)) + body + payload


def _split(blob: bytes) -> tuple[dict, bytes]:
    (m,) = struct.unpack_from("<Q", blob, 8)
    return json.loads(blob[16:16 + m]), blob[16 + m:]


@pytest.mark.parametrize("mutate, match", [
    (lambda m, p: (m, p[:-1]), "payload is"),
    (lambda m, p: ({**m, "format": "x"}, p), "not a kofn-partition"),
    (lambda m, p: ({**m, "version": 2}, p), "unsupported version"),
    (lambda m, p: ({**m, "samples": {}}, p), "no 'samples' list"),
    (lambda m, p: ({**m, "samples": [7]}, p), "sample 0 is not an object"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "width": True}]}, p), "width"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "height": 9000}]}, p), "height"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "image": [0, 10**9]}]}, p), "length"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "image": [-1, 20]}]}, p), "offset"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "image": "x"}]}, p), "offset, length"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "image": m["samples"][0]["masks"][0]}]},
                   p), "mode 1"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "image": [1, 20]}]}, p), "not a PNG"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "width": 81}]}, p), "manifest says 81x64"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "boxes": [[0, 0, 999, 1]]}]}, p), "box"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "labels": ["1"]}]}, p), "equal length|label"),
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "masks": []}]}, p), None),  # allowed
    (lambda m, p: ({**m, "samples": [{**m["samples"][0], "masks": [[0, 9]] * 9}]}, p), "one span"),
])
def test_read_partition_rejects_malformed_manifests(samples, mutate, match):
    manifest, payload = _split(serialize_partition(samples[:1]))
    blob = _rebuild(*mutate(manifest, payload))
    if match is None:
        assert read_partition(blob)[0].masks.shape[0] == 0
        return
    with pytest.raises(PartitionFormatError, match=match):
        read_partition(blob)


def test_read_partition_rejects_bad_headers(samples):
    blob = serialize_partition(samples[:1])
    with pytest.raises(PartitionFormatError, match="bad magic"):
        read_partition(b"NOTMAGIC" + blob[8:])
    with pytest.raises(PartitionFormatError, match="shorter than"):
        read_partition(blob[:10])
    with pytest.raises(PartitionFormatError, match="exceeds the blob"):
        read_partition(MAGIC + struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(PartitionFormatError, match="not valid UTF-8 JSON"):
        read_partition(MAGIC + struct.pack("<Q", 3) + b"{x}")
    with pytest.raises(TypeError, match="Argument 'blob'"):
        read_partition("text")


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_corrupted_blobs_decode_or_raise_partition_error(samples, data):
    blob = bytearray(serialize_partition(samples[:1]))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        out = read_partition(bytes(blob[:cut]))
    except PartitionFormatError:
        return
    assert isinstance(out, list)


def test_partition_blobs_follow_the_parts(samples):
    parts = split_indices(len(samples), 3, seed=1)
    blobs = partition_blobs(samples, parts)
    for part, blob in zip(parts, blobs):
        assert [s.image_id for s in read_partition(blob)] == [samples[i].image_id for i in part]
    with pytest.raises(ValueError, match="Argument 'parts'"):
        partition_blobs(samples, [[0, 99]])


# --- index splits --------------------------------------------------------------------------


@given(n=st.integers(1, 300), parts=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_split_indices_is_balanced_cover(n, parts, seed):
    parts = min(parts, n)
    out = split_indices(n, parts, seed)
    assert len(out) == parts
    sizes = [len(p) for p in out]
    assert max(sizes) - min(sizes) <= 1
    assert sorted(np.concatenate(out).tolist()) == list(range(n))
    assert all(np.all(np.diff(p) > 0) for p in out)
    assert all(np.array_equal(a, b) for a, b in zip(out, split_indices(n, parts, seed)))


def test_split_indices_errors():
    with pytest.raises(ValueError, match="Argument 'n_parts' must be at most n_items=3, not 4."):
        split_indices(3, 4, 0)
    with pytest.raises(ValueError, match="Argument 'n_items'"):
        split_indices(0, 1, 0)
    with pytest.raises(ValueError, match="Argument 'seed'"):
        split_indices(3, 1, -1)


def test_train_holdout_split():
    train, hold = train_holdout_split(170, 0.2, seed=3)
    assert len(hold) == 34 and len(train) == 136
    assert set(train.tolist()).isdisjoint(hold.tolist())
    assert sorted(train.tolist() + hold.tolist()) == list(range(170))
    np.testing.assert_array_equal(hold, train_holdout_split(170, 0.2, seed=3)[1])
    assert len(train_holdout_split(5, 0.01, 0)[1]) == 1
    assert len(train_holdout_split(5, 0.0, 0)[1]) == 0
    assert len(train_holdout_split(2, 0.99, 0)[0]) == 1
    with pytest.raises(ValueError, match="Argument 'holdout_fraction'"):
        train_holdout_split(10, 1.0, 0)
    with pytest.raises(ValueError, match="Argument 'n_items'"):
        train_holdout_split(1, 0.5, 0)


# --- CLI -----------------------------------------------------------------------------------


def test_cli_synth_and_info(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["data", "synth", "--out", str(out), "--count", "3", "--size", "48x40",
                 "--seed", "2"]) == 0
    assert len(list((out / "PNGImages").glob("*.png"))) == 3
    assert len(list((out / "PedMasks").glob("*_mask.png"))) == 3
    assert main(["data", "info", "--data", str(out)]) == 0
    assert "3 images" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--size", "8x8"]) == 2
    assert main(["data", "info", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kofn: error: Argument 'width' must be at least 32, not 8.",
                   f"kofn: error: Dataset folder {str(tmp_path / 'missing')!r} does not exist "
                   "or is not a folder."]
    with pytest.raises(SystemExit):
        main(["data", "synth", "--out", str(tmp_path), "--count", "0"])
