"""`evaluate`: a model's COCO mAP on labelled images, run as `run` deploys it, and its speed;
or a checkpoint's int8 network measured against float32."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.argtypes import nonempty
from pipeline.cli.exit_codes import EXIT_OK, EXIT_USAGE
from pipeline.cli.train import DATA_HELP, int8_verdict

if TYPE_CHECKING:  # heavy imports at call time only: `--help` stays fast
    from detector.training.samples import DetectionData, Sample


def add_parser(sub: Any) -> None:
    """The `evaluate` subcommand."""
    e = sub.add_parser(
        "evaluate",
        help="COCO mAP of a model on labelled images, run as `run` deploys it, and its speed",
    )
    e.add_argument(
        "--model", type=nonempty, required=True, help="a model name or a checkpoint (best.pt)"
    )
    e.add_argument("--data", type=nonempty, required=True, help=DATA_HELP)
    e.add_argument(
        "--split",
        choices=("auto", "val", "train", "all"),
        default="auto",
        help="which images: auto (the data's validation images if it has them, else all)",
    )
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    e.add_argument(
        "--runtime", default="auto", help="auto, torch, compile or onnxruntime (as in a config)"
    )
    e.add_argument(
        "--precision", default="auto", help="auto, fp32, fp16, bf16 or int8 (as in a config)"
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument(
        "--measure-int8",
        action="store_true",
        help="for a checkpoint: quantize it on the data's training images, score int8 against "
        "float32 on the images evaluated (mAP@.5) and keep both beside it, as `train` does when "
        "it ends; `precision: auto` then runs it in int8 where int8 lost little",
    )
    e.set_defaults(func=cmd_evaluate)


def _evaluate_int8(
    args: argparse.Namespace, data: DetectionData, samples: tuple[Sample, ...]
) -> int:
    """`evaluate --measure-int8`: the checkpoint's int8 network measured on `samples`,
    calibrated on the data's training images (else on `samples`), and kept beside it."""
    from dataclasses import asdict

    from pipeline.folders import folder_problem
    from pipeline.int8_measure import measure_int8

    checkpoint = Path(args.model).expanduser()
    if not checkpoint.is_file():
        print(
            f"error: --measure-int8 measures a checkpoint file; {args.model} is none",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if (problem := folder_problem(checkpoint.parent)) is not None:  # before minutes of work
        print(
            f"error: --measure-int8 keeps its files beside {args.model}: {problem}", file=sys.stderr
        )
        return EXIT_USAGE
    found = measure_int8(checkpoint, data.train or samples, samples, data.class_names)
    if args.json:
        print(json.dumps({"model": args.model, **asdict(found), "acceptable": found.acceptable}))
    else:
        print(int8_verdict(found))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from detector.errors import ModelConfigError, WeightsUnavailableError
    from detector.request import DetectorRequest
    from detector.training.evaluation import MAX_DETECTIONS, SCORE_FLOOR
    from detector.training.samples import DatasetError, read_dataset
    from pipeline.evaluation import build_detector, evaluate_detector

    try:
        data = read_dataset(args.data)
        samples = {
            "train": data.train,
            "val": data.val,
            "all": data.train + data.val,
            "auto": data.val or data.train + data.val,
        }[args.split]
        if not samples:
            print(f"error: {args.data} has no {args.split} images", file=sys.stderr)
            return EXIT_USAGE
        if not any(len(sample.boxes) for sample in samples):  # before the model is prepared
            print(
                f"error: none of the {len(samples)} images of {args.data} evaluated (--split "
                f"{args.split}) holds a box to score the model against",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if args.measure_int8:
            return _evaluate_int8(args, data, samples)
        request = DetectorRequest(
            model=args.model,
            device=args.device,
            runtime=args.runtime,
            precision=args.precision,
            score_threshold=SCORE_FLOOR,
            max_detections=MAX_DETECTIONS,
        )
        detector = build_detector(request, data.class_names)
        result = evaluate_detector(detector, samples, data.class_names)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)  # the first problems, under one line
        return EXIT_USAGE
    except (ModelConfigError, WeightsUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    metrics = result.metrics
    if args.json:
        print(
            json.dumps(
                {
                    "model": args.model,
                    "data": args.data,
                    "images": result.images,
                    "map": metrics.map,
                    "map50": metrics.map50,
                    "per_class": metrics.per_class,
                    "images_per_s": round(result.images_per_s, 2),
                    "detector": result.detector,
                }
            )
        )
        return EXIT_OK
    print(f"{args.model} on {result.images} images of {args.data}")
    print(f"  mAP@[.5:.95] {metrics.map:.3f}   mAP@.5 {metrics.map50:.3f}")
    width = max((len(name) for name in metrics.per_class), default=5)
    for name, ap in metrics.per_class.items():
        shown = "  n/a (no ground truth)" if ap is None else f"{ap:.3f}"
        print(f"  {name:<{width}}  AP {shown}")
    print(f"  {result.images_per_s:.1f} images/s: {result.detector}")
    return EXIT_OK
