"""Messages: a topic, a JSON header and zero or more raw array buffers, as ZMQ multipart frames.

Wire layout (documented for other languages in ``docs/protocol.md``)::

    frame 0   topic, UTF-8
    frame 1   header, UTF-8 JSON object (schema below)
    frame 2+  one frame per array, in header order: raw C-order bytes, or a jpeg/png payload

Header: ``{"v": 1, "seq": int, "stamp_ns": int, "wall_ns": int, "src": str,
"arrays": [{"name", "dtype", "shape", "codec"}], "meta": {...}}``. Never pickle: decoding
trusts nothing and checks every field, size and count, raising :class:`MessageError` with a
``kind`` that nodes count per reason.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from robostack import codecs
from robostack.clock import now_ns, wall_ns

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 1 << 20
MAX_ARRAYS = 256
MAX_NDIM = 32
MAX_ARRAY_BYTES = 1 << 31
HEARTBEAT_TOPIC = "\x00hb"

# Explicit byte order, numeric kinds only: b(ool), i(nt), u(int), f(loat), c(omplex).
_DTYPE_RE = re.compile(r"^[<>|][biufc](1|2|4|8|16)$")
_HEADER_KEYS = {"v", "seq", "stamp_ns", "wall_ns", "src", "arrays", "meta"}
_ARRAY_KEYS = {"name", "dtype", "shape", "codec"}


class MessageError(ValueError):
    """A message that cannot be encoded or decoded. ``kind`` names the broken part
    (``frames``, ``topic``, ``header``, ``version``, ``schema``, ``dtype``, ``size``, ``codec``)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass
class Message:
    """A timestamped bundle of named arrays.

    ``stamp_ns`` is the capture stamp (``CLOCK_MONOTONIC`` ns of the source host when the data was
    captured, not when sent). ``codecs`` maps array names to ``jpeg``/``png`` for encoding; arrays
    not named there go raw. Decoded raw arrays are read-only views of the received buffers.
    """

    topic: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    stamp_ns: int = 0
    seq: int = 0
    wall_ns: int = 0
    src: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    codecs: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays.values())


def make(
    topic: str,
    arrays: Mapping[str, np.ndarray] | None = None,
    *,
    stamp_ns: int | None = None,
    src: str = "",
    meta: Mapping[str, Any] | None = None,
    codecs: Mapping[str, str] | None = None,
) -> Message:
    """Build a message stamped now unless a capture ``stamp_ns`` is given; ``wall_ns`` is the
    wall-clock time of that same capture instant."""
    mono, wall = now_ns(), wall_ns()
    stamp = mono if stamp_ns is None else int(stamp_ns)
    return Message(
        topic=topic,
        arrays=dict(arrays or {}),
        stamp_ns=stamp,
        wall_ns=wall - (mono - stamp),
        src=src,
        meta=dict(meta or {}),
        codecs=dict(codecs or {}),
    )


def _wire_array(name: str, array: Any) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        array = np.asarray(array)
    if not _DTYPE_RE.match(array.dtype.str):
        raise MessageError("dtype", f"array {name!r} has dtype {array.dtype} that the wire cannot carry")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.require(array, requirements="C")  # ascontiguousarray would make 0-d arrays 1-d


def encode(msg: Message, jpeg_quality: int = 90) -> list:
    """Turn ``msg`` into multipart frames. Raw arrays are passed as buffers (no copy) when they
    are already C-contiguous little-endian; the caller sends them with ``copy=False``."""
    if not isinstance(msg.topic, str) or not msg.topic:
        raise MessageError("topic", f"topic must be a non-empty string, got {msg.topic!r}")
    if len(msg.arrays) > MAX_ARRAYS:
        raise MessageError("schema", f"{len(msg.arrays)} arrays exceed the limit of {MAX_ARRAYS}")
    unknown = set(msg.codecs) - set(msg.arrays)
    if unknown:
        raise MessageError("codec", f"codecs name arrays that are not in the message: {sorted(unknown)}")
    specs = []
    buffers: list = []
    for name, value in msg.arrays.items():
        if not isinstance(name, str) or not name:
            raise MessageError("schema", f"array names must be non-empty strings, got {name!r}")
        array = _wire_array(name, value)
        codec = msg.codecs.get(name, "raw")
        if codec == "raw":
            buffers.append(array.data if array.size else b"")
        else:
            try:
                buffers.append(codecs.encode(array, codec, jpeg_quality))
            except codecs.CodecError as exc:
                raise MessageError("codec", f"array {name!r}: {exc}") from exc
        specs.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "codec": codec})
    header = {
        "v": PROTOCOL_VERSION,
        "seq": int(msg.seq),
        "stamp_ns": int(msg.stamp_ns),
        "wall_ns": int(msg.wall_ns),
        "src": str(msg.src),
        "arrays": specs,
        "meta": msg.meta,
    }
    try:
        header_bytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise MessageError("header", f"metadata is not plain JSON: {exc}") from exc
    return [msg.topic.encode(), header_bytes, *buffers]


def _frame_bytes(frame: Any) -> memoryview:
    buf = getattr(frame, "buffer", None)  # zmq.Frame received with copy=False
    view = memoryview(buf if buf is not None else frame)
    return view if view.ndim == 1 and view.itemsize == 1 else view.cast("B")


def _require_int(header: Mapping[str, Any], key: str) -> int:
    value = header.get(key)
    if type(value) is not int:
        raise MessageError("schema", f"header field {key!r} must be an integer, got {value!r}")
    return value


def decode_header(frame: Any) -> dict[str, Any]:
    """Parse and validate a header frame (everything but the array payloads)."""
    raw = _frame_bytes(frame)
    if len(raw) > MAX_HEADER_BYTES:
        raise MessageError("header", f"header of {len(raw)} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(raw).decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageError("header", f"header is not UTF-8 JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise MessageError("header", f"header must be a JSON object, got {type(header).__name__}")
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise MessageError("version", f"protocol version {version!r}, this end speaks {PROTOCOL_VERSION}")
    extra = set(header) - _HEADER_KEYS
    if extra:
        raise MessageError("schema", f"unknown header fields {sorted(extra)}")
    for key in ("seq", "stamp_ns", "wall_ns"):
        _require_int(header, key)
    if not isinstance(header.get("src"), str):
        raise MessageError("schema", "header field 'src' must be a string")
    if not isinstance(header.get("meta"), dict):
        raise MessageError("schema", "header field 'meta' must be an object")
    arrays = header.get("arrays")
    if not isinstance(arrays, list) or len(arrays) > MAX_ARRAYS:
        raise MessageError("schema", f"header field 'arrays' must be a list of at most {MAX_ARRAYS}")
    names = set()
    for spec in arrays:
        _check_array_spec(spec)
        if spec["name"] in names:
            raise MessageError("schema", f"array name {spec['name']!r} appears twice")
        names.add(spec["name"])
    return header


def _check_array_spec(spec: Any) -> None:
    if not isinstance(spec, dict) or set(spec) != _ARRAY_KEYS:
        raise MessageError("schema", f"array spec must have exactly the fields {sorted(_ARRAY_KEYS)}: {spec!r}")
    if not isinstance(spec["name"], str) or not spec["name"]:
        raise MessageError("schema", f"array name must be a non-empty string: {spec['name']!r}")
    if not isinstance(spec["dtype"], str) or not _DTYPE_RE.match(spec["dtype"]):
        raise MessageError("dtype", f"array {spec['name']!r}: dtype {spec['dtype']!r} is not allowed")
    shape = spec["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(type(d) is int and 0 <= d < MAX_ARRAY_BYTES for d in shape)
    ):
        raise MessageError("schema", f"array {spec['name']!r}: bad shape {shape!r}")
    if spec["codec"] not in codecs.CODECS:
        raise MessageError("codec", f"array {spec['name']!r}: unknown codec {spec['codec']!r}")


def decode(frames: Sequence[Any]) -> Message:
    """Validate multipart ``frames`` and build the message (raw arrays are zero-copy views)."""
    if len(frames) < 2:
        raise MessageError("frames", f"expected topic and header frames, got {len(frames)} frame(s)")
    try:
        topic = bytes(_frame_bytes(frames[0])).decode()
    except UnicodeDecodeError as exc:
        raise MessageError("topic", "topic is not UTF-8") from exc
    if not topic:
        raise MessageError("topic", "topic is empty")
    header = decode_header(frames[1])
    specs = header["arrays"]
    if len(frames) != 2 + len(specs):
        raise MessageError("frames", f"header lists {len(specs)} arrays but {len(frames) - 2} payload frames came")
    arrays: dict[str, np.ndarray] = {}
    used_codecs: dict[str, str] = {}
    for spec, frame in zip(specs, frames[2:]):
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        data = _frame_bytes(frame)
        if spec["codec"] == "raw":
            expected = dtype.itemsize * math.prod(shape)
            if len(data) != expected:
                raise MessageError(
                    "size",
                    f"array {spec['name']!r}: {len(data)} bytes for {shape} {dtype} (expected {expected})",
                )
            arrays[spec["name"]] = np.frombuffer(data, dtype=dtype).reshape(shape)
        else:
            try:
                arrays[spec["name"]] = codecs.decode(data, spec["codec"], dtype, shape)
            except codecs.CodecError as exc:
                raise MessageError("codec", f"array {spec['name']!r}: {exc}") from exc
            used_codecs[spec["name"]] = spec["codec"]
    return Message(
        topic=topic,
        arrays=arrays,
        stamp_ns=header["stamp_ns"],
        seq=header["seq"],
        wall_ns=header["wall_ns"],
        src=header["src"],
        meta=header["meta"],
        codecs=used_codecs,
    )
