"""The `sinks:` section: video, live view, ZeroMQ events, SQL, track snapshots, MQTT."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import (
    KEEP_HOURS_MAX,
    ONE_BYTE_MB,
    SINK_QUEUE_MB,
    AllowedHosts,
    FsPath,
    ListenHost,
    ListenPort,
    SinkQueueMb,
    Strict,
    name_fits,
)
from pipeline.config.mqtt import MqttSinkConfig
from pipeline.config.server import LiveAuthConfig, ServerAccess
from sinks.event_bus.endpoints import endpoint_problem
from sinks.live_view.access import DEFAULT_MAX_VIEWERS
from sinks.snapshots.writer_thread import WRITE_TIMEOUT_S

VideoCodec = Literal["libx264", "h264_nvenc"]
VIDEO_CODECS: tuple[str, ...] = get_args(VideoCodec)
"""The video sink's encoders: x264 on the CPU, NVENC on an NVIDIA GPU."""
X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
]
X264_PRESETS: tuple[str, ...] = get_args(X264Preset)
"""x264's speed presets, fastest first."""


class VideoSinkConfig(Strict):
    type: Literal["video"] = Field(description="Annotated H.264 MP4, one file per camera.")
    dir: FsPath = Field(Path("out/video"), description="Folder for the MP4 files.")
    codec: VideoCodec = Field(
        "libx264",
        description=(
            "H.264 encoder: libx264 (CPU) or h264_nvenc (an NVIDIA GPU's encoder: for many or "
            "large streams, where x264 would need more cores than the machine has)."
        ),
    )
    crf: int = Field(
        23, ge=0, le=51, description="Quality: lower is better and larger (NVENC: its cq)."
    )
    preset: X264Preset = Field(
        "ultrafast",
        description=(
            "Speed/size trade-off (NVENC: p1 for ultrafast .. p7). ultrafast: the least CPU "
            "(what a small machine needs to keep up), ~3x the disk of veryfast at equal crf."
        ),
    )
    threads: int = Field(
        0,
        ge=0,
        le=64,
        description=(
            "Encoder threads per file; 0: one where the process may use 2 cores or fewer (its "
            "CPUs and CPU quota; extra x264 threads cost more CPU than they save there), "
            "FFmpeg's choice elsewhere."
        ),
    )
    width: int | None = Field(
        None,
        ge=16,
        le=7680,
        description=(
            "Scale the annotated video down to this width (even; its height keeps the "
            "frame's aspect), never up: H.264 costs in proportion to the pixels. Detection "
            "is not affected. none: the camera's size."
        ),
    )
    queue_size: int = Field(64, ge=1, le=4096, description="Frames buffered for the encoder.")
    queue_mb: SinkQueueMb = SINK_QUEUE_MB
    segment_minutes: float | None = Field(
        None,
        gt=0,
        le=24 * 60,
        description="Start a new file after this many minutes of video (none: one per run).",
    )
    keep_hours: float | None = Field(
        None,
        gt=0,
        le=KEEP_HOURS_MAX,
        description="Delete a camera's files last written more than this long ago.",
    )
    keep_files: int | None = Field(
        None, ge=1, le=1_000_000, description="Keep at most this many finished files per camera."
    )
    fragmented: bool = Field(
        True,
        description=(
            "Fragmented MP4: playable after a crash up to a live camera's last few frames "
            "(those its encoder holds back), a file's last second."
        ),
    )

    @field_validator("width")
    @classmethod
    def _even_width(cls, value: int | None) -> int | None:
        if value is not None and value % 2:
            raise ValueError(f"{value} is odd: H.264 video takes even sizes")
        return value


class LiveSinkConfig(ServerAccess):
    """The live view. It is served by the run's one HTTP server: with an `http:` section,
    that server's (at /live/; `host`, `port`, `allowed_hosts`, `auth` and
    `allow_unauthenticated` are then left out or the same); without one, these settings
    start it (`PipelineConfig.server`)."""

    serves: ClassVar[str] = "the live view"
    type: Literal["live"] = Field(description="Live MJPEG view in the browser, with an index.")
    host: ListenHost = Field(
        "127.0.0.1",
        description="Address to listen on (without an `http:` section); 127.0.0.1 keeps the "
        "view on this machine. Any other (0.0.0.0: all interfaces) needs `auth` or "
        "`allow_unauthenticated: true`.",
    )
    port: ListenPort = Field(8080, description="TCP port (0: any free port; without `http:`).")
    max_fps: float = Field(
        15.0, ge=0, le=1000, description="Most frames per second sent to each viewer (0: all)."
    )
    jpeg_quality: int = Field(80, ge=1, le=100, description="JPEG quality of the frames.")
    queue_size: int = Field(8, ge=1, le=4096, description="Frames buffered for the view.")
    queue_mb: SinkQueueMb = SINK_QUEUE_MB
    max_viewers: int = Field(
        DEFAULT_MAX_VIEWERS,
        ge=1,
        le=1000,
        description="Most streams served at once (a browser tab takes one per camera); more "
        "are answered 503.",
    )
    allowed_hosts: AllowedHosts = Field(
        (),
        description="More names the view is reached by (checked in Host and Origin); "
        "localhost, 127.0.0.1, ::1 and `host` are always allowed (without `http:`).",
    )
    auth: LiveAuthConfig | None = Field(
        None,
        description="Require a password or token from every viewer (none: no login; "
        "without `http:`).",
    )
    allow_unauthenticated: bool = Field(
        False,
        description="Serve a non-loopback `host` without `auth`: anyone who can reach the "
        "port sees the cameras (without `http:`).",
    )


class ZmqSinkConfig(Strict):
    type: Literal["zmq"] = Field(description="ZeroMQ PUB socket sending JSON events.")
    endpoint: str = Field(
        "tcp://127.0.0.1:5556",
        min_length=1,
        max_length=4096,
        description="Address to bind, e.g. tcp://127.0.0.1:5556 (tcp://*:5556 for all interfaces).",
    )
    send_hwm: int = Field(
        10_000, ge=1, le=10_000_000, description="Messages queued per subscriber before dropping."
    )
    wait_for_subscribers: int = Field(
        0, ge=0, le=1000, description="Wait for this many subscribers before processing."
    )
    wait_timeout_s: float = Field(
        5.0, ge=0, le=3600, description="Longest wait for those subscribers."
    )
    queue_size: int = Field(256, ge=1, le=100_000, description="Frames buffered for the sender.")
    queue_mb: SinkQueueMb = SINK_QUEUE_MB
    isolate_subscribers: bool = Field(
        False,
        description=(
            "A slow subscriber loses only its own events (others get all); drops are then "
            "seen by subscribers (seq) but not counted by the pipeline."
        ),
    )
    curve: ZmqCurveConfig | None = Field(
        None, description="CURVE encryption and authentication (none: plain TCP)."
    )

    @field_validator("endpoint")
    @classmethod
    def _a_usable_endpoint(cls, endpoint: str) -> str:
        if (problem := endpoint_problem(endpoint)) is not None:
            raise ValueError(problem)
        return endpoint

    def bound_host(self) -> str | None:
        """The host a tcp `endpoint` binds, an IPv6 address without its brackets (`*`:
        every address; an interface's name, an address or a host name); None for ipc and
        inproc."""
        transport, _, address = self.endpoint.partition("://")
        return address.rpartition(":")[0].strip("[]") if transport == "tcp" else None

    def bound_port(self) -> int | None:
        """The port a tcp `endpoint` binds; None for ipc and inproc, and where ZeroMQ picks
        a free one (`*` or 0)."""
        transport, _, address = self.endpoint.partition("://")
        port = address.rpartition(":")[2]
        return int(port) if transport == "tcp" and port.isdigit() and int(port) else None


class ZmqCurveConfig(Strict):
    secret_key_file: FsPath | None = Field(
        None, description="The server's .key_secret file (python -m pipeline keygen DIR)."
    )
    secret_key: str | None = Field(
        None,
        min_length=1,
        description="The server's secret key (40 Z85 characters); use ${ENV_VAR}.",
    )
    authorized_clients: FsPath | None = Field(
        None,
        description="Folder of client public .key files; only those clients may subscribe.",
    )

    @model_validator(mode="after")
    def _one_secret(self) -> ZmqCurveConfig:
        if (self.secret_key_file is None) == (self.secret_key is None):
            raise ValueError("give exactly one of secret_key_file and secret_key")
        if self.secret_key_file is not None and not self.secret_key_file.is_file():
            raise ValueError(f"secret_key_file not found: {self.secret_key_file}")
        if self.authorized_clients is not None and not self.authorized_clients.is_dir():
            raise ValueError(f"authorized_clients is not a folder: {self.authorized_clients}")
        return self


class SqlSinkConfig(Strict):
    type: Literal["sql"] = Field(description="Detections and tracks stored with SQLAlchemy.")
    url: str = Field(
        "sqlite:///out/detections.db",
        min_length=1,
        description=(
            "SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user:${PGPASSWORD}@host/db."
        ),
    )
    batch_size: int = Field(500, ge=1, le=100_000, description="Rows per insert.")
    queue_size: int = Field(256, ge=1, le=100_000, description="Frames buffered for the writer.")
    queue_mb: SinkQueueMb = SINK_QUEUE_MB
    flush_interval_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="Rows are written once the oldest has waited this long, whether or not "
        "more frames come (docs/sql.md gives the bound).",
    )
    buffer_rows: int = Field(
        20_000,
        ge=1,
        le=10_000_000,
        description="Rows kept in memory while the database is away; more go to the spool.",
    )
    spool_dir: FsPath = Field(
        Path("out/spool"),
        description="Folder for rows waiting for the database (and, in refused/, rows it "
        "refused for good; on a cluster's driver, in lost/, the dead shards' runs still to "
        "mark lost).",
    )
    spool_max_mb: float = Field(
        1024,
        ge=ONE_BYTE_MB,
        le=1_000_000,
        description="Largest spool file, in MB (millions of bytes; at most 1 TB); rows beyond "
        "it are dropped and counted.",
    )
    close_timeout_s: float = Field(
        30.0,
        ge=0,
        le=86_400,
        description="At the end, how long to wait for an unreachable database (a full disk: "
        "at most 2 s; a batch under way: 5 s more); the rest stays in the spool for the next "
        "run.",
    )

    @field_validator("url")
    @classmethod
    def _sqlite_file_name_fits(cls, url: str) -> str:
        from sinks.sql.database import DatabaseUrl  # SQLAlchemy: only for a sql sink

        file = DatabaseUrl(url).sqlite_file
        if file is not None:
            name_fits(str(file))
        return url

    @model_validator(mode="after")
    def _buffer_holds_a_batch(self) -> SqlSinkConfig:
        if self.buffer_rows < self.batch_size:
            raise ValueError(
                f"buffer_rows ({self.buffer_rows}) must be at least batch_size ({self.batch_size})"
            )
        return self


class SnapshotSinkConfig(Strict):
    type: Literal["snapshots"] = Field(
        description="A JPEG of each track's best-scoring detection (docs/snapshots.md)."
    )
    dir: FsPath = Field(
        Path("out/snapshots"),
        description="Folder for the snapshots: <camera>/<UTC start>_<track>.jpg in it.",
    )
    full_frame: bool = Field(
        False,
        description="Also write the whole frame (<camera>/<UTC start>_<track>-frame.jpg); "
        "open tracks' best frames are held, a few per camera as pixels, the rest as JPEG.",
    )
    margin: float = Field(
        0.1,
        ge=0,
        le=2,
        description="Crop margin around the box, a fraction of its width and height per side.",
    )
    quality: int = Field(90, ge=1, le=100, description="JPEG quality.")
    keep_hours: float | None = Field(
        None,
        gt=0,
        le=KEEP_HOURS_MAX,
        description="Delete snapshots written more than this long ago (none: keep).",
    )
    keep_files: int | None = Field(
        None, ge=1, le=100_000_000, description="Keep at most this many files, the newest."
    )
    keep_mb: float | None = Field(
        None,
        ge=ONE_BYTE_MB,
        le=1_000_000_000,
        description="Keep at most this size of files, the newest, in MB (millions of bytes; "
        "at most 1 PB).",
    )
    queue_size: int = Field(64, ge=1, le=100_000, description="Frames buffered for the writer.")
    queue_mb: SinkQueueMb = SINK_QUEUE_MB
    write_timeout_s: float = Field(
        WRITE_TIMEOUT_S,
        gt=0,
        le=60,
        description="Longest a track's snapshot may take to write: after it, the track's "
        "event and row go out without it (snapshot_lost) and the run goes on. The run waits "
        "for pending snapshots this long at most when a stream ends.",
    )


SinkConfig = Annotated[
    VideoSinkConfig
    | LiveSinkConfig
    | ZmqSinkConfig
    | SqlSinkConfig
    | SnapshotSinkConfig
    | MqttSinkConfig,
    Field(discriminator="type"),
]
