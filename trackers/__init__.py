"""Trackers: link a camera's per-frame detections into tracks with stable ids."""

from trackers.iou import IoUTracker

__all__ = ["IoUTracker"]
