"""The self-describing shard format (after zfec's share files).

Every object the coded round writes is one shard::

    offset  size  field
    0       8     magic  b"KOFNSHRD"
    8       2     format version, little-endian uint16 (currently 1)
    10      2     reserved, zero
    12      4     header length H, little-endian uint32
    16      4     CRC-32 of the header bytes, little-endian uint32
    20      H     header: UTF-8 JSON, space-padded so the payload starts on a 64-byte boundary
    20+H    P     payload: the raw little-endian array (C order)

The JSON header holds the shard's kind, job, round, aggregator index, contributing worker,
the code (mode, n, k, s, t, p, ...), the tensor layout, the contributor set, the payload's
dtype and shape, its length and its checksum (``"crc32:xxxxxxxx"``). Headers are JSON,
never pickle: reading a shard runs no code.

:func:`unpack_shard` parses the payload with zero copies (``np.frombuffer`` on a
``memoryview`` of the object) and rejects anything that does not add up, or that disagrees
with what the reader expected, with :class:`~exchange.errors.CorruptShardError`; the round
treats such a shard as an erasure.

Notes
-----
The CRC-32 checksums catch accidental corruption (bit rot, truncation, a half-written
object), not an attacker, who can recompute them. Tampering is caught by
:class:`exchange.crypto.EncryptedStore`, whose AES-GCM tag authenticates every object.
"""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from exchange.errors import CorruptShardError
from exchange.layout import TensorLayout

__all__ = ["MAGIC", "VERSION", "KINDS", "LIMITS", "MAX_SHARD_OVERHEAD", "ShardHeader", "Shard", "ShardWriter", "pack_shard", "unpack_shard"]

MAGIC = b"KOFNSHRD"
VERSION = 1
KINDS = ("contrib", "merged", "done", "members", "complete", "total")
_PREFIX = struct.Struct("<8sHHII")
_ALIGN = 64
_DTYPES = ("<f8", "<f4", "<u4", "<i8", "<u8")
_MAX_HEADER = 1 << 24
#: Bytes a shard object may hold besides its payload: the prefix, the header cap, padding.
MAX_SHARD_OVERHEAD = _PREFIX.size + _MAX_HEADER + 64


@dataclass(frozen=True)
class ShardHeader:
    """What a shard says about itself.

    Parameters
    ----------
    kind : str
        One of ``KINDS``: a worker's ``contrib``ution to one aggregator, an aggregator's
        ``merged`` shard, a session's running ``total`` of the round means, or a small
        marker (``done``, ``members``, ``complete``).
    job : str
        The training job.
    round : int
        The round number.
    index : int
        The aggregator (merged-shard) index ``j``, or -1 for markers.
    worker : int
        The contributing worker for ``contrib``/``done``, else -1.
    code : dict
        The code parameters (``CodeSpec.to_json()``), compared for equality by readers.
    contributors : tuple of int
        The workers whose updates this shard combines (a contribution: its own worker; a
        merged shard: the set it summed; ``members``: the agreed set).
    length : int
        Length of the flat update vector the round exchanges.
    layout : TensorLayout or None
        How the flat vector splits into named tensors, if it came from a dict.
    dtype : str
        Little-endian payload dtype string, e.g. ``"<f8"``.
    shape : tuple of int
        Payload shape.
    payload_length : int
        Payload bytes (filled in by :func:`pack_shard`).
    checksum : str
        ``"crc32:%08x"`` of the payload (filled in by :func:`pack_shard`).
    attempt : str
        Which publish of its worker a ``contrib`` or ``done`` shard belongs to: a random
        hex token per :meth:`~exchange.round.Exchange.publish` call, also in the share's
        key. The round uses only the attempt its done marker names (written once), so a
        repeated or concurrent publish never mixes shares. Empty for other kinds; optional
        when read (older objects lack it).
    """

    kind: str
    job: str
    round: int
    index: int = -1
    worker: int = -1
    code: Mapping[str, object] = field(default_factory=dict)
    contributors: tuple[int, ...] = ()
    length: int = 0
    layout: TensorLayout | None = None
    dtype: str = "<f8"
    shape: tuple[int, ...] = (0,)
    payload_length: int = 0
    checksum: str = ""
    attempt: str = ""

    def to_json(self) -> dict[str, object]:
        """Return the JSON-ready dict written to the object."""
        out = dataclasses.asdict(self)
        out["code"] = dict(self.code)
        out["contributors"] = list(self.contributors)
        out["shape"] = list(self.shape)
        out["layout"] = None if self.layout is None else self.layout.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ShardHeader:
        """Rebuild a header; raise ``ValueError`` or ``TypeError`` if any field is malformed.

        Every field must have its JSON type (an integer is never a float or a bool) and lie
        within :data:`LIMITS`, so that nothing read from a store can make a reader
        overflow, allocate or loop on a size it did not check.
        """
        if not isinstance(data, dict):
            raise TypeError(f"header must be an object, not {type(data).__name__}")
        missing = sorted(set(cls.__dataclass_fields__) - set(data) - {"attempt"})
        if missing:
            raise ValueError(f"header lacks field(s) {missing}")
        code = data["code"]
        if not isinstance(code, dict):
            raise TypeError("code must be an object")
        contributors = _list(data, "contributors", LIMITS["contributors"])
        shape = _list(data, "shape", LIMITS["ndim"])
        layout = data["layout"]
        if layout is not None:
            _list(data, "layout", LIMITS["tensors"])
        return cls(
            kind=_str(data, "kind"),
            job=_str(data, "job"),
            round=_int(data["round"], "round", 0, LIMITS["round"]),
            index=_int(data["index"], "index", -1, LIMITS["workers"]),
            worker=_int(data["worker"], "worker", -1, LIMITS["workers"]),
            code=code,
            contributors=tuple(_int(w, "contributors[]", 0, LIMITS["workers"]) for w in contributors),
            length=_int(data["length"], "length", 0, LIMITS["elements"]),
            layout=None if layout is None else TensorLayout.from_json(layout),
            dtype=_str(data, "dtype"),
            shape=tuple(_int(d, "shape[]", 0, LIMITS["elements"]) for d in shape),
            payload_length=_int(data["payload_length"], "payload_length", 0, LIMITS["bytes"]),
            checksum=_str(data, "checksum"),
            attempt=_attempt(data),
        )


#: Bounds on what a shard header may claim (``round``, worker and aggregator indices,
#: number of contributors, payload dimensions, elements and bytes, tensors in a layout).
#: They are far above any real job and far below what would overflow an int64.
LIMITS = {"round": 1 << 40, "workers": 1 << 20, "contributors": 1 << 20, "ndim": 8,
          "elements": 1 << 40, "bytes": 1 << 43, "tensors": 1 << 20, "depth": 16,
          "string": 1 << 16}


def _int(value: object, name: str, low: int, high: int) -> int:
    if type(value) is not int:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], not {value}")
    return value


def _str(data: Mapping[str, object], name: str) -> str:
    value = data[name]
    if type(value) is not str:
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if len(value) > LIMITS["string"]:
        raise ValueError(f"{name} is {len(value)} characters, more than {LIMITS['string']}")
    return value


_ATTEMPT = re.compile(r"[0-9a-f]{0,32}")


def _attempt(data: Mapping[str, object]) -> str:
    if "attempt" not in data:
        return ""
    value = _str(data, "attempt")
    if not _ATTEMPT.fullmatch(value):
        raise ValueError("attempt must be at most 32 lowercase hex digits")
    return value


def _list(data: Mapping[str, object], name: str, most: int) -> list:
    value = data[name]
    if type(value) is not list:
        raise TypeError(f"{name} must be a list, not {type(value).__name__}")
    if len(value) > most:
        raise ValueError(f"{name} has {len(value)} entries, more than {most}")
    return value


def _nesting(value: object) -> int:
    """How deep lists and objects nest in a parsed JSON value (iterative: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} in header")


def _parse_header(text: bytes) -> ShardHeader:
    """JSON text -> header; ``ValueError``/``TypeError`` for anything malformed or out of bounds."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:  # the C parser stops at the interpreter's recursion limit
        raise ValueError("header nests too deep") from None
    depth = _nesting(data)
    if depth > LIMITS["depth"]:
        raise ValueError(f"header nests {depth} deep, more than {LIMITS['depth']}")
    header = ShardHeader.from_json(data)
    np.dtype(header.dtype)
    return header


@dataclass(frozen=True)
class Shard:
    """A parsed shard: its header and a read-only zero-copy view of its payload."""

    header: ShardHeader
    payload: np.ndarray


def _checksum(buf: memoryview) -> str:
    return f"crc32:{zlib.crc32(buf) & 0xFFFFFFFF:08x}"


def _header_bytes(header: ShardHeader) -> bytes:
    """Prefix and JSON header, padded so that the payload starts on a 64-byte boundary."""
    text = json.dumps(header.to_json(), separators=(",", ":"), sort_keys=True).encode()
    text += b" " * ((-(_PREFIX.size + len(text))) % _ALIGN)
    return _PREFIX.pack(MAGIC, VERSION, 0, len(text), zlib.crc32(text) & 0xFFFFFFFF) + text


def _check_header(header: object) -> ShardHeader:
    if not isinstance(header, ShardHeader):
        raise TypeError(f"Argument 'header' must be a ShardHeader, not {type(header).__name__}.")
    if header.kind not in KINDS:
        raise ValueError(f"Argument 'header' must have kind in {KINDS}, not {header.kind!r}.")
    return header


def _wire_dtype(dtype: object) -> np.dtype:
    dt = np.dtype(dtype)
    dt = np.dtype(dt.newbyteorder("<")) if dt.byteorder not in "<|" else dt
    if dt.str not in _DTYPES:
        raise ValueError(f"Argument 'payload' must have a dtype in {_DTYPES}, not {np.dtype(dtype).str!r}.")
    return dt


def pack_shard(header: ShardHeader, payload: np.ndarray | None = None) -> bytes:
    """Serialise ``header`` and ``payload`` into one shard object.

    Parameters
    ----------
    header : ShardHeader
        Everything but ``dtype``, ``shape``, ``payload_length`` and ``checksum``, which are
        taken from ``payload``.
    payload : numpy.ndarray, optional
        The array to store (converted to little-endian C order); ``None`` for markers.

    Returns
    -------
    bytes
        The object: prefix, header, payload.
    """
    _check_header(header)
    arr = np.zeros(0, dtype="<f8") if payload is None else np.asarray(payload)
    dtype = _wire_dtype(arr.dtype)
    arr = np.ascontiguousarray(arr, dtype=dtype)
    body = memoryview(arr).cast("B") if arr.size else memoryview(b"")
    header = dataclasses.replace(
        header, dtype=dtype.str, shape=tuple(arr.shape), payload_length=body.nbytes,
        checksum=_checksum(body),
    )
    return b"".join((_header_bytes(header), body))


class ShardWriter:
    """A shard object whose payload is filled in place, then sealed by :meth:`finish`.

    ``pack_shard(header, array)`` copies a finished array into a new object; a writer
    lets the producer (the secure encoder) write the payload straight into the object
    that will be uploaded::

        w = ShardWriter(header, "<u4", (m,))
        compute_into(w.payload)
        blob = w.finish()          # == pack_shard(header, w.payload), no copy

    Parameters
    ----------
    header : ShardHeader
        As for :func:`pack_shard`.
    dtype : numpy dtype
        Payload dtype (one of the wire dtypes; stored little-endian).
    shape : tuple of int
        Payload shape.
    """

    def __init__(self, header: ShardHeader, dtype: object, shape: tuple[int, ...]):
        _check_header(header)
        dt = _wire_dtype(dtype)
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"Argument 'shape' must have non-negative sizes, not {shape}.")
        count = int(np.prod(shape, dtype=np.int64))
        # the checksum is the one field filled in later; its text has a fixed width
        self._header = dataclasses.replace(header, dtype=dt.str, shape=shape,
                                           payload_length=count * dt.itemsize,
                                           checksum="crc32:00000000")
        self._offset = len(_header_bytes(self._header))
        self.buffer = bytearray(self._offset + count * dt.itemsize)
        self.payload = np.frombuffer(self.buffer, dtype=dt, count=count,
                                     offset=self._offset).reshape(shape)

    def finish(self) -> bytearray:
        """Checksum the payload, write the header, and return the whole object."""
        body = memoryview(self.buffer)[self._offset :]
        head = _header_bytes(dataclasses.replace(self._header, checksum=_checksum(body)))
        if len(head) != self._offset:  # cannot happen: fixed-width checksum text
            raise AssertionError("shard header changed length")
        self.buffer[: self._offset] = head
        return self.buffer


def unpack_shard(
    data: bytes | bytearray | memoryview,
    *,
    key: str = "<shard>",
    expect: Mapping[str, object] | None = None,
    max_length: int | None = None,
) -> Shard:
    """Parse and verify a shard object.

    Parameters
    ----------
    data : bytes-like
        The object as read from the store.
    key : str, optional
        Its key, for error messages.
    expect : mapping, optional
        Header fields the reader requires (``{"job": ..., "round": 3, "index": 1,
        "code": spec.to_json(), "layout": layout, ...}``); any difference is corruption.
    max_length : int, optional
        The longest update the reader accepts (the job's limit): a header claiming a
        longer ``length`` is corruption.

    Returns
    -------
    Shard
        The header and the payload as a read-only array viewing ``data`` (no copy).

    Raises
    ------
    CorruptShardError
        Bad magic, version, lengths, checksums, malformed header, or an unexpected field.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"Argument 'data' must be bytes-like, not {type(data).__name__}.")
    view = memoryview(data).cast("B")
    if view.nbytes < _PREFIX.size:
        raise CorruptShardError(key, f"object is {view.nbytes} bytes, shorter than the prefix")
    magic, version, reserved, hlen, hcrc = _PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise CorruptShardError(key, f"bad magic {bytes(magic)!r}")
    if version != VERSION:
        raise CorruptShardError(key, f"unsupported format version {version}, expected {VERSION}")
    if reserved != 0:
        raise CorruptShardError(key, f"reserved prefix field is {reserved}, expected 0")
    if hlen > _MAX_HEADER or _PREFIX.size + hlen > view.nbytes:
        raise CorruptShardError(key, f"header length {hlen} exceeds the object")
    text = view[_PREFIX.size : _PREFIX.size + hlen]
    if zlib.crc32(text) & 0xFFFFFFFF != hcrc:
        raise CorruptShardError(key, "header checksum mismatch")
    try:
        header = _parse_header(bytes(text))
    except (ValueError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError included
        raise CorruptShardError(key, f"malformed header ({_short(err)})") from None
    if max_length is not None and header.length > max_length:
        raise CorruptShardError(key, f"length {header.length} exceeds the job's limit of {max_length}")
    start = _PREFIX.size + hlen
    body = view[start:]
    if header.dtype not in _DTYPES:
        raise CorruptShardError(key, f"payload dtype {header.dtype[:16]!r} not allowed")
    dtype = np.dtype(header.dtype)
    expected_len = int(np.prod(header.shape, dtype=np.int64)) * dtype.itemsize
    if body.nbytes != header.payload_length or expected_len != header.payload_length:
        raise CorruptShardError(
            key, f"payload is {body.nbytes} bytes, header says {header.payload_length} "
            f"(shape {header.shape} of {header.dtype} is {expected_len})"
        )
    if _checksum(body) != header.checksum:
        raise CorruptShardError(key, "payload checksum mismatch")
    _check_expect(header, expect or {}, key)
    payload = np.frombuffer(body, dtype=dtype).reshape(header.shape)
    return Shard(header, payload)


def _short(err: Exception) -> str:
    """An error's text cut to one short line (it may quote attacker-chosen bytes)."""
    text = " ".join(str(err).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _check_expect(header: ShardHeader, expect: Mapping[str, object], key: str) -> None:
    for name, want in expect.items():
        if name == "code":
            got: object = dict(header.code)
            want = dict(want)  # type: ignore[call-overload]
        elif name == "contributors":
            got, want = header.contributors, tuple(want)  # type: ignore[arg-type]
        else:
            if name not in ShardHeader.__dataclass_fields__:
                raise ValueError(f"Argument 'expect' names an unknown header field {name!r}.")
            got = getattr(header, name)
        if got != want:
            raise CorruptShardError(key, f"header field {name!r} is {got!r}, expected {want!r}")
