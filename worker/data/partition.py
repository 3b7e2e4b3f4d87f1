"""Splitting a dataset into partitions, and the partition blob format.

The trigger cuts the training set into ``N`` partitions (and, under gradient coding, hands
each worker the ``s + 1`` partitions its code assigns). A partition travels through the
object store as one self-describing blob, never as a pickle::

    offset 0      magic  b"KOFNPRT1"                      8 bytes
    offset 8      manifest length m, uint64 little-endian  8 bytes
    offset 16     manifest, UTF-8 JSON                     m bytes
    offset 16+m   payload: concatenated PNG files          payload_bytes bytes

The manifest is ``{"format": "kofn-partition", "version": 1, "payload_bytes": P,
"samples": [...]}``; each sample is ``{"image_id", "width", "height", "image": [offset,
length], "masks": [[offset, length], ...], "boxes": [[x0, y0, x1, y1], ...], "labels":
[...]}`` with offsets relative to the payload. Images are RGB PNGs and each instance mask is
a 1-bit PNG, so overlapping masks survive exactly. Decoding checks the magic, the lengths,
every field's type and range, the PNG signatures and each PNG's size against the manifest
before decompressing it; anything off raises :class:`PartitionFormatError`.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from coding.errors import KofnError
from coding.validate import check_int, check_real
from worker.data.pennfudan import Sample

__all__ = [
    "MAGIC",
    "PartitionFormatError",
    "as_pairs",
    "as_sample",
    "decoded_bytes",
    "deserialize_partition",
    "partition_blobs",
    "read_partition",
    "serialize_partition",
    "split_indices",
    "train_holdout_split",
]

MAGIC = b"KOFNPRT1"
VERSION = 1
MAX_SIDE = 8192
MAX_INSTANCES = 1000
MAX_MANIFEST = 64 << 20
MAX_DECODED = 8 << 30
"""Decoded bytes a partition may occupy when its job sets no tighter limit."""
_HEAD = struct.Struct("<8sQ")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PartitionFormatError(KofnError, ValueError):
    """A partition blob is malformed: bad magic, lengths, manifest or embedded PNG."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"Malformed partition blob: {reason}")


def split_indices(n_items: int, n_parts: int, seed: int) -> list[np.ndarray]:
    """Shuffle ``range(n_items)`` with ``seed`` and cut it into ``n_parts`` balanced parts.

    Part sizes differ by at most one; every index appears in exactly one part; each part is
    sorted. The same arguments always give the same parts.
    """
    n_items = check_int("n_items", n_items, low=1)
    n_parts = check_int("n_parts", n_parts, low=1, high=n_items, high_name="n_items")
    seed = check_int("seed", seed, low=0)
    order = np.random.default_rng(seed).permutation(n_items)
    return [np.sort(part) for part in np.array_split(order, n_parts)]


def train_holdout_split(n_items: int, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n_items)`` into sorted train and held-out indices.

    The held-out part has ``round(holdout_fraction * n_items)`` items, at least one when the
    fraction is positive, and the train part always keeps at least one.
    """
    n_items = check_int("n_items", n_items, low=2)
    frac = check_real("holdout_fraction", holdout_fraction, low=0.0, high=1.0, high_open=True)
    seed = check_int("seed", seed, low=0)
    n_hold = min(max(int(round(frac * n_items)), 1 if frac > 0 else 0), n_items - 1)
    order = np.random.default_rng(seed).permutation(n_items)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


def as_sample(item: Sample | tuple[Any, dict[str, Any]], image_id: int = 0) -> Sample:
    """Convert a torchvision pair ``(image, target)`` to a :class:`Sample`; pass Samples through.

    A float image in [0, 1] is scaled to ``uint8`` by rounding, which is lossless for images
    that came from 8-bit files.
    """
    if isinstance(item, Sample):
        return item
    if not isinstance(item, tuple | list) or len(item) != 2 or not isinstance(item[1], dict):
        raise TypeError(f"Expected a Sample or an (image, target) pair, not {type(item).__name__}.")
    image, target = item
    arr = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError(f"Argument 'image' must have shape (3, H, W), not {arr.shape}.")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    masks = np.asarray(target.get("masks", np.zeros((0,) + arr.shape[1:], np.uint8)))
    return Sample(
        image=np.ascontiguousarray(arr.transpose(1, 2, 0)),
        masks=(masks != 0).astype(np.uint8),
        boxes=np.asarray(target["boxes"], dtype=np.float32).reshape(-1, 4),
        labels=np.asarray(target["labels"], dtype=np.int64).reshape(-1),
        image_id=int(target.get("image_id", image_id)),
    )


def as_pairs(samples: Sequence[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Return torchvision pairs ``(image, target)`` for Samples or pairs (pairs pass through)."""
    pairs = []
    for pos, item in enumerate(samples):
        if isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[1], dict):
            pairs.append((item[0], item[1]))
        else:
            pairs.append(as_sample(item, image_id=pos).to_torch())  # TypeError if neither
    return pairs


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def serialize_partition(samples: Iterable[Sample | tuple[Any, dict[str, Any]]]) -> bytes:
    """Encode samples (numpy :class:`Sample` or torch pairs) as one partition blob.

    Raises
    ------
    ValueError
        If a sample's arrays disagree in shape (masks vs image, boxes vs labels).
    """
    payload = io.BytesIO()
    records = []

    def put(data: bytes) -> list[int]:
        span = [payload.tell(), len(data)]
        payload.write(data)
        return span

    for pos, item in enumerate(samples):
        s = as_sample(item, image_id=pos)
        h, w = s.image.shape[:2]
        if s.image.ndim != 3 or s.image.shape[2] != 3 or not 1 <= max(h, w) <= MAX_SIDE:
            raise ValueError(f"Sample {pos}: image must be (H, W, 3) with sides <= {MAX_SIDE}, "
                             f"not {s.image.shape}.")
        n = s.boxes.shape[0]
        if s.labels.shape != (n,) or s.masks.shape not in ((n, h, w), (0, h, w)) or n > MAX_INSTANCES:
            raise ValueError(f"Sample {pos}: {n} boxes, labels {s.labels.shape}, masks "
                             f"{s.masks.shape} and image {h}x{w} disagree.")
        if not np.all(np.isfinite(s.boxes)):
            raise ValueError(f"Sample {pos}: boxes must be finite.")
        records.append({
            "image_id": int(s.image_id),
            "width": int(w),
            "height": int(h),
            "image": put(_png(np.ascontiguousarray(s.image, dtype=np.uint8))),
            "masks": [put(_png(m != 0)) for m in s.masks],
            "boxes": [[float(v) for v in box] for box in s.boxes],
            "labels": [int(v) for v in s.labels],
        })
    body = payload.getvalue()
    manifest = json.dumps({"format": "kofn-partition", "version": VERSION,
                           "payload_bytes": len(body), "samples": records},
                          separators=(",", ":")).encode("utf-8")
    return _HEAD.pack(MAGIC, len(manifest)) + manifest + body


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PartitionFormatError(f"{what} must be an integer in [{low}, {high}], not {value!r}.")
    return value


def _span(value: Any, what: str, payload_len: int) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise PartitionFormatError(f"{what} must be an [offset, length] pair, not {value!r}.")
    off = _int(value[0], f"{what} offset", 0, payload_len)
    length = _int(value[1], f"{what} length", len(_PNG_SIGNATURE), payload_len - off)
    return off, length


def _decode_png(data: bytes, what: str, size: tuple[int, int], modes: tuple[str, ...]) -> np.ndarray:
    if not data.startswith(_PNG_SIGNATURE):
        raise PartitionFormatError(f"{what} is not a PNG file.")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            if im.size != size:  # checked from the header, before decompressing
                raise PartitionFormatError(f"{what} is {im.size[0]}x{im.size[1]}, manifest says "
                                           f"{size[0]}x{size[1]}.")
            if im.mode not in modes:
                raise PartitionFormatError(f"{what} has mode {im.mode}, expected {'/'.join(modes)}.")
            im.load()
            return np.asarray(im)
    except PartitionFormatError:
        raise
    except Exception as err:  # Pillow raises many types on corrupt data (OSError, SyntaxError,
        # zlib.error, struct.error, EOFError, DecompressionBombError); all mean "malformed".
        raise PartitionFormatError(f"{what} cannot be decoded: {err}") from err


def _parse_head(blob: bytes) -> tuple[dict[str, Any], memoryview]:
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise TypeError(f"Argument 'blob' must be bytes, not {type(blob).__name__}.")
    view = memoryview(blob).cast("B")
    if len(view) < _HEAD.size:
        raise PartitionFormatError(f"blob is {len(view)} bytes, shorter than the {_HEAD.size}-byte header.")
    magic, m = _HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise PartitionFormatError(f"bad magic {magic!r}, expected {MAGIC!r}.")
    if m > min(MAX_MANIFEST, len(view) - _HEAD.size):
        raise PartitionFormatError(f"manifest length {m} exceeds the blob ({len(view)} bytes).")
    try:
        manifest = json.loads(bytes(view[_HEAD.size:_HEAD.size + m]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PartitionFormatError(f"manifest is not valid UTF-8 JSON ({err}).") from err
    if not isinstance(manifest, dict) or manifest.get("format") != "kofn-partition":
        raise PartitionFormatError("manifest is not a kofn-partition object.")
    if manifest.get("version") != VERSION:
        raise PartitionFormatError(f"unsupported version {manifest.get('version')!r}, expected {VERSION}.")
    payload = view[_HEAD.size + m:]
    if manifest.get("payload_bytes") != len(payload):
        raise PartitionFormatError(f"payload is {len(payload)} bytes, manifest says "
                                   f"{manifest.get('payload_bytes')!r}.")
    if not isinstance(manifest.get("samples"), list):
        raise PartitionFormatError("manifest has no 'samples' list.")
    return manifest, payload


def _boxes(rec: dict[str, Any], what: str, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    boxes, labels = rec.get("boxes"), rec.get("labels")
    if not isinstance(boxes, list) or not isinstance(labels, list) or len(boxes) != len(labels):
        raise PartitionFormatError(f"{what}: 'boxes' and 'labels' must be lists of equal length.")
    if len(boxes) > MAX_INSTANCES:
        raise PartitionFormatError(f"{what}: {len(boxes)} instances, at most {MAX_INSTANCES} allowed.")
    for box in boxes:
        ok = isinstance(box, list) and len(box) == 4 and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box)
        if not ok or not (0 <= box[0] <= box[2] <= w and 0 <= box[1] <= box[3] <= h):
            raise PartitionFormatError(f"{what}: box {box!r} is not (x0, y0, x1, y1) inside {w}x{h}.")
    for label in labels:
        _int(label, f"{what} label", 0, 2**31 - 1)
    return (np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            np.asarray(labels, dtype=np.int64).reshape(-1))


def _sample(rec: Any, pos: int, payload: memoryview) -> Sample:
    what = f"sample {pos}"
    if not isinstance(rec, dict):
        raise PartitionFormatError(f"{what} is not an object.")
    w = _int(rec.get("width"), f"{what} width", 1, MAX_SIDE)
    h = _int(rec.get("height"), f"{what} height", 1, MAX_SIDE)
    image_id = _int(rec.get("image_id"), f"{what} image_id", 0, 2**63 - 1)
    boxes, labels = _boxes(rec, what, w, h)
    spans = rec.get("masks")
    if not isinstance(spans, list) or len(spans) not in (0, len(boxes)):
        raise PartitionFormatError(f"{what}: 'masks' must list one span per box.")
    off, n = _span(rec.get("image"), f"{what} image", len(payload))
    image = _decode_png(bytes(payload[off:off + n]), f"{what} image", (w, h), ("RGB",))
    masks = np.zeros((len(spans), h, w), dtype=np.uint8)
    for i, span in enumerate(spans):
        off, n = _span(span, f"{what} mask {i}", len(payload))
        masks[i] = _decode_png(bytes(payload[off:off + n]), f"{what} mask {i}", (w, h), ("1", "L")) != 0
    return Sample(image=np.array(image, dtype=np.uint8), masks=masks, boxes=boxes, labels=labels,
                  image_id=image_id)


def decoded_bytes(samples: Iterable[Sample | tuple[Any, dict[str, Any]]]) -> int:
    """Bytes the decoded samples occupy: each RGB image plus one byte per mask pixel."""
    total = 0
    for item in samples:
        s = as_sample(item)
        h, w = s.image.shape[:2]
        total += h * w * (3 + int(s.masks.shape[0]))
    return total


def _check_budget(manifest: dict[str, Any], limits: Mapping[str, int]) -> None:
    """Refuse a partition whose decoded size exceeds ``limits`` before any PNG is decoded."""
    side = min(int(limits.get("image_side", MAX_SIDE)), MAX_SIDE)
    instances = min(int(limits.get("instances", MAX_INSTANCES)), MAX_INSTANCES)
    budget = min(int(limits.get("partition_bytes", MAX_DECODED)), MAX_DECODED)
    total = 0
    for pos, rec in enumerate(manifest["samples"]):
        if not isinstance(rec, dict):
            raise PartitionFormatError(f"sample {pos} is not an object.")
        w = _int(rec.get("width"), f"sample {pos} width", 1, side)
        h = _int(rec.get("height"), f"sample {pos} height", 1, side)
        spans = rec.get("masks")
        n = len(spans) if isinstance(spans, list) else 0
        if n > instances:
            raise PartitionFormatError(f"sample {pos}: {n} masks, the job allows at most {instances}.")
        total += h * w * (3 + n)
        if total > budget:
            raise PartitionFormatError(f"decoded size exceeds the job's limit of {budget} bytes "
                                       f"(at sample {pos}).")


def read_partition(blob: bytes, *, limits: Mapping[str, int] | None = None) -> list[Sample]:
    """Decode a partition blob into numpy :class:`Sample` objects (no torch needed).

    Parameters
    ----------
    blob : bytes
        The partition as read from the store.
    limits : mapping, optional
        The job manifest's limits (``image_side``, ``instances``, ``partition_bytes``;
        :attr:`worker.trigger.JobManifest.limits`), checked on the whole manifest before
        any image is decoded or any array allocated. The format's own caps always apply.

    Raises
    ------
    PartitionFormatError
        If the blob is malformed in any way or exceeds a limit; nothing in it is ever
        executed.
    """
    manifest, payload = _parse_head(blob)
    _check_budget(manifest, limits or {})
    return [_sample(rec, pos, payload) for pos, rec in enumerate(manifest["samples"])]


def deserialize_partition(blob: bytes) -> list[tuple[Any, dict[str, Any]]]:
    """Decode a partition blob into torchvision pairs ``(image, target)``.

    The list can be handed to ``torch.utils.data.DataLoader`` directly. See
    :meth:`Sample.to_torch` for the target's fields.
    """
    return [s.to_torch() for s in read_partition(blob)]


def partition_blobs(samples: Sequence[Sample | tuple[Any, dict[str, Any]]],
                    parts: Sequence[Sequence[int]]) -> list[bytes]:
    """Serialize ``samples[parts[j]]`` for each part ``j`` (see :func:`split_indices`)."""
    out = []
    for j, part in enumerate(parts):
        idx = [int(i) for i in part]
        if any(not 0 <= i < len(samples) for i in idx):
            raise ValueError(f"Argument 'parts' entry {j} must hold indices in [0, {len(samples)}).")
        out.append(serialize_partition(samples[i] for i in idx))
    return out
