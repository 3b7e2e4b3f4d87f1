"""MDSCode's ``out=`` buffers: same answers as the allocating calls, clear errors otherwise."""

import numpy as np
import pytest

from coding import MDSCode


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_encode_decode_into_buffers_match_allocating_calls(dtype):
    # Prepare: a payload wide enough for the blocked, threaded path
    code = MDSCode(12, 8)
    x = np.random.default_rng(3).standard_normal((8, 70_001)).astype(dtype)
    out = np.full((12, 70_001), np.nan)  # float64 shards, also for float32 payloads
    # Execute
    shards = code.encode(x, out=out)
    keep = [0, 2, 5, 8, 9, 10, 11, 3]
    msg = np.full_like(x, np.nan)  # the payload's dtype
    decoded = code.decode(out[keep], keep, out=msg)
    # Assert
    assert shards is out
    np.testing.assert_array_equal(out, code.encode(x))
    assert decoded is msg
    np.testing.assert_array_equal(msg, code.decode(out[keep], keep, dtype=dtype))


def test_gfp_encode_into_buffer():
    import galois

    code = MDSCode(6, 4, field=galois.GF(257))
    x = np.random.default_rng(0).integers(0, 257, (4, 33))
    out = np.empty((6, 33), dtype=np.int64)
    code.encode(x, out=out)
    np.testing.assert_array_equal(out, code.encode(x))


@pytest.mark.parametrize(
    "bad",
    [np.empty((11, 10)), np.empty((12, 10), dtype=np.float32), np.empty((10, 12)).T, [0.0]],
)
def test_encode_rejects_bad_out(bad):
    code = MDSCode(12, 8)
    with pytest.raises(ValueError, match="Argument 'out' must be"):
        code.encode(np.zeros((8, 10)), out=bad)
