"""The detector stage: batches of frames in, one `Detections` per frame out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from detector.errors import ModelConfigError
from detector.models import build_model
from detector.postprocess import postprocess
from detector.ssd import SSD
from pipeline.types import Detections, Frame, LabelMap


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" -> CUDA if available, else CPU; "cpu", "cuda", "cuda:N" are checked."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ModelConfigError(
            f"invalid device {device!r}; use auto, cpu, cuda or cuda:N"
        ) from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelConfigError(
                f"device {device!r} requested but CUDA is not available to torch "
                f"{torch.__version__}; set `detector.device: cpu` (or auto)"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ModelConfigError(
                f"device {device!r} requested but only {count} CUDA device(s) exist "
                f"(cuda:0..cuda:{count - 1})"
            )
    return resolved


def resolve_label_filter(
    names: Sequence[str] | None, label_map: LabelMap, background_class: int | None
) -> list[int] | None:
    """Column indices of the label names to report (case-insensitive); None means all."""
    if not names:
        return None
    columns: dict[str, list[int]] = {}
    for index, name in enumerate(label_map.names):
        if index != background_class and name and name != "N/A":
            columns.setdefault(name.lower(), []).append(index)
    selected: set[int] = set()
    for name in names:
        found = columns.get(name.strip().lower())
        if found is None:
            valid = list(dict.fromkeys(label_map.names[i[0]] for i in columns.values()))
            raise ModelConfigError(
                f"unknown label {name!r} in `detector.labels`; valid labels include: "
                f"{', '.join(valid[:8])}{', ...' if len(valid) > 8 else ''} "
                f"({len(valid)} in all)"
            )
        selected.update(found)
    return sorted(selected)


class Detector:
    """Runs an `SSD` on batches of frames of any sizes.

    Args:
        model: the network; moved to `device` and put in eval mode.
        label_map: names of the model's class_logits columns.
        device: "auto", "cpu", "cuda" or "cuda:N".
        score_threshold: report detections scoring above this.
        nms_threshold: IoU above which the weaker of two same-class boxes is dropped.
        max_detections: at most this many detections per frame.
        labels: report only these class names (None or empty: all classes).
        pre_nms_top_k: at most this many (box, class) candidates per frame enter NMS.
    """

    def __init__(
        self,
        model: SSD,
        label_map: LabelMap,
        device: str | torch.device = "auto",
        score_threshold: float = 0.5,
        nms_threshold: float = 0.45,
        max_detections: int = 100,
        labels: Sequence[str] | None = None,
        pre_nms_top_k: int = 1000,
    ) -> None:
        if not 0.0 <= score_threshold < 1.0:
            raise ModelConfigError(f"score_threshold must be in [0, 1), got {score_threshold}")
        if not 0.0 < nms_threshold <= 1.0:
            raise ModelConfigError(f"nms_threshold must be in (0, 1], got {nms_threshold}")
        if max_detections < 1 or pre_nms_top_k < 1:
            raise ModelConfigError(
                f"max_detections and pre_nms_top_k must be >= 1, got {max_detections} "
                f"and {pre_nms_top_k}"
            )
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.labels = label_map
        self.input_size = model.input_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_detections = max_detections
        self.pre_nms_top_k = pre_nms_top_k
        selected = resolve_label_filter(labels, label_map, model.background_class)
        self.classes: Tensor | None = (
            None if selected is None else torch.tensor(selected, device=self.device)
        )

    @classmethod
    def build(
        cls,
        model: str,
        weights: str = "default",
        device: str = "auto",
        score_threshold: float = 0.5,
        nms_threshold: float = 0.45,
        max_detections: int = 100,
        labels: Sequence[str] | None = None,
    ) -> Detector:
        """A detector for a registered model name or a checkpoint path (see `build_model`)."""
        resolved = resolve_device(device)  # fail on a bad device before building the model
        net, label_map = build_model(model, weights)
        return cls(
            net,
            label_map,
            resolved,
            score_threshold=score_threshold,
            nms_threshold=nms_threshold,
            max_detections=max_detections,
            labels=labels,
        )

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """One `Detections` per frame, boxes in that frame's pixels, clipped to the frame."""
        if not frames:
            return []
        with torch.inference_mode():
            images = self._model_input(frames)
            box_regression, class_logits = self.model(images)
            model = self.model
            result = postprocess(
                box_regression,
                class_logits,
                anchors=model.anchors,
                box_coder=model.box_coder,
                score_fn=model.score_fn,
                background_class=model.background_class,
                score_threshold=self.score_threshold,
                nms_threshold=self.nms_threshold,
                max_detections=self.max_detections,
                pre_nms_top_k=self.pre_nms_top_k,
                classes=self.classes,
            )
            sizes = torch.tensor(
                [(f.height, f.width) for f in frames], dtype=torch.float32, device=self.device
            )
            return result.scaled(sizes).to_detections()

    def _model_input(self, frames: Sequence[Frame]) -> Tensor:
        """float [B, 3, *input_size] in 0..255 on the device, frames resized per size group."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, frame in enumerate(frames):
            groups.setdefault((frame.height, frame.width), []).append(i)
        if len(groups) == 1:
            return self._resized([f.image for f in frames])
        out = torch.empty((len(frames), 3, *self.input_size), device=self.device)
        for rows in groups.values():
            index = torch.tensor(rows, device=self.device)
            out[index] = self._resized([frames[i].image for i in rows])
        return out

    def _resized(self, images: list[npt.NDArray[np.uint8]]) -> Tensor:
        """Same-sized RGB HxWx3 uint8 images -> float [n, 3, *input_size] on the device."""
        if self.device.type == "cuda":
            host = torch.empty((len(images), *images[0].shape), dtype=torch.uint8, pin_memory=True)
            np.stack(images, out=host.numpy())
            pixels = host.to(self.device, non_blocking=True)
        else:
            pixels = torch.from_numpy(np.stack(images))
        x = pixels.permute(0, 3, 1, 2).float()
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(
                x, size=self.input_size, mode="bilinear", align_corners=False, antialias=False
            )
        return x
