"""How closely one detector's output follows a reference's: int8 or fp16 against fp32."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.boxes import box_iou, greedy_assignment
from pipeline.types import Detections


@dataclass
class Agreement:
    """Counts over frames of a candidate's detections matched to a reference's.

    A match is a (reference, candidate) pair of the same label with IoU >= the threshold,
    taken greedily by descending IoU, each detection in at most one pair
    (`pipeline.boxes.greedy_assignment`, as the tracker matches).
    """

    reference: int = 0
    candidate: int = 0
    matched: int = 0
    confident: int = 0
    """Reference detections scoring >= `confident_score`."""
    confident_matched: int = 0
    ious: list[float] = field(default_factory=list)
    score_shifts: list[float] = field(default_factory=list)
    """Candidate score - reference score, per match."""

    @property
    def recall(self) -> float:
        """Share of the reference's detections the candidate also found."""
        return self.matched / self.reference if self.reference else 1.0

    @property
    def precision(self) -> float:
        """Share of the candidate's detections the reference also found."""
        return self.matched / self.candidate if self.candidate else 1.0

    @property
    def confident_recall(self) -> float:
        """Recall of the reference's confident detections."""
        return self.confident_matched / self.confident if self.confident else 1.0

    def summary(self) -> str:
        ious = np.asarray(self.ious or [np.nan])
        shifts = np.asarray(self.score_shifts or [np.nan])
        return (
            f"reference {self.reference}, candidate {self.candidate}, matched {self.matched}: "
            f"recall {self.recall:.3f}, precision {self.precision:.3f}, recall of confident "
            f"{self.confident_recall:.3f}; IoU mean {ious.mean():.3f} (5th percentile "
            f"{np.percentile(ious, 5):.3f}); score shift mean {shifts.mean():+.4f}, largest "
            f"{np.abs(shifts).max():.3f}"
        )


def compare(
    reference: Sequence[Detections],
    candidate: Sequence[Detections],
    iou_threshold: float = 0.5,
    confident_score: float = 0.6,
) -> Agreement:
    """Match `candidate[i]` to `reference[i]` for every frame i."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference frames but {len(candidate)} candidates")
    result = Agreement()
    for ref, cand in zip(reference, candidate, strict=True):
        confident = ref.score >= confident_score
        result.reference += len(ref)
        result.candidate += len(cand)
        result.confident += int(confident.sum())
        if len(ref) == 0 or len(cand) == 0:
            continue
        iou = box_iou(ref.xyxy, cand.xyxy)
        iou[ref.label[:, None] != cand.label[None, :]] = 0.0
        rows, cols = np.nonzero(iou >= iou_threshold)
        pairs = [(-iou[r, c], int(r), int(c)) for r, c in zip(rows, cols, strict=True)]
        matches = greedy_assignment(pairs)
        for r, c in matches:
            result.ious.append(float(iou[r, c]))
            result.score_shifts.append(float(cand.score[c]) - float(ref.score[r]))
            result.confident_matched += int(confident[r])
        result.matched += len(matches)
    return result
