"""What a run did: per-camera counts and the run's outcome, for progress bars and summaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CameraStats:
    """What happened to one camera during a run."""

    camera_id: str
    source: str
    total_frames: int | None = None
    frames: int = 0
    detections: int = 0
    tracks: int = 0
    decode_errors: int = 0
    dropped: int = 0
    skipped: int = 0
    """Frames not detected because `max_fps` / `detect_every` left them out."""
    motion_skipped: int = 0
    """Frames not detected because nothing moved (`motion`)."""
    reconnects: int = 0
    live: bool = False
    """A live source (a stream or a device), which connects; a file or image folder opens."""
    opened: bool = False
    """Whether the source ever opened (a camera that never connected did not)."""
    stopped_first: bool = False
    """Stopped before its source was ever asked to open (the run was stopped while it was
    being set up, or the camera was removed first): it did not fail."""
    lost: str | None = None
    """Why a live camera was down when the run ended (it was waiting to reconnect); None
    when it was not."""
    short: str | None = None
    """How far short of the frames it declares a file ended (`CameraReader.short`)."""
    error: str | None = None

    @property
    def problem(self) -> str | None:
        """Why the camera did not do its part, in one line naming it; None when it did. A
        camera that failed, or that delivered no frame at all (whatever ended the run), did
        not."""
        if self.error is not None:
            return self.error
        if self.frames or self.stopped_first:
            return None
        verb = "connected" if self.live else "opened"
        said = f"{verb}, but delivered no frames" if self.opened else f"never {verb}"
        return f"camera {self.camera_id}: {said}" + (f": {self.lost}" if self.lost else "")

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def status(self) -> str:
        """ "FAILED: why" for a camera that is not `ok`; else "ok", or "ok until lost: why"
        for a live camera down when the run ended (its frames before count)."""
        if (problem := self.problem) is not None:
            return f"FAILED: {problem}"
        if self.stopped_first and not self.frames:
            return "not started: stopped before it opened"
        if self.short:
            return f"ok, cut short: {self.short}"
        return f"ok until lost: {self.lost}" if self.lost else "ok"


@dataclass
class RunSummary:
    """The outcome of `Pipeline.run`."""

    cameras: dict[str, CameraStats]
    elapsed_s: float
    """Seconds from the start of reading to the end of the run."""
    sink_errors: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    interrupted: bool = False
    setup_s: float = 0.0
    """Seconds spent before reading began: building the detector (a first run's ONNX export
    and int8 quantization included) and opening the sinks."""
    detector: str = ""
    """What ran the detector, and why each `auto` choice came out so (one line)."""
    detector_error: str | None = None
    """Why detection stopped the run early (one line); None when it did not."""
    server_error: str | None = None
    """Why the run's HTTP server stopped serving during the run (one line); None when it did
    not (or there was none)."""

    @classmethod
    def stopped_in_setup(cls, sources: dict[str, str], setup_s: float) -> RunSummary:
        """A run stopped while it was set up (its detector built, its outputs opened, a
        cluster's shards placed): every camera (id: its source's name) not started, nothing
        captured."""
        cameras = {cid: CameraStats(cid, name, stopped_first=True) for cid, name in sources.items()}
        return cls(cameras=cameras, elapsed_s=0.0, setup_s=setup_s, interrupted=True)

    @classmethod
    def failed_before_setup(
        cls, sources: dict[str, str], failed: dict[str, str], setup_s: float
    ) -> RunSummary:
        """A run ended before its detector was built, no camera left to read: each camera
        (id: its source's name) failed with its error in `failed`, or was stopped first
        (not started); nothing captured."""
        cameras = {
            cid: CameraStats(cid, name, error=failed.get(cid), stopped_first=cid not in failed)
            for cid, name in sources.items()
        }
        return cls(cameras=cameras, elapsed_s=0.0, setup_s=setup_s)

    @property
    def ok(self) -> bool:
        """Nothing failed: the detector, every sink, every camera (`CameraStats.ok`) and the
        HTTP server."""
        return (
            self.detector_error is None
            and self.server_error is None
            and not self.sink_errors
            and all(c.ok for c in self.cameras.values())
        )

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.cameras.values())


ProgressCallback = Callable[[CameraStats], None]
