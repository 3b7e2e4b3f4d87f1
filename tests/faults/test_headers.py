"""Crafted shard headers: only CorruptShardError comes out, with no large allocation and no hang.

A crafted header carries a valid CRC (an attacker recomputes it), so the parser itself must
refuse non-finite numbers, sizes that overflow, deep nesting and fields of the wrong type.
"""

from __future__ import annotations

import datetime
import json
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.errors import CorruptShardError
from exchange.shards import MAGIC, VERSION, ShardHeader, pack_shard, unpack_shard
from tests.faults.table import record

_PREFIX = struct.Struct("<8sHHII")
# A hang shows up as a missed deadline; a parse takes microseconds, so 10 s is > 1000x slack.
_SLOW = datetime.timedelta(seconds=10)
_PEAK = 16 << 20  # bytes a reader may allocate for a < 1 MB object


def _valid() -> tuple[dict, bytes]:
    blob = pack_shard(ShardHeader(kind="contrib", job="job", round=3, index=1, worker=2,
                                  code={"mode": "mds", "n": 4, "k": 2}, contributors=(2,),
                                  length=4), np.arange(4.0))
    hlen = _PREFIX.unpack_from(blob, 0)[3]
    header = json.loads(blob[_PREFIX.size:_PREFIX.size + hlen])
    return header, blob[_PREFIX.size + hlen:]


def craft(text: bytes, payload: bytes = b"") -> bytes:
    """A shard object with arbitrary header text and a correct header CRC."""
    return _PREFIX.pack(MAGIC, VERSION, 0, len(text), zlib.crc32(text) & 0xFFFFFFFF) + text + payload


def _unpack_bounded(blob: bytes) -> None:
    """Unpack; anything but success or CorruptShardError fails, as does a large allocation."""
    tracemalloc.start()
    try:
        unpack_shard(blob, key="k")
    except CorruptShardError as err:
        assert "\n" not in str(err) and len(str(err)) < 400
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < _PEAK, f"parsing allocated {peak} bytes"


HEADER, PAYLOAD = _valid()

CRAFTED = {
    "round = Infinity": b'"round":Infinity',
    "round = NaN": b'"round":NaN',
    "round = 1e300": b'"round":1e300',
    "round = true": b'"round":true',
    "shape = [10**20]": b'"shape":[100000000000000000000]',
    "payload_length = 2**70": b'"payload_length":1180591620717411303424',
    "contributors = [-1]": b'"contributors":[-1]',
    "layout shape = [2**64]": b'"layout":[{"name":"a","dtype":"float64","shape":[18446744073709551616],"offset":0}]',
    "layout dtype = V2**40": b'"layout":[{"name":"a","dtype":"V1099511627776","shape":[1],"offset":0}]',
    "100k nested brackets": b'"code":' + b"[" * 100_000 + b"]" * 100_000,
}


def _with_field(field: bytes) -> bytes:
    name = field.split(b":", 1)[0].strip(b'"').decode()
    rest = {k: v for k, v in HEADER.items() if k != name}
    text = json.dumps(rest, separators=(",", ":")).encode()
    return craft(text[:-1] + b"," + field + b"}", PAYLOAD)


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_field_is_corrupt_shard(case):
    blob = _with_field(CRAFTED[case])
    with pytest.raises(CorruptShardError, match="malformed header") as info:
        unpack_shard(blob, key="k")
    _unpack_bounded(blob)
    record("crafted header: " + case, "refused the shard (an erasure)", 0, "none",
           str(info.value))


def test_header_longer_than_object_and_huge_length_field():
    text = json.dumps(HEADER).encode()
    blob = _PREFIX.pack(MAGIC, VERSION, 0, 0xFFFFFFFF, zlib.crc32(text)) + text
    with pytest.raises(CorruptShardError, match="header length"):
        unpack_shard(blob, key="k")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=_SLOW, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(HEADER)), value=json_values)
def test_fuzz_one_field(name, value):
    header = dict(HEADER, **{name: value})
    _unpack_bounded(craft(json.dumps(header).encode(), PAYLOAD))


@settings(max_examples=200, deadline=_SLOW)
@given(value=json_values)
def test_fuzz_whole_header(value):
    _unpack_bounded(craft(json.dumps(value).encode(), PAYLOAD))


@settings(max_examples=300, deadline=_SLOW)
@given(data=st.data())
def test_fuzz_flipped_and_cut_bytes(data):
    blob = bytearray(craft(json.dumps(HEADER, separators=(",", ":")).encode(), PAYLOAD))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(blob)))
    _unpack_bounded(bytes(blob[:cut]))
