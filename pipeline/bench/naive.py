"""The naive baseline: the clip the way a first script runs it, one frame at a time (OpenCV
reads, a per-image float transform, the model, a Python loop over classes, OpenCV draws and
`cv2.VideoWriter` writes)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.bench.end_to_end import MAX_DETECTIONS, NMS_THRESHOLD, SCORE_THRESHOLD
from pipeline.bench.report import NaiveResult
from pipeline.types import LabelMap

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from detector.ssd import SSD


def naive_postprocess(
    box_regression: Tensor,
    class_logits: Tensor,
    model: SSD,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
    topk_candidates: int = 400,
) -> tuple[Tensor, Tensor, Tensor]:
    """One image, as torchvision's `SSD.postprocess_detections`: a Python loop over classes.

    box_regression [A, 4], class_logits [A, C] -> boxes [N, 4] (normalised), scores, labels.
    """
    import torch
    import torch.nn.functional as F
    from torchvision.ops import batched_nms

    from detector.request import reaches_threshold

    boxes = model.box_coder.decode(box_regression[None], model.anchors)[0].clamp(0.0, 1.0)
    if model.score_fn == "softmax":
        scores = F.softmax(class_logits, dim=-1)
    else:
        scores = torch.sigmoid(class_logits)
    all_boxes, all_scores, all_labels = [], [], []
    for label in range(scores.shape[-1]):
        if label == model.background_class:
            continue
        score = scores[:, label]
        keep = reaches_threshold(score, score_threshold)  # the pipeline's rule
        score, box = score[keep], boxes[keep]
        score, index = score.topk(min(topk_candidates, score.numel()))
        all_boxes.append(box[index])
        all_scores.append(score)
        all_labels.append(torch.full_like(index, label))
    image_boxes, image_scores = torch.cat(all_boxes), torch.cat(all_scores)
    image_labels = torch.cat(all_labels)
    keep = batched_nms(image_boxes, image_scores, image_labels, nms_threshold)[:max_detections]
    return image_boxes[keep], image_scores[keep], image_labels[keep]


def run_naive(
    clip: str,
    model: SSD,
    labels: LabelMap,
    out_path: Path,
    device: torch.device,
    max_frames: int | None = None,
) -> tuple[int, float]:
    """OpenCV read -> per-frame float transform -> model -> loop postprocess -> draw -> write.

    Returns (frames, seconds).
    """
    import cv2
    import torch
    import torch.nn.functional as F

    capture = cv2.VideoCapture(clip)
    if not capture.isOpened():
        raise RuntimeError(f"OpenCV cannot open {clip}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer: cv2.VideoWriter | None = None
    frames, started = 0, time.perf_counter()
    try:
        while max_frames is None or frames < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            height, width = bgr.shape[:2]
            if writer is None:
                fourcc = cv2.VideoWriter.fourcc(*"mp4v")
                writer = cv2.VideoWriter(str(out_path), fourcc, fps, (width, height))
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            # torchvision's default transform: float 0..1, then resize (per image).
            image = torch.from_numpy(rgb).to(device).permute(2, 0, 1).float() / 255
            image = F.interpolate(
                image[None], size=model.input_size, mode="bilinear", align_corners=False
            )
            with torch.no_grad():
                regression, logits = model(image * 255)
                boxes, scores, classes = naive_postprocess(
                    regression[0], logits[0], model, SCORE_THRESHOLD, NMS_THRESHOLD, MAX_DETECTIONS
                )
            boxes = (boxes * torch.tensor([width, height, width, height], device=device)).cpu()
            for box, score, label in zip(boxes.tolist(), scores.tolist(), classes.tolist(),
                                         strict=True):  # fmt: skip
                x1, y1, x2, y2 = (int(v) for v in box)
                cv2.rectangle(bgr, (x1, y1), (x2, y2), (0, 255, 0), 2)
                caption = f"{labels.name(label)} {score:.2f}"
                cv2.putText(bgr, caption, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                            (0, 255, 0), 1)  # fmt: skip
            writer.write(bgr)
            frames += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return frames, time.perf_counter() - started


class NaiveBaseline:
    """The naive baseline's runs, one at a time (`run_once`), on one copy of `clip`, with
    `threads` torch threads and OpenCV's default threads while it runs (what a first script
    gets)."""

    def __init__(
        self, clip: str, model_name: str, weights: str, device: torch.device, threads: int
    ) -> None:
        from detector.models import build_model

        model, self.labels = build_model(model_name, weights)
        self.model = model.to(device).eval()
        self.clip, self.device, self.threads = clip, device, threads
        self.runs: list[float] = []
        self.frames, self.seconds, self.video_kb = 0, 0.0, 0.0

    def run_once(self) -> float:
        """One run over the clip; its frames/s."""
        import cv2
        import torch

        tuned, opencv_threads = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(self.threads)
        cv2.setNumThreads(-1)  # OpenCV's default, whatever a pipeline run set before
        try:
            with tempfile.TemporaryDirectory(prefix="ssd-naive-") as tmp:
                out = Path(tmp) / "naive.mp4"
                self.frames, self.seconds = run_naive(
                    self.clip, self.model, self.labels, out, self.device
                )
                size = out.stat().st_size if out.exists() else 0
                self.video_kb = size / 1000 / max(self.frames, 1)
        finally:
            torch.set_num_threads(tuned)
            cv2.setNumThreads(opencv_threads)
        self.runs.append(self.frames / self.seconds)
        return self.runs[-1]

    def result(self) -> NaiveResult:
        """The runs so far (at least one)."""
        return NaiveResult(
            self.threads,
            self.frames,
            self.seconds,
            statistics.median(self.runs),
            list(self.runs),
            self.video_kb,
        )
