"""Synthetic pedestrian images in the PennFudanPed layout.

Each image has 1-4 pedestrian-like figures (a head ellipse, a torso and two legs as
rounded rectangles, height/width about 2.5) on a textured background (gradient, noise and
random rectangles). The instance masks are the exact pixels painted for each figure, so the
boxes derived from them are exact. Every image is drawn from its own generator seeded with
``(seed, index)``: the same seed gives the same files, and image ``i`` does not depend on
``count``.

This module needs only numpy and Pillow (no torch), so ``kofn data synth`` starts fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from coding.validate import check_int

__all__ = ["MAX_SIDE", "MIN_SIDE", "parse_size", "synth_sample", "write_synthetic"]

MIN_SIDE = 32
MAX_SIDE = 4096
MAX_INSTANCES = 4


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WxH"`` (for example ``"128x96"``) into ``(width, height)``.

    Raises
    ------
    ValueError
        If the text is not two integers joined by ``x`` or a side is outside
        ``[MIN_SIDE, MAX_SIDE]``.
    """
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"Argument 'size' must look like WxH (for example 128x96), not {text!r}.")
    width, height = (int(p) for p in parts)
    check_int("width", width, low=MIN_SIDE, high=MAX_SIDE)
    check_int("height", height, low=MIN_SIDE, high=MAX_SIDE)
    return width, height


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured float background in [0, 255]: two-colour gradient, rectangles, noise."""
    c0, c1 = rng.uniform(30, 225, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-9)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    for _ in range(int(rng.integers(2, 9))):
        x0, x1 = np.sort(rng.integers(0, width, size=2))
        y0, y1 = np.sort(rng.integers(0, height, size=2))
        alpha = rng.uniform(0.3, 0.9)
        img[y0:y1 + 1, x0:x1 + 1] = (1 - alpha) * img[y0:y1 + 1, x0:x1 + 1] + alpha * rng.uniform(0, 255, 3)
    # Low-frequency blotches plus pixel noise, so the background is not flat.
    coarse = rng.normal(0, 18, size=(max(height // 8, 1), max(width // 8, 1), 3))
    coarse = np.kron(coarse, np.ones((8, 8, 1)))[:height, :width]
    pad_h, pad_w = height - coarse.shape[0], width - coarse.shape[1]
    coarse = np.pad(coarse, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return img + coarse + rng.normal(0, 8, size=img.shape)


def _figure_mask(rng: np.random.Generator, box: tuple[int, int, int, int],
                 size: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw one figure inside ``box``; return its mask and the masks of its parts."""
    x0, y0, w, h = box
    parts = []
    cx = x0 + w / 2
    head_h = 0.18 * h
    head_w = min(0.55 * w, head_h * 0.85)
    torso_top, torso_bot = y0 + head_h * 0.95, y0 + 0.58 * h
    leg_gap = max(w * 0.06, 0.5)
    shapes = [
        ("ellipse", (cx - head_w / 2, y0, cx + head_w / 2, y0 + head_h)),
        ("rrect", (x0 + 0.12 * w, torso_top, x0 + 0.88 * w, torso_bot)),
        ("rrect", (x0 + 0.18 * w, torso_bot - 0.02 * h, cx - leg_gap, y0 + h - 1)),
        ("rrect", (cx + leg_gap, torso_bot - 0.02 * h, x0 + 0.82 * w, y0 + h - 1)),
    ]
    if rng.random() < 0.7:  # arms, hanging or slightly out
        spread = rng.uniform(0, 0.08) * w
        shapes.append(("rrect", (x0 - spread, torso_top + 0.02 * h, x0 + 0.14 * w, torso_bot - 0.05 * h)))
        shapes.append(("rrect", (x0 + 0.86 * w, torso_top + 0.02 * h, x0 + w - 1 + spread,
                                 torso_bot - 0.05 * h)))
    for kind, rect in shapes:
        canvas = Image.new("L", size, 0)
        draw = ImageDraw.Draw(canvas)
        rect = tuple(float(v) for v in rect)
        if rect[2] <= rect[0] or rect[3] <= rect[1]:
            continue
        if kind == "ellipse":
            draw.ellipse(rect, fill=1)
        else:
            radius = max(1, int(min(rect[2] - rect[0], rect[3] - rect[1]) * 0.3))
            draw.rounded_rectangle(rect, radius=radius, fill=1)
        parts.append(np.asarray(canvas, dtype=bool))
    mask = np.logical_or.reduce(parts) if parts else np.zeros(size[::-1], dtype=bool)
    return mask, parts


def _place(rng: np.random.Generator, width: int, height: int,
           taken: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
    """Pick a figure box ``(x0, y0, w, h)`` that does not overlap the taken ones."""
    for _ in range(30):
        h = int(round(rng.uniform(0.35, 0.9) * height))
        w = int(round(h * rng.uniform(0.32, 0.48)))
        if w < 6 or h < 12 or w > width - 2:
            h = max(12, min(height - 2, h))
            w = max(6, min(width - 2, w))
        x0 = int(rng.integers(0, max(width - w, 0) + 1))
        y0 = int(rng.integers(0, max(height - h, 0) + 1))
        if all(x0 + w <= a or a + c <= x0 or y0 + h <= b or b + d <= y0 for a, b, c, d in taken):
            return x0, y0, w, h
    return None


def synth_sample(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic image and its instance-id mask.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; the result depends only on its state.
    width, height : int
        Image size in pixels, each in ``[MIN_SIDE, MAX_SIDE]``.

    Returns
    -------
    image : numpy.ndarray
        ``uint8`` array of shape ``(height, width, 3)``.
    mask : numpy.ndarray
        ``uint8`` array of shape ``(height, width)``: 0 is background, ``k`` is instance ``k``
        (1-based, as in PennFudanPed's ``PedMasks``).
    """
    width = check_int("width", width, low=MIN_SIDE, high=MAX_SIDE)
    height = check_int("height", height, low=MIN_SIDE, high=MAX_SIDE)
    img = _background(rng, width, height)
    ids = np.zeros((height, width), dtype=np.uint8)
    taken: list[tuple[int, int, int, int]] = []
    wanted = int(rng.integers(1, MAX_INSTANCES + 1))
    for _ in range(wanted):
        box = _place(rng, width, height, taken)
        if box is None:
            continue
        mask, parts = _figure_mask(rng, box, (width, height))
        if mask.sum() < 4:
            continue
        taken.append(box)
        ids[mask] = len(taken)
        skin = rng.uniform([150, 100, 70], [240, 200, 170])
        shirt, trousers = rng.uniform(0, 255, size=(2, 3))
        colours = [skin, shirt, trousers, trousers, shirt, shirt]
        for part, colour in zip(parts, colours):
            shade = rng.normal(0, 10, size=(int(part.sum()), 3))
            img[part] = colour + shade
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, ids


def write_synthetic(
    out: str | Path,
    count: int,
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Write ``count`` synthetic images in the PennFudanPed folder layout.

    Creates ``out/PNGImages/SynthPedNNNNN.png`` and ``out/PedMasks/SynthPedNNNNN_mask.png``
    (instance ids 1..k as pixel values). The ``Annotation/`` folder of the original dataset
    is not written; the loader derives boxes from the masks.

    Parameters
    ----------
    out : str or Path
        Destination folder; created if missing. Existing files with the same names are
        overwritten.
    count : int
        Number of images, at least 1.
    size : (int, int)
        ``(width, height)``, each in ``[MIN_SIDE, MAX_SIDE]``.
    seed : int
        Non-negative seed. Image ``i`` is drawn from ``default_rng([seed, i])``.
    progress : callable, optional
        Called as ``progress(done, count)`` after each image.

    Returns
    -------
    list of str
        The image file stems written, in order.
    """
    count = check_int("count", count, low=1)
    seed = check_int("seed", seed, low=0)
    if not isinstance(size, tuple | list) or len(size) != 2:
        raise TypeError(f"Argument 'size' must be a (width, height) pair, not {size!r}.")
    width = check_int("width", size[0], low=MIN_SIDE, high=MAX_SIDE)
    height = check_int("height", size[1], low=MIN_SIDE, high=MAX_SIDE)
    root = Path(out)
    (root / "PNGImages").mkdir(parents=True, exist_ok=True)
    (root / "PedMasks").mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(count)))
    stems = []
    for i in range(count):
        image, ids = synth_sample(np.random.default_rng([seed, i]), width, height)
        stem = f"SynthPed{i + 1:0{digits}d}"
        Image.fromarray(image).save(root / "PNGImages" / f"{stem}.png")
        Image.fromarray(ids).save(root / "PedMasks" / f"{stem}_mask.png")
        stems.append(stem)
        if progress is not None:
            progress(i + 1, count)
    return stems
