"""The GraphDef reader: what the test writer wrote reads back, splat constants fill out."""

from __future__ import annotations

import numpy as np

from detector.tf_graph import Node, parse_graph_def, serialize_graph_def
from tests.detector.tf_graphs import const_node


def test_graph_reader_reads_back_what_the_writer_wrote() -> None:
    value = np.arange(-3, 9, dtype=np.float32).reshape(3, 4)
    nodes = [
        const_node("c", value),
        Node("i", "Const", (), {"value": np.array([-7, 300], np.int32), "n": -5, "s": b"SAME"}),
        Node("op", "Add", ("c", "^i")),
    ]
    parsed = parse_graph_def(serialize_graph_def(nodes))
    assert list(parsed) == ["c", "i", "op"]
    np.testing.assert_array_equal(parsed["c"].attrs["value"], value)
    np.testing.assert_array_equal(parsed["i"].attrs["value"], [-7, 300])
    assert parsed["i"].attrs["n"] == -5 and parsed["i"].attrs["s"] == b"SAME"
    assert parsed["op"].inputs == ("c", "^i")


def test_graph_reader_fills_a_splat_constant_from_its_single_value() -> None:
    # TensorProto{dtype: DT_FLOAT, tensor_shape {dim {size: 3}}, float_val: 0.5}
    tensor = (
        bytes([0x08, 0x01, 0x12, 0x04, 0x12, 0x02, 0x08, 0x03, 0x2D]) + np.float32(0.5).tobytes()
    )
    attr = bytes([0x42, len(tensor)]) + tensor  # AttrValue.tensor
    entry = b"\x0a\x05value" + bytes([0x12, len(attr)]) + attr
    node = b"\x0a\x01k\x12\x05Const" + bytes([0x2A, len(entry)]) + entry
    parsed = parse_graph_def(bytes([0x0A, len(node)]) + node)
    np.testing.assert_array_equal(parsed["k"].attrs["value"], [0.5, 0.5, 0.5])
