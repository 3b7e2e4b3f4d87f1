"""The shard format and the tensor layout: round trips, zero copy, and every corruption."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from exchange.errors import CorruptShardError
from exchange.layout import TensorLayout, TensorSpec, flatten, unflatten
from exchange.shards import MAGIC, ShardHeader, ShardWriter, pack_shard, unpack_shard

CODE = {"mode": "mds", "n": 4, "k": 2, "s": 0, "t": 0}


def _header(**kw) -> ShardHeader:
    base = dict(kind="contrib", job="job", round=3, index=1, worker=2, code=CODE,
                contributors=(2,), length=10)
    base.update(kw)
    return ShardHeader(**base)


# -- layout -------------------------------------------------------------------------------

def test_flatten_unflatten_round_trip():
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], np.int64),
               "s": np.float64(2.5), "m": np.array([True, False])}
    flat, layout = flatten(tensors)
    assert flat.dtype == np.float64 and flat.size == layout.size == 11
    back = unflatten(flat, layout)
    assert list(back) == list(tensors)
    for name, arr in tensors.items():
        assert back[name].dtype == np.asarray(arr).dtype
        np.testing.assert_array_equal(back[name], arr)


def test_layout_json_round_trip():
    _, layout = flatten({"a": np.zeros((2, 2)), "b": np.zeros(3, np.float32)})
    assert TensorLayout.from_json(json.loads(json.dumps(layout.to_json()))) == layout


def test_layout_rejects_gaps_duplicates_and_bad_input():
    with pytest.raises(ValueError, match="contiguous"):
        TensorLayout((TensorSpec("a", "float64", (2,), 0), TensorSpec("b", "float64", (2,), 3)))
    with pytest.raises(ValueError, match="distinct names"):
        TensorLayout((TensorSpec("a", "float64", (2,), 0), TensorSpec("a", "float64", (2,), 2)))
    with pytest.raises(ValueError, match="'data'"):
        TensorLayout.from_json([{"name": "a"}])
    with pytest.raises(TypeError, match="'tensors'"):
        flatten([np.zeros(2)])
    with pytest.raises(TypeError, match="numeric"):
        flatten({"a": np.array(["x"])})
    _, layout = flatten({"a": np.zeros(3)})
    with pytest.raises(ValueError, match="'flat'"):
        unflatten(np.zeros(4), layout)


# -- round trips --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["<f8", "<f4", "<u4", "<i8"])
def test_round_trip_is_zero_copy(dtype):
    payload = (np.arange(37) % 7).astype(dtype)
    blob = pack_shard(_header(), payload)
    shard = unpack_shard(blob, key="k", expect={"job": "job", "round": 3, "index": 1, "code": CODE})
    np.testing.assert_array_equal(shard.payload, payload)
    assert shard.payload.dtype == np.dtype(dtype)
    assert not shard.payload.flags.owndata and not shard.payload.flags.writeable
    assert np.shares_memory(shard.payload, np.frombuffer(blob, np.uint8))
    assert shard.header.payload_length == payload.nbytes
    assert shard.header.shape == (37,)


def test_payload_is_aligned_and_header_is_json():
    blob = pack_shard(_header(), np.ones(5))
    magic, version, _, hlen, _ = struct.unpack_from("<8sHHII", blob)
    assert magic == MAGIC and version == 1
    assert (20 + hlen) % 64 == 0
    header = json.loads(blob[20 : 20 + hlen])
    assert header["code"] == CODE and header["round"] == 3 and header["checksum"].startswith("crc32:")


def test_layout_travels_in_the_header():
    _, layout = flatten({"a": np.zeros((2, 3)), "b": np.zeros(4, np.float32)})
    shard = unpack_shard(pack_shard(_header(layout=layout, length=10), np.zeros(10)), expect={"layout": layout})
    assert shard.header.layout == layout


def test_marker_without_payload():
    shard = unpack_shard(pack_shard(_header(kind="done", index=-1)))
    assert shard.payload.size == 0 and shard.header.kind == "done"


def test_big_endian_input_is_stored_little_endian():
    payload = np.arange(5, dtype=">f8")
    shard = unpack_shard(pack_shard(_header(), payload))
    assert shard.header.dtype == "<f8"
    np.testing.assert_array_equal(shard.payload, payload)


# -- corruption ---------------------------------------------------------------------------

def test_every_single_byte_flip_is_detected():
    blob = pack_shard(_header(), np.arange(16, dtype="<f8"))
    for pos in range(len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(CorruptShardError):
            unpack_shard(bytes(bad), key="k")


@pytest.mark.parametrize("cut", [0, 5, 19, 30, -1, -8])
def test_truncation_is_detected(cut):
    blob = pack_shard(_header(), np.arange(16, dtype="<f8"))
    with pytest.raises(CorruptShardError):
        unpack_shard(blob[:cut] if cut else b"", key="k")


def test_extra_bytes_are_detected():
    blob = pack_shard(_header(), np.arange(16, dtype="<f8"))
    with pytest.raises(CorruptShardError, match="payload is"):
        unpack_shard(blob + b"\0" * 8, key="k")


def test_bad_magic_and_version_are_named():
    blob = bytearray(pack_shard(_header(), np.ones(2)))
    bad = bytearray(blob)
    bad[:8] = b"NOTASHRD"
    with pytest.raises(CorruptShardError, match="magic"):
        unpack_shard(bytes(bad), key="k")
    bad = bytearray(blob)
    bad[8:10] = struct.pack("<H", 99)
    with pytest.raises(CorruptShardError, match="version 99"):
        unpack_shard(bytes(bad), key="k")


@pytest.mark.parametrize(
    "field, value",
    [("job", "other"), ("round", 4), ("index", 0), ("worker", 1), ("kind", "merged"),
     ("code", {**CODE, "k": 3}), ("contributors", (1, 2)), ("length", 11)],
)
def test_header_that_disagrees_with_the_reader_is_rejected(field, value):
    blob = pack_shard(_header(), np.ones(5))
    with pytest.raises(CorruptShardError, match=repr(field)):
        unpack_shard(blob, key="k", expect={field: value})


def test_layout_mismatch_is_rejected():
    _, layout = flatten({"a": np.zeros(10)})
    _, other = flatten({"b": np.zeros(10)})
    blob = pack_shard(_header(layout=layout), np.ones(10))
    with pytest.raises(CorruptShardError, match="'layout'"):
        unpack_shard(blob, key="k", expect={"layout": other})


def test_error_names_the_key():
    with pytest.raises(CorruptShardError, match="'a/b/c'"):
        unpack_shard(b"short", key="a/b/c")


# -- bad arguments ------------------------------------------------------------------------

def test_bad_arguments():
    with pytest.raises(TypeError, match="'header'"):
        pack_shard({"kind": "contrib"}, np.ones(2))
    with pytest.raises(ValueError, match="kind"):
        pack_shard(_header(kind="bogus"), np.ones(2))
    with pytest.raises(ValueError, match="'payload'"):
        pack_shard(_header(), np.ones(2, dtype=np.complex128))
    with pytest.raises(TypeError, match="'data'"):
        unpack_shard("text")
    with pytest.raises(ValueError, match="unknown header field"):
        unpack_shard(pack_shard(_header(), np.ones(2)), expect={"nope": 1})


@pytest.mark.parametrize(("dtype", "shape"), [("<u4", (0,)), ("<u4", (1000,)), ("<f8", (3, 7))])
def test_shard_writer_writes_what_pack_shard_writes(dtype, shape):
    header = ShardHeader(kind="contrib", job="j", round=12, index=3, worker=1,
                         code={"mode": "secure", "n": 6}, contributors=(1,), length=999)
    writer = ShardWriter(header, dtype, shape)
    assert writer.payload.shape == shape and writer.payload.flags.writeable
    writer.payload[...] = np.arange(writer.payload.size).reshape(shape) % 97
    blob = writer.finish()
    assert bytes(blob) == pack_shard(header, writer.payload.copy())
    shard = unpack_shard(blob, expect={"index": 3, "worker": 1})
    assert np.array_equal(shard.payload, writer.payload)


def test_shard_writer_rejects_bad_arguments():
    header = ShardHeader(kind="contrib", job="j", round=0)
    with pytest.raises(ValueError, match="Argument 'payload' must have a dtype"):
        ShardWriter(header, np.int16, (4,))
    with pytest.raises(ValueError, match="Argument 'shape'"):
        ShardWriter(header, "<u4", (-1,))
    with pytest.raises(TypeError, match="Argument 'header'"):
        ShardWriter("header", "<u4", (4,))
