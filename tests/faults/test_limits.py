"""Bounded sizes: the job manifest sets limits and every reader enforces them first.

A crafted partition once made ``read_partition`` allocate ``np.zeros((1000, 8192,
8192))`` (67 GB) from a few hundred bytes. The trigger now records the largest image
side, masks per image and decoded partition size it uploaded, the update's element count
and the worker count; readers refuse anything beyond them before decoding or allocating.
"""

from __future__ import annotations

import json
import os
import struct
import tracemalloc

import numpy as np
import pytest

from exchange.codespec import CodeSpec
from exchange.errors import CorruptShardError
from exchange.shards import ShardHeader, pack_shard, unpack_shard
from tests.faults.table import record
from worker.data.partition import MAGIC, PartitionFormatError, read_partition, serialize_partition
from worker.data.pennfudan import Sample

_HEAD = struct.Struct("<8sQ")


def _sample(side: int = 16, masks: int = 1) -> Sample:
    rng = np.random.default_rng(3)
    m = np.zeros((masks, side, side), np.uint8)
    m[:, 2:6, 3:9] = 1
    return Sample(image=rng.integers(0, 256, (side, side, 3), dtype=np.uint8), masks=m,
                  boxes=np.tile(np.array([[3, 2, 9, 6]], np.float32), (masks, 1)),
                  labels=np.ones(masks, np.int64), image_id=0)


def _crafted(blob: bytes, *, side: int, masks: int) -> bytes:
    """``blob`` with its manifest rewritten to claim ``masks`` masks of ``side`` x ``side``."""
    _magic, m = _HEAD.unpack_from(blob, 0)
    manifest = json.loads(blob[16:16 + m])
    rec = manifest["samples"][0]
    rec.update(width=side, height=side, masks=[rec["image"]] * masks,
               boxes=[[0, 0, 1, 1]] * masks, labels=[1] * masks)
    text = json.dumps(manifest).encode()
    return _HEAD.pack(MAGIC, len(text)) + text + blob[16 + m:]


@pytest.mark.parametrize("limits", [None, {"image_side": 16, "instances": 1, "partition_bytes": 1024}],
                         ids=["format caps", "job limits"])
def test_a_crafted_partition_is_refused_before_anything_is_allocated(limits):
    blob = _crafted(serialize_partition([_sample()]), side=8192, masks=1000)  # claims 67 GB
    tracemalloc.start()
    try:
        with pytest.raises(PartitionFormatError) as err:
            read_partition(blob, limits=limits)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # a few parsing buffers, never the claimed arrays
    if limits is None:
        assert "exceeds the job's limit of 8589934592 bytes" in str(err.value)
    else:
        assert "width must be an integer in [1, 16], not 8192" in str(err.value)
    record(f"crafted partition claiming 1000 masks of 8192x8192 ({'no job limits' if limits is None else 'job limits'})",
           "refused from its manifest before any PNG is decoded or array allocated (peak "
           "allocation under 8 MB)", "job stopped (permanent, exit 2)", "none", str(err.value))


def test_job_limits_also_cap_masks_and_decoded_bytes():
    blob = serialize_partition([_sample(masks=3)])
    assert len(read_partition(blob, limits={"image_side": 16, "instances": 3})) == 1
    with pytest.raises(PartitionFormatError, match="3 masks, the job allows at most 2"):
        read_partition(blob, limits={"instances": 2})
    with pytest.raises(PartitionFormatError, match="decoded size exceeds the job's limit of 1000 bytes"):
        read_partition(blob, limits={"partition_bytes": 1000})


def test_a_shard_longer_than_the_job_allows_is_corrupt():
    code = CodeSpec("plain", 2)
    payload = np.zeros(4)
    blob = pack_shard(ShardHeader(kind="contrib", job="j", round=0, index=0, worker=0, code=code.to_json(),
                                  length=1 << 40), payload)
    assert unpack_shard(blob).header.length == 1 << 40  # the format's own cap allows it
    with pytest.raises(CorruptShardError, match="length 1099511627776 exceeds the job's limit of 4"):
        unpack_shard(blob, key="k", max_length=4)


pytest.importorskip("torch")

from worker.config import ConfigError, RunConfig  # noqa: E402
from worker.trigger import read_manifest, trigger  # noqa: E402


def test_the_trigger_records_the_jobs_true_sizes_and_workers_are_capped(tmp_path):
    from exchange.stores.local import LocalStore

    cfg = RunConfig(job="lim", store=f"file://{tmp_path}", workers=3, rounds=1, mode="plain",
                    model="small_cnn", min_size=64, max_size=64, image_size=48, synth_images=8,
                    encrypt=False, evaluate=False)
    store = LocalStore(tmp_path)
    trigger(cfg, store)
    limits = read_manifest(store, "lim").limits
    assert limits["image_side"] == 48 and limits["workers"] == 3
    assert 0 < limits["instances"] <= 8 and limits["partition_bytes"] >= 48 * 48 * 3
    assert limits["update_elements"] > 1000
    with pytest.raises(ValueError, match="must be at most 1024, not 10000"):
        RunConfig(workers=10_000, launcher="ray")
    with pytest.raises(ConfigError, match="local launcher runs at most 128 worker processes"):
        RunConfig(workers=200)
    with pytest.raises(ConfigError) as err:
        trigger(cfg.with_overrides(job="few", workers=9), store)
    assert str(err.value) == ("The data holds 8 images, but 9 workers need at least 10 (one partition "
                              "each and a held-out split); use fewer workers or more data.")
    record("--workers 10000, or more workers than images", "refused before anything is uploaded, "
           "in one line", "job not started", "none", str(err.value))


def test_limits_in_a_manifest_are_checked_when_read():
    from worker.trigger import JobManifest, ManifestError, _body_digest

    cfg = RunConfig(job="m", encrypt=False)
    good = JobManifest(job="m", config=cfg, partitions=(1,) * 5, holdout=1, assignment=((0,),) * 5,
                       created=0.0, limits={"workers": 5})
    assert JobManifest.from_bytes(good.to_bytes()).limits == {"workers": 5}
    obj = json.loads(good.to_bytes())
    obj["limits"] = {"workers": -1}
    with pytest.raises(ManifestError, match="damaged: its SHA-256 differs"):
        JobManifest.from_bytes(json.dumps(obj).encode())
    del obj["sha256"]
    obj["sha256"] = _body_digest(obj)  # a well-formed digest over a bad limit
    with pytest.raises(ManifestError, match="limits\\['workers'\\] must be a positive integer"):
        JobManifest.from_bytes(json.dumps(obj).encode())


def test_an_oversized_object_is_refused_before_it_is_read(tmp_path):
    """A 10 GiB (sparse) file where a 64-byte object should be: refused from its size."""
    from exchange.errors import ObjectTooLargeError
    from exchange.stores.local import LocalStore

    store = LocalStore(tmp_path)
    store.put("job/data/part-0000.kpt", b"small")
    os.truncate(tmp_path / "job" / "data" / "part-0000.kpt", 10 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(ObjectTooLargeError) as err:
            store.get_bounded("job/data/part-0000.kpt", 64)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
    assert str(err.value) == ("Object 'job/data/part-0000.kpt' is 10737418240 bytes, more than the 64 "
                              "its reader allows; refused before reading it")
    record("an oversized object in the store (10 GiB where the manifest says 64 bytes)",
           "refused from its size before it is read (a shard: an erasure; a partition: "
           "permanent, and --resume re-uploads it)", "0", "none", str(err.value))


def test_an_oversized_contribution_is_an_erasure(tmp_path):
    from exchange.round import Exchange, RoundConfig
    from exchange.stores.local import LocalStore

    store = LocalStore(tmp_path)
    cfg = RoundConfig(job="big", code=CodeSpec("mds", 4, k=2), deadline_s=30.0, takeover_after_s=0.05,
                      max_length=100)
    ups = np.random.default_rng(2).normal(size=(4, 100))
    with Exchange(store, cfg) as ex:
        for w in range(4):
            ex.publish(0, w, ups[w])
        key, _, _, _ = ex.share_location(0, 1, 2)
    # worker 2's objects claim a 10 GiB share for aggregator 1: a done marker with a valid
    # checksum whose part index says so, and its shares' object as large (sparse)
    done = store.get("kofn/big/r00000000/done/2")
    marker = unpack_shard(done)
    index = np.array(marker.payload).reshape(-1, 2)
    index[1, 1] = 10 << 30
    store.put("kofn/big/r00000000/done/2", pack_shard(marker.header, index.reshape(-1)))
    os.truncate(tmp_path.joinpath(*key.split("/")), 11 << 30)
    with Exchange(store, cfg) as ex:
        with pytest.raises(CorruptShardError, match="more than the job allows"):
            ex.aggregate(0, 1)
        for j in (0, 2, 3):
            ex.aggregate(0, j)
        res = ex.collect(0)
    np.testing.assert_allclose(res.total, ups.sum(0), rtol=1e-12, atol=1e-12)
    assert 1 not in res.aggregators
