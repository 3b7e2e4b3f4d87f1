"""``kofn data``: make a synthetic dataset, or check a PennFudanPed-layout folder.

Examples
--------
::

    kofn data synth --out data/synth --count 200 --size 128x128 --seed 0
    kofn data info --data data/PennFudanPed
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["register"]


def _synth(args: argparse.Namespace) -> int:
    from worker.data.synth import parse_size, write_synthetic

    size = parse_size(args.size)
    step = max(1, args.count // 20) if args.count >= 100 else 0
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if step and (done % step == 0 or done == total):
            rate = done / max(time.monotonic() - started, 1e-9)
            print(f"  {done}/{total} images ({rate:.0f}/s)", file=sys.stderr, flush=True)

    stems = write_synthetic(args.out, args.count, size, args.seed, progress=progress)
    print(f"Wrote {len(stems)} synthetic images of {size[0]}x{size[1]} to {args.out} "
          f"(PNGImages/, PedMasks/; seed {args.seed}).")
    return 0


def _info(args: argparse.Namespace) -> int:
    from worker.data.pennfudan import PennFudanDataset

    ds = PennFudanDataset(args.data)
    limit = len(ds) if args.limit is None else min(args.limit, len(ds))
    instances, sizes = 0, set()
    for i in range(limit):
        s = ds.sample(i)
        instances += len(s.boxes)
        sizes.add((s.image.shape[1], s.image.shape[0]))
    shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4]) + (" ..." if len(sizes) > 4 else "")
    print(f"{args.data}: {len(ds)} images; checked {limit}: {instances} pedestrians, sizes {shown}.")
    return 0


def _int_at_least(low: int):
    """An argparse type: an integer of at least ``low``, else a one-line error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    return parse


_count = _int_at_least(1)
_seed = _int_at_least(0)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``kofn data`` with its ``synth`` and ``info`` actions."""
    parser = subparsers.add_parser(
        "data", help="make a synthetic dataset or check a PennFudanPed folder",
        description="Datasets in the PennFudanPed layout (PNGImages/, PedMasks/).")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = actions.add_parser(
        "synth", help="write synthetic pedestrian images with exact instance masks",
        description="Write seeded synthetic pedestrians in the PennFudanPed layout.")
    synth.add_argument("--out", required=True, metavar="DIR", help="destination folder")
    synth.add_argument("--count", type=_count, default=100, metavar="N",
                       help="number of images (default 100)")
    synth.add_argument("--size", default="128x128", metavar="WxH",
                       help="image size, each side 32..4096 (default 128x128)")
    synth.add_argument("--seed", type=_seed, default=0, metavar="S", help="seed (default 0)")
    synth.set_defaults(func=_synth)

    info = actions.add_parser("info", help="check a dataset folder and count its instances",
                              description="Load every image and mask of a dataset folder.")
    info.add_argument("--data", required=True, metavar="PATH",
                      help="the unpacked PennFudanPed folder (or a synthetic one)")
    info.add_argument("--limit", type=_count, default=None, metavar="N",
                      help="check only the first N images")
    info.set_defaults(func=_info)
