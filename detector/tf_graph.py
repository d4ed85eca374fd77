"""A minimal reader (and writer, for tests) of TensorFlow frozen `GraphDef` files.

Decodes the protobuf wire format of the subset of `GraphDef`/`NodeDef`/`AttrValue`/
`TensorProto` a frozen inference graph needs, so the converter runs without TensorFlow or
protobuf installed. Field numbers follow tensorflow/core/framework/*.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# TensorFlow DataType enum values -> numpy dtypes (the ones frozen SSD graphs use).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.float64),
    3: np.dtype(np.int32),
    4: np.dtype(np.uint8),
    5: np.dtype(np.int16),
    6: np.dtype(np.int8),
    9: np.dtype(np.int64),
    10: np.dtype(np.bool_),
    19: np.dtype(np.float16),
}
_DT_STRING = 7

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


class GraphFormatError(ValueError):
    """The bytes are not a (complete) serialized GraphDef."""


@dataclass(frozen=True)
class Node:
    """One `NodeDef`: name, op, inputs and the attrs this reader decodes.

    Attr values are decoded to `int`, `float`, `bool`, `bytes`, `list`, a shape
    `tuple[int, ...]` or a numpy array (for `tensor` attrs); others are kept as `None`.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, object] = field(default_factory=dict)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise GraphFormatError("varint runs past the end of the data")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise GraphFormatError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for every field of one message."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise GraphFormatError("field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _FIXED64:
            value = buf[pos : pos + 8]
            pos += 8
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos)
            value = buf[pos : pos + size]
            pos += size
        elif wire == _FIXED32:
            value = buf[pos : pos + 4]
            pos += 4
        else:
            raise GraphFormatError(f"unsupported wire type {wire}")
        if pos > end:
            raise GraphFormatError("field runs past the end of the data (truncated file?)")
        yield num, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _varints(value: int | bytes) -> list[int]:
    """A repeated integer field, packed (bytes) or not (one int)."""
    if isinstance(value, int):
        return [_signed64(value)]
    out = []
    pos = 0
    while pos < len(value):
        v, pos = _read_varint(value, pos)
        out.append(_signed64(v))
    return out


def _floats(value: int | bytes, wire: int) -> list[float]:
    """A repeated float field, packed or one fixed32."""
    assert isinstance(value, bytes)
    if wire in (_FIXED32, _LEN):
        return list(struct.unpack(f"<{len(value) // 4}f", value))
    raise GraphFormatError(f"float field with wire type {wire}")


def _shape(buf: bytes) -> tuple[int, ...]:
    dims: list[int] = []
    for num, _, value in _fields(buf):
        if num == 2:
            assert isinstance(value, bytes)
            size = 0
            for dnum, _, dval in _fields(value):
                if dnum == 1:
                    assert isinstance(dval, int)
                    size = _signed64(dval)
            dims.append(size)
    return tuple(dims)


def _tensor(buf: bytes) -> npt.NDArray[np.generic]:
    """Decode a `TensorProto` to a numpy array (content bytes or typed value fields)."""
    dtype_num = 0
    shape: tuple[int, ...] = ()
    content: bytes | None = None
    values: list[float] | list[int] = []
    for num, wire, value in _fields(buf):
        if num == 1:
            assert isinstance(value, int)
            dtype_num = value
        elif num == 2:
            assert isinstance(value, bytes)
            shape = _shape(value)
        elif num == 4:
            assert isinstance(value, bytes)
            content = value
        elif num == 5:  # float_val
            values = [*values, *_floats(value, wire)]
        elif num in (7, 10, 11, 13):  # int_val, int64_val, bool_val, half_val (as uint16 bits)
            values = [*values, *_varints(value)]
    if dtype_num == _DT_STRING:
        return np.zeros(shape, dtype=np.object_)
    if dtype_num not in _DTYPES:
        raise GraphFormatError(f"unsupported tensor dtype enum {dtype_num}")
    dtype = _DTYPES[dtype_num]
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        arr = np.frombuffer(content, dtype=dtype.newbyteorder("<")).astype(dtype)
        if arr.size != count:
            raise GraphFormatError(f"tensor has {arr.size} values for shape {list(shape)}")
        return arr.reshape(shape)
    if dtype == np.float16:
        src = np.asarray(values, dtype=np.uint16).view(np.float16)
    else:
        src = np.asarray(values, dtype=dtype)
    if src.size == 0:
        return np.zeros(shape, dtype=dtype)
    if src.size == count:
        return src.reshape(shape)
    # TensorProto repeats the last value to fill the shape ("splat" constants).
    out = np.empty(count, dtype=dtype)
    out[: src.size] = src
    out[src.size :] = src[-1]
    return out.reshape(shape)


def _list_value(buf: bytes) -> list[object]:
    out: list[object] = []
    for num, wire, value in _fields(buf):
        if num == 2:
            out.append(value)
        elif num in (3, 5, 6):
            out.extend(_varints(value))
        elif num == 4:
            out.extend(_floats(value, wire))
        elif num == 7:
            assert isinstance(value, bytes)
            out.append(_shape(value))
        elif num == 8:
            assert isinstance(value, bytes)
            out.append(_tensor(value))
    return out


def _attr_value(buf: bytes) -> object:
    for num, wire, value in _fields(buf):
        if num == 1:
            assert isinstance(value, bytes)
            return _list_value(value)
        if num == 2:
            return value
        if num == 3:
            assert isinstance(value, int)
            return _signed64(value)
        if num == 4:
            return _floats(value, wire)[0]
        if num == 5:
            return bool(value)
        if num == 6:
            return value
        if num == 7:
            assert isinstance(value, bytes)
            return _shape(value)
        if num == 8:
            assert isinstance(value, bytes)
            return _tensor(value)
    return None


def _node(buf: bytes) -> Node:
    name = op = ""
    inputs: list[str] = []
    attrs: dict[str, object] = {}
    for num, _, value in _fields(buf):
        if not isinstance(value, bytes):
            continue
        if num == 1:
            name = value.decode()
        elif num == 2:
            op = value.decode()
        elif num == 3:
            inputs.append(value.decode())
        elif num == 5:
            key = ""
            attr: object = None
            for enum, _, evalue in _fields(value):
                assert isinstance(evalue, bytes)
                if enum == 1:
                    key = evalue.decode()
                elif enum == 2:
                    attr = _attr_value(evalue)
            attrs[key] = attr
    if not name or not op:
        raise GraphFormatError("a node without a name or op")
    return Node(name=name, op=op, inputs=tuple(inputs), attrs=attrs)


def parse_graph_def(data: bytes) -> dict[str, Node]:
    """Parse a serialized `GraphDef`; returns its nodes by name (in file order).

    Raises `GraphFormatError` if the bytes are not a complete GraphDef.
    """
    nodes: dict[str, Node] = {}
    try:
        for num, wire, value in _fields(data):
            if num == 1:
                if wire != _LEN or not isinstance(value, bytes):
                    raise GraphFormatError("GraphDef.node is not a message")
                node = _node(value)
                nodes[node.name] = node
    except (UnicodeDecodeError, struct.error, AssertionError) as exc:
        raise GraphFormatError(f"malformed data ({exc})") from exc
    return nodes


# --- writer: enough to build small graphs in tests ---------------------------------------


def _varint_bytes(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(num: int, payload: bytes) -> bytes:
    return _varint_bytes(num << 3 | _LEN) + _varint_bytes(len(payload)) + payload


def _tensor_bytes(arr: npt.NDArray[np.generic]) -> bytes:
    dtype_num = next(k for k, v in _DTYPES.items() if v == arr.dtype)
    dims = b"".join(_len_field(2, _varint_bytes(1 << 3) + _varint_bytes(d)) for d in arr.shape)
    return (
        _varint_bytes(1 << 3)
        + _varint_bytes(dtype_num)
        + _len_field(2, dims)
        + _len_field(4, np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())
    )


def serialize_graph_def(nodes: list[Node]) -> bytes:
    """Serialize nodes to `GraphDef` bytes; attrs may be `int`, `bytes` or numpy arrays."""
    out = bytearray()
    for node in nodes:
        body = _len_field(1, node.name.encode()) + _len_field(2, node.op.encode())
        for inp in node.inputs:
            body += _len_field(3, inp.encode())
        for key, value in node.attrs.items():
            if isinstance(value, np.ndarray):
                attr = _len_field(8, _tensor_bytes(value))
            elif isinstance(value, bytes):
                attr = _len_field(2, value)
            elif isinstance(value, int):
                attr = _varint_bytes(3 << 3) + _varint_bytes(value)
            else:
                raise TypeError(f"cannot serialize attr {key}={value!r}")
            body += _len_field(5, _len_field(1, key.encode()) + _len_field(2, attr))
        out += _len_field(1, body)
    return bytes(out)
