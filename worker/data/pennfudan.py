"""The PennFudanPed pedestrian dataset (and anything written in its layout).

Layout of the unpacked ``PennFudanPed.zip`` (Penn-Fudan Database for Pedestrian Detection
and Segmentation, University of Pennsylvania)::

    ROOT/PNGImages/FudanPed00001.png
    ROOT/PedMasks/FudanPed00001_mask.png     pixel value k = instance k, 0 = background
    ROOT/Annotation/FudanPed00001.txt        optional, not read

Boxes are derived from the masks as in torchvision's detection tutorial: ``(xmin, ymin,
xmax + 1, ymax + 1)`` over each instance's pixels; instances with an empty or degenerate
box are dropped. Every instance is a person (label 1).

Samples exist in two forms: :class:`Sample` (numpy, what partitions serialize) and the
torchvision detection pair ``(image, target)`` (torch tensors, what models consume). Torch
is imported only when a torch pair is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from coding.errors import KofnError

__all__ = ["DatasetError", "PennFudanDataset", "Sample", "boxes_from_masks", "masks_from_ids"]

PERSON = 1


class DatasetError(KofnError):
    """A dataset folder or file is missing or malformed."""


@dataclass(frozen=True)
class Sample:
    """One image with its instances, as numpy arrays.

    Attributes
    ----------
    image : numpy.ndarray
        ``uint8``, shape ``(H, W, 3)``.
    masks : numpy.ndarray
        ``uint8`` 0/1, shape ``(N, H, W)``, one per instance.
    boxes : numpy.ndarray
        ``float32``, shape ``(N, 4)``, ``(x0, y0, x1, y1)`` in pixels.
    labels : numpy.ndarray
        ``int64``, shape ``(N,)``.
    image_id : int
        Stable identifier (the image's index in its dataset).
    """

    image: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    image_id: int

    @property
    def area(self) -> np.ndarray:
        """Box areas, ``float32`` of shape ``(N,)`` (as in torchvision's tutorial)."""
        b = self.boxes
        return ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).astype(np.float32)

    def to_torch(self) -> tuple[Any, dict[str, Any]]:
        """Return the torchvision detection pair ``(image, target)``.

        ``image`` is float32 ``(3, H, W)`` in [0, 1]; ``target`` holds ``boxes``, ``labels``,
        ``masks`` (uint8 ``(N, H, W)``), ``image_id``, ``area`` and ``iscrowd`` (all zero).
        """
        import torch

        image = torch.from_numpy(np.ascontiguousarray(self.image.transpose(2, 0, 1))).float() / 255.0
        n = int(self.boxes.shape[0])
        target = {
            "boxes": torch.from_numpy(np.asarray(self.boxes, dtype=np.float32).reshape(n, 4)),
            "labels": torch.from_numpy(np.asarray(self.labels, dtype=np.int64).reshape(n)),
            "masks": torch.from_numpy(np.ascontiguousarray(self.masks, dtype=np.uint8)),
            "image_id": int(self.image_id),
            "area": torch.from_numpy(self.area),
            "iscrowd": torch.zeros(n, dtype=torch.int64),
        }
        return image, target


def masks_from_ids(ids: np.ndarray) -> np.ndarray:
    """Split an instance-id mask ``(H, W)`` into binary masks ``(N, H, W)``, ids ascending."""
    values = np.unique(ids)
    values = values[values != 0]
    return (ids[None, :, :] == values[:, None, None]).astype(np.uint8)


def boxes_from_masks(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(xmin, ymin, xmax + 1, ymax + 1)`` of binary masks, dropping degenerate ones.

    Returns
    -------
    boxes : numpy.ndarray
        ``float32`` of shape ``(M, 4)``.
    keep : numpy.ndarray
        Boolean ``(N,)``: which masks were kept (non-empty, positive width and height).
    """
    n = masks.shape[0]
    boxes = np.zeros((n, 4), dtype=np.float32)
    keep = np.zeros(n, dtype=bool)
    for i in range(n):
        ys, xs = np.nonzero(masks[i])
        if ys.size == 0:
            continue
        boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        keep[i] = boxes[i, 2] > boxes[i, 0] and boxes[i, 3] > boxes[i, 1]
    return boxes[keep], keep


def _check_root(root: Path) -> list[str]:
    """Return the sorted image stems under ``root``, or raise one clear DatasetError."""
    if not root.is_dir():
        raise DatasetError(f"Dataset folder {str(root)!r} does not exist or is not a folder.")
    for sub in ("PNGImages", "PedMasks"):
        if not (root / sub).is_dir():
            raise DatasetError(f"Dataset folder {str(root)!r} has no {sub}/ subfolder "
                               "(expected the PennFudanPed layout: PNGImages/ and PedMasks/).")
    stems = sorted(p.stem for p in (root / "PNGImages").glob("*.png"))
    if not stems:
        raise DatasetError(f"Dataset folder {str(root / 'PNGImages')!r} contains no .png images.")
    missing = [s for s in stems if not (root / "PedMasks" / f"{s}_mask.png").is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DatasetError(f"Dataset folder {str(root / 'PedMasks')!r} lacks the masks of "
                           f"{', '.join(missing[:3])}{more} (expected NAME_mask.png).")
    return stems


class PennFudanDataset:
    """Map-style dataset over a PennFudanPed-layout folder.

    Works with ``torch.utils.data.DataLoader`` (it has ``__len__`` and ``__getitem__``).

    Parameters
    ----------
    root : str or Path
        The unpacked folder holding ``PNGImages/`` and ``PedMasks/``.
    ids : sequence of int, optional
        Indices into the sorted image list to expose (for example one split's indices);
        all images by default. The target's ``image_id`` is the index in the full list.
    transforms : callable, optional
        ``transforms(image, target) -> (image, target)`` applied to torch pairs.

    Raises
    ------
    DatasetError
        If the folder, a subfolder, any image or any mask is missing.
    """

    def __init__(self, root: str | Path, *, ids: Sequence[int] | None = None,
                 transforms: Callable[[Any, dict], tuple[Any, dict]] | None = None):
        self.root = Path(root)
        self.stems = _check_root(self.root)
        if ids is None:
            self.ids = list(range(len(self.stems)))
        else:
            self.ids = [int(i) for i in ids]
            bad = [i for i in self.ids if not 0 <= i < len(self.stems)]
            if bad:
                raise ValueError(f"Argument 'ids' must hold indices in [0, {len(self.stems)}), "
                                 f"not {bad[0]}.")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"Argument 'transforms' must be callable, not {type(transforms).__name__}.")
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.ids)

    def sample(self, index: int) -> Sample:
        """Load item ``index`` (position in this dataset) as a numpy :class:`Sample`."""
        image_id = self.ids[index]
        stem = self.stems[image_id]
        img_path = self.root / "PNGImages" / f"{stem}.png"
        mask_path = self.root / "PedMasks" / f"{stem}_mask.png"
        try:
            with Image.open(img_path) as im:
                image = np.asarray(im.convert("RGB"), dtype=np.uint8)
            with Image.open(mask_path) as im:
                if im.mode not in ("L", "P", "I", "I;16", "1"):
                    raise DatasetError(f"Mask {str(mask_path)!r} has mode {im.mode}; expected a "
                                       "single-channel instance-id image.")
                ids = np.asarray(im)
        except (OSError, ValueError) as err:
            raise DatasetError(f"Cannot read {str(img_path)!r} or its mask: {err}") from err
        if ids.shape != image.shape[:2]:
            raise DatasetError(f"Mask {str(mask_path)!r} is {ids.shape[1]}x{ids.shape[0]} but its "
                               f"image is {image.shape[1]}x{image.shape[0]}.")
        masks = masks_from_ids(ids)
        boxes, keep = boxes_from_masks(masks)
        masks = masks[keep]
        labels = np.full(len(boxes), PERSON, dtype=np.int64)
        return Sample(image=image, masks=masks, boxes=boxes, labels=labels, image_id=image_id)

    def samples(self) -> list[Sample]:
        """Every item as a numpy :class:`Sample` (for building partitions)."""
        return [self.sample(i) for i in range(len(self))]

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"Index {index} is out of range for a dataset of {len(self)} images.")
        image, target = self.sample(index % len(self)).to_torch()
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
