"""Datasets for training: PennFudanPed, its synthetic twin, and partition blobs.

Only numpy and Pillow are imported here; torch is imported when a torch pair is built.
"""

from worker.data.partition import (
    PartitionFormatError,
    as_pairs,
    as_sample,
    deserialize_partition,
    partition_blobs,
    read_partition,
    serialize_partition,
    split_indices,
    train_holdout_split,
)
from worker.data.pennfudan import (
    DatasetError,
    PennFudanDataset,
    Sample,
    boxes_from_masks,
    masks_from_ids,
)
from worker.data.synth import parse_size, synth_sample, write_synthetic

__all__ = [
    "DatasetError",
    "PartitionFormatError",
    "PennFudanDataset",
    "Sample",
    "as_pairs",
    "as_sample",
    "boxes_from_masks",
    "deserialize_partition",
    "masks_from_ids",
    "parse_size",
    "partition_blobs",
    "read_partition",
    "serialize_partition",
    "split_indices",
    "synth_sample",
    "train_holdout_split",
    "write_synthetic",
]
