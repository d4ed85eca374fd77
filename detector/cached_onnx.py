"""A run's detector straight from the cache, without torch: `CachedOnnxDetector`.

A run that ONNX Runtime detects for keeps, beside the network it ran (`detector.onnx_runtime`),
a `RunBundle`: that network's path and what post-processing needs (anchors, box coding,
scores, labels). The next run with the same model, weights, precision, calibration clip and
code opens the network from the bundle and post-processes in numpy: it imports neither
torch nor torchvision, and neither exports, hashes the weights in torch, nor decodes the
calibration clip. Anything else (no bundle yet, a changed file, an `auto` choice that needs
torch to settle) builds the `detector.Detector` as before, which writes the bundle.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from detector.labels import check_class_names, resolve_label_filter
from detector.non_finite import NonFiniteWarning
from detector.numpy_postprocess import Decoding, postprocess_numpy
from detector.onnx_runtime import (
    INPUT,
    OUTPUTS,
    cache_dir,
    open_session,
    prune,
    threads_per_worker,
    touch,
)
from detector.options import DetectorOptions
from detector.quantize import DEFAULT_CALIBRATION
from detector.resize import resize_rgb
from pipeline.types import Detections, Frame, LabelMap

if TYPE_CHECKING:
    from detector.ssd import SSD

log = logging.getLogger(__name__)

BUNDLE_PATTERN = "run-*.npz"
BUNDLE_FORMAT = 1
"""Bumped when a bundle's contents change, so that older bundles are not read."""
PACKAGE = Path(__file__).resolve().parent
VERSIONS = ("torch", "torchvision", "onnxruntime", "onnx", "onnxscript")
"""Packages whose version changes what is exported, quantized or run."""


@dataclass(frozen=True)
class RunBundle:
    """What a run needs to detect with a cached ONNX network, without torch.

    Attributes:
        onnx: the float32 or int8 network ONNX Runtime runs (in the cache).
        input_size: (H, W) frames are resized to.
        decoding: anchors, box coding and scoring (`Decoding`).
        labels: the model's class names.
    """

    onnx: Path
    input_size: tuple[int, int]
    decoding: Decoding
    labels: LabelMap

    @classmethod
    def of(cls, model: SSD, labels: LabelMap, onnx: Path) -> RunBundle:
        """The bundle of `model` (an `SSD`) run from the file `onnx`."""
        coder = model.box_coder
        decoding = Decoding(
            anchors=model.anchors.detach().cpu().float().numpy(),
            weights=coder.weights,  # type: ignore[arg-type]  # four floats: BoxCoder checks
            yx_order=coder.yx_order,
            clamp=coder.clamp,
            score_fn=model.score_fn,
            background_class=model.background_class,
        )
        return cls(onnx, model.input_size, decoding, labels)

    def save(self, path: Path) -> None:
        """Writes the bundle to `path` (atomically: a reader never sees half a file)."""
        d = self.decoding
        meta = {
            "format": BUNDLE_FORMAT,
            "onnx": str(self.onnx),
            "input_size": list(self.input_size),
            "weights": list(d.weights),
            "yx_order": d.yx_order,
            "clamp": d.clamp,
            "score_fn": d.score_fn,
            "background_class": d.background_class,
            "labels": list(self.labels.names),
        }
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
        try:
            np.savez(partial, anchors=d.anchors, meta=np.array(json.dumps(meta)))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> RunBundle:
        """The bundle saved at `path`; raises OSError, ValueError or KeyError if unreadable,
        ModelConfigError for a class name a checkpoint is refused for (one kept by an older
        version)."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            anchors = np.ascontiguousarray(data["anchors"], dtype=np.float32)
        if meta["format"] != BUNDLE_FORMAT:
            raise ValueError(f"bundle format {meta['format']}, not {BUNDLE_FORMAT}")
        decoding = Decoding(
            anchors=anchors,
            weights=tuple(float(w) for w in meta["weights"]),  # type: ignore[arg-type]
            yx_order=bool(meta["yx_order"]),
            clamp=meta["clamp"],
            score_fn=meta["score_fn"],
            background_class=meta["background_class"],
        )
        check_class_names(meta["labels"], str(path))
        height, width = meta["input_size"]
        return cls(
            Path(meta["onnx"]), (int(height), int(width)), decoding, LabelMap(tuple(meta["labels"]))
        )


def bundle_path(options: DetectorOptions) -> Path | None:
    """Where the bundle of a run with `options` is kept; None where such a run is not
    detected from a bundle: not onnxruntime, more than one worker, or random weights."""
    request = options.request
    if options.runtime != "onnxruntime" or options.workers != 1 or request.weights == "none":
        return None
    digest = hashlib.sha256()
    fields = (BUNDLE_FORMAT, request.model, request.weights, options.precision, request.calibration)
    digest.update(repr(fields).encode())
    for package in VERSIONS:
        try:
            digest.update(f"{package}={importlib.metadata.version(package)}|".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{package}=none|".encode())
    for file in _inputs(options):
        digest.update(f"{file}|".encode())
        # Missing: OSError, and the Detector then says what is wrong.
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return cache_dir() / BUNDLE_PATTERN.replace("*", digest.hexdigest()[:32])


def _inputs(options: DetectorOptions) -> list[Path]:
    """The files a run's network is made from: the detector's code (architectures, anchors,
    export), the bundled weights or the given weights or checkpoint, the calibration clip or
    the checkpoint's measured int8 network."""
    request = options.request
    files = sorted(PACKAGE.glob("*.py"))
    if request.weights == "default":
        files += sorted((PACKAGE / "weights").glob("*.pt"))
    else:
        files.append(Path(request.weights).expanduser())
    if (checkpoint := Path(request.model).expanduser()).is_file():  # not a registered name
        files.append(checkpoint)
    if options.int8_network is not None:
        files.append(options.int8_network)
    elif options.precision == "int8":
        files.append(Path(request.calibration or DEFAULT_CALIBRATION).expanduser())
    return files


@dataclass(frozen=True)
class DetectedNow:
    """A batch's detections, computed when submitted (`CachedOnnxDetector.submit`)."""

    detections: list[Detections]

    def result(self) -> list[Detections]:
        return self.detections


class CachedOnnxDetector:
    """Frames in, one `Detections` per frame out, from a `RunBundle`'s network (see the
    module). It detects as `detector.Detector` does with these options (the same resize,
    `detector.resize`), but post-processes in numpy.
    """

    pipelined = False

    def __init__(self, bundle: RunBundle, options: DetectorOptions) -> None:
        self.labels = bundle.labels
        self.background = bundle.decoding.background_class
        self.options = options
        self.input_size = bundle.input_size
        self.decoding = bundle.decoding
        background = bundle.decoding.background_class
        selected = resolve_label_filter(options.request.labels, bundle.labels, background)
        self.classes = None if selected is None else np.asarray(selected, dtype=np.int64)
        threads = threads_per_worker(options.workers, options.sharing)
        self.session: Any = open_session(bundle.onnx, threads)
        self._non_finite = NonFiniteWarning(options.request.model)

    @classmethod
    def open(cls, options: DetectorOptions) -> CachedOnnxDetector | None:
        """The detector for `options` from its bundle; None where there is none (or it
        cannot be used: then the `Detector` is built, and writes it again)."""
        try:
            path = bundle_path(options)
            if path is None or not path.is_file():
                return None
            detector = cls(RunBundle.load(path), options)
            touch(path)
            return detector
        except Exception as exc:  # any unusable bundle means the same: build the Detector
            log.info("the cached detector cannot be used (%s); building it", exc)
            return None

    @staticmethod
    def keep(options: DetectorOptions, model: SSD, labels: LabelMap, onnx: Path) -> None:
        """Saves the bundle of a run with `options` that ran `model` from the file `onnx`, for
        the next run to start from; a failure to save costs only that."""
        try:
            path = bundle_path(options)
            if path is not None and not os.access(path.parent, os.W_OK | os.X_OK):
                # a read-only cache: the network's export already said so, once
                log.debug("cannot keep the detector's bundle in %s", path.parent)
            elif path is not None:
                RunBundle.of(model, labels, onnx).save(path)
                prune(path.parent, keep=path, pattern=BUNDLE_PATTERN)
        except (OSError, ValueError) as exc:
            log.warning("cannot keep the detector's bundle for the next run: %s", exc)

    def describe(self) -> str:
        """What runs the detector, and why (`DetectorOptions.describe`)."""
        return self.options.describe()

    @property
    def batch_size(self) -> int:
        """Frames per batch the options settled on (`DetectorOptions.batch_size`)."""
        return self.options.batch_size

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """One `Detections` per frame, boxes in that frame's pixels, clipped to the frame."""
        if not frames:
            return []
        pixels = np.ascontiguousarray(self.model_input(frames).transpose(0, 3, 1, 2))
        box_regression, class_logits = self.session.run(list(OUTPUTS), {INPUT: pixels})
        asked = self.options.request
        detections, non_finite = postprocess_numpy(
            box_regression,
            class_logits,
            self.decoding,
            [(f.height, f.width) for f in frames],
            score_threshold=asked.score_threshold,
            nms_threshold=asked.nms_threshold,
            max_detections=asked.max_detections,
            pre_nms_top_k=asked.pre_nms_top_k,
            classes=self.classes,
        )
        self._non_finite.note(non_finite)
        return detections

    def submit(self, frames: Sequence[Frame]) -> DetectedNow:
        """`detect(frames)`, done at once (nothing runs beside the caller)."""
        return DetectedNow(self.detect(frames))

    def close(self) -> None:
        """Nothing to end: it starts no threads of its own (ONNX Runtime's pool ends with
        its session)."""

    def model_image(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """`image` (RGB uint8 [H, W, 3]) resized as `model_input` resizes it: uint8
        [*input_size, 3], for a camera's reader thread to make ahead (`Frame.model_image`)."""
        return resize_rgb(image, self.input_size)

    def model_input(self, frames: Sequence[Frame]) -> npt.NDArray[np.uint8]:
        """uint8 [B, H, W, 3] model inputs: each frame resized (bilinear) to `input_size`
        (its `model_image` where it has one)."""
        return np.stack([self.model_image(f.image_for(self.input_size)) for f in frames])
