"""`export`: a model's network as an ONNX file, to run without this pipeline."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Any

from pipeline.argtypes import nonempty, out_file, overwrites, whole
from pipeline.cli.exit_codes import EXIT_OK, EXIT_USAGE

log = logging.getLogger(__name__)

FORMATS = ("onnx",)


def add_parser(sub: Any) -> None:
    """The `export` subcommand."""
    p = sub.add_parser(
        "export",
        help="write a model (a trained checkpoint or a model name) as an ONNX file",
        description=(
            "Write a model's network as an ONNX file that runs in ONNX Runtime anywhere: "
            "uint8 RGB images in, raw box codes and class logits out, with the labels, "
            "default boxes and box coder in the file's metadata (docs/models.md)."
        ),
    )
    p.add_argument(
        "--model",
        required=True,
        type=nonempty,
        help="a checkpoint (such as the best.pt of train) or a model name: person_ssdlite, "
        "ssdlite320_mobilenet_v3_large, ssd300_vgg16",
    )
    p.add_argument(
        "--weights",
        default="default",
        type=nonempty,
        help="for a model name: default (its pretrained weights), none (random) or a "
        "weights file, as `detector.weights` (default: default)",
    )
    p.add_argument("--format", default="onnx", choices=FORMATS, help="file format (default: onnx)")
    p.add_argument(
        "--out",
        required=True,
        type=out_file,
        help="the file to write, e.g. model.onnx; replaced only once the new one is complete",
    )
    p.add_argument(
        "--size",
        type=whole(1, 4096),
        metavar="PIXELS",
        help="input side in pixels (default: the model's own), where the model's "
        "architecture takes another (docs/models.md)",
    )
    p.set_defaults(func=cmd_export)


_CONFIG_KEY = re.compile(r"`detector\.(model|weights)(?:: ([^`]*))?`")


def as_options(message: str) -> str:
    """A detector's error as this command's options say it: its advice names the config's
    keys (`detector.weights: x.pth`), which here are options (`--weights x.pth`)."""
    return _CONFIG_KEY.sub(
        lambda key: f"`--{key[1]}{'' if key[2] is None else ' ' + key[2]}`", message
    )


def cmd_export(args: argparse.Namespace) -> int:
    inputs = {"the checkpoint --model reads": args.model, "the --weights file": args.weights}
    if (problem := overwrites(args.out, inputs)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE

    from detector.errors import ModelConfigError, WeightsUnavailableError
    from detector.models import build_model
    from detector.onnx_export import write_onnx

    try:
        model, labels = build_model(args.model, args.weights, args.size)
        out = write_onnx(model, labels, args.out)
    except (ModelConfigError, WeightsUnavailableError) as exc:
        log.debug("export failed", exc_info=True)
        print(f"error: {as_options(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    (height, width), boxes = model.input_size, model.num_anchors
    print(
        f"{out}: ONNX; images uint8 [B, 3, {height}, {width}] -> box_regression "
        f"[B, {boxes}, 4], class_logits [B, {boxes}, {len(labels.names)}]; labels: "
        f"{', '.join(labels.names)}"
    )
    return EXIT_OK
