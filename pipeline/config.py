"""The YAML config: pydantic models, `${ENV}` expansion, and errors that point at the YAML.

Relative paths (sources, output folders, SQLite files) are relative to the directory the
pipeline is run from, like the paths a user types on the command line.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.urls import STREAM_SCHEMES, infer_kind, mask_credentials


class ConfigError(ValueError):
    """The config cannot be used; `problems` lists each bad field as "path (line N): why"."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = [mask_credentials(p) for p in problems]
        count = f"{len(self.problems)} problem" + ("s" if len(self.problems) != 1 else "")
        super().__init__(f"{source}: {count}\n" + "\n".join(f"  {p}" for p in self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSourceConfig(_Strict):
    type: Literal["file"] = Field(description="A video file (anything FFmpeg reads).")
    path: str = Field(min_length=1, description="Path of the video file.")
    realtime: bool = Field(
        False, description="Play at the file's own frame rate, as a camera would deliver it."
    )
    loop: bool = Field(False, description="Start again at the end, forever.")

    @field_validator("path")
    @classmethod
    def _readable_file(cls, value: str) -> str:
        path = Path(value).expanduser()
        if not path.exists():
            raise ValueError(f"file not found: {value} (relative to {Path.cwd()})")
        if not path.is_file():
            raise ValueError(f"not a file: {value}")
        if not os.access(path, os.R_OK):
            raise ValueError(f"file not readable: {value}")
        return value


class StreamSourceConfig(_Strict):
    type: Literal["stream"] = Field(
        description="A network stream: RTSP, HTTP, RTMP, TCP, UDP, SRT."
    )
    url: str = Field(
        min_length=1,
        description="Stream URL, e.g. rtsp://user:${CAM_PASSWORD}@192.0.2.10/stream1.",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="FFmpeg options, e.g. {rtsp_transport: tcp}.",
    )
    timeout_s: float = Field(
        10.0, gt=0, le=600, description="Longest wait to connect, and for data once connected."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in STREAM_SCHEMES:
            raise ValueError(
                f"unsupported stream URL {mask_credentials(value)!r}: use one of "
                f"{', '.join(s + '://' for s in sorted(STREAM_SCHEMES))}"
            )
        return value


class DeviceSourceConfig(_Strict):
    type: Literal["device"] = Field(description="A V4L2 capture device (USB camera, capture card).")
    path: str = Field(pattern=r"^/dev/video\d+$", description="Device node, e.g. /dev/video0.")
    width: int | None = Field(None, ge=16, le=16384, description="Capture width in pixels.")
    height: int | None = Field(None, ge=16, le=16384, description="Capture height in pixels.")
    fps: float | None = Field(None, gt=0, le=1000, description="Capture frame rate.")
    input_format: str | None = Field(
        None, min_length=1, description="Pixel format asked of the device, e.g. mjpeg or yuyv422."
    )
    options: dict[str, str] = Field(default_factory=dict, description="More FFmpeg options.")
    timeout_s: float = Field(10.0, gt=0, le=600, description="Longest wait for the device.")


class ImagesSourceConfig(_Strict):
    type: Literal["images"] = Field(description="The images of a folder or glob, in name order.")
    path: str = Field(min_length=1, description="A folder, or a glob such as frames/*.jpg.")
    fps: float = Field(10.0, gt=0, le=1000, description="Frame rate the images stand for.")
    loop: bool = Field(False, description="Start again after the last image, forever.")

    @field_validator("path")
    @classmethod
    def _has_images(cls, value: str) -> str:
        if not Path(value).is_dir() and not glob.glob(value):
            raise ValueError(f"no such folder, and no file matches: {value}")
        return value


SourceConfig = Annotated[
    FileSourceConfig | StreamSourceConfig | DeviceSourceConfig | ImagesSourceConfig,
    Field(discriminator="type"),
]


class ReconnectConfig(_Strict):
    initial_delay_s: float = Field(
        0.5, gt=0, le=600, description="Wait before the first reconnection attempt."
    )
    max_delay_s: float = Field(
        30.0, gt=0, le=3600, description="The wait doubles after each failure up to this."
    )
    jitter: float = Field(
        0.2, ge=0, le=1, description="Each wait is varied by up to this fraction, at random."
    )
    max_attempts: int = Field(
        0, ge=0, le=1_000_000, description="Give up after this many failures in a row; 0: never."
    )


class CameraConfig(_Strict):
    id: str = Field(
        description="Camera id: used in event topics, file names and the database.",
        min_length=1,
        max_length=64,
    )
    source: SourceConfig = Field(
        description=(
            "A video file, a stream URL (rtsp://, http://, ...), a V4L2 device (/dev/videoN) "
            "or an image folder/glob; the kind is inferred from the string. A mapping with "
            "`type:` (file, stream, device, images) sets the kind and its options."
        )
    )
    queue_size: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Decoded frames buffered for this camera (default 32 for files, 4 live).",
    )
    queue_policy: Literal["auto", "block", "drop_oldest"] = Field(
        "auto",
        description=(
            "When the queue is full: block the reader (nothing lost; files) or drop the "
            "oldest frame (bounded latency; live sources). auto picks by source kind."
        ),
    )
    max_fps: float | None = Field(
        None, gt=0, le=1000, description="Detect on at most this many frames per second."
    )
    detect_every: int = Field(
        1, ge=1, le=10_000, description="Detect on every Nth frame only (1: every frame)."
    )
    full_rate_video: bool = Field(
        False,
        description=(
            "Frames skipped by max_fps/detect_every still go to the video sinks, drawn with "
            "the last known tracks."
        ),
    )
    reconnect: ReconnectConfig = Field(
        default_factory=ReconnectConfig,  # type: ignore[arg-type]
        description="Retry policy of live sources.",
    )

    @model_validator(mode="before")
    @classmethod
    def _source_string_to_mapping(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("source"), str):
            source = data["source"]
            kind = infer_kind(source)
            field = "url" if kind == "stream" else "path"
            data = {**data, "source": {"type": kind, field: source}}
        return data

    @field_validator("id")
    @classmethod
    def _id_is_a_plain_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError(
                f"invalid camera id {value!r}: use letters, digits, '_', '-' and '.' "
                "(it names files and event topics)"
            )
        return value

    @property
    def live(self) -> bool:
        """Streams and devices are live: they drop old frames and reconnect."""
        return isinstance(self.source, (StreamSourceConfig, DeviceSourceConfig))


class DetectorConfig(_Strict):
    model: str = Field(
        "ssdlite320_mobilenet_v3_large",
        min_length=1,
        description=(
            "Model name (ssdlite320_mobilenet_v3_large, ssd300_vgg16, person_ssdlite) "
            "or the path of a checkpoint saved by detector.save_checkpoint."
        ),
    )
    weights: str = Field(
        "default",
        min_length=1,
        description=(
            "'default': the model's pretrained weights (torchvision's COCO weights are "
            "downloaded once); 'none': random weights (tests); or a path to a weights file."
        ),
    )
    device: str = Field(
        "auto",
        description="auto (CUDA when available), cpu, cuda or cuda:N.",
    )
    runtime: Literal["auto", "torch", "compile", "onnxruntime"] = Field(
        "auto",
        description=(
            "What runs the network: torch; compile (torch.compile, with CUDA graphs on CUDA: "
            "faster once compiled, tens of seconds per batch size at every start); or "
            "onnxruntime (CPU only; about twice as fast there, the network exported to ONNX "
            "once and cached). auto: onnxruntime on the CPU when installed, torch otherwise."
        ),
    )
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = Field(
        "auto",
        description=(
            "Arithmetic of the network. auto: fp16 autocast on CUDA; int8 for person_ssdlite's "
            "bundled weights on CPUs with VNNI (where its int8 accuracy was measured); fp32 "
            "otherwise. "
            "fp16 and bf16 are CUDA only. int8 (CPU, onnxruntime): a quantized copy, 2-2.5x "
            "faster, finding ~94% of fp32's detections (docs/performance.md)."
        ),
    )
    calibration: Path | None = Field(
        None,
        description=(
            "For precision int8: a video file like the cameras' footage, on whose frames the "
            "int8 ranges are measured (default: the bundled sample clip)."
        ),
    )
    workers: int = Field(
        1,
        ge=1,
        le=2,
        description=(
            "Batches detected at once, each on its own thread. 2 overlaps one batch's resizing "
            "and post-processing with the other's network, each ONNX Runtime run on half the "
            "cores (more throughput where the detector is the bottleneck; each batch takes "
            "longer). 2 needs runtime onnxruntime (CPU)."
        ),
    )
    batch_size: int = Field(8, ge=1, le=1024, description="Frames per inference batch.")
    max_wait_ms: float = Field(
        20.0,
        ge=0,
        le=10_000,
        description="Longest wait for a batch to fill once its first frame is there.",
    )
    score_threshold: float = Field(0.5, ge=0, le=1, description="Boxes scoring below are dropped.")
    nms_threshold: float = Field(
        0.45, gt=0, le=1, description="IoU above which overlapping boxes of a class are merged."
    )
    max_detections: int = Field(100, ge=1, le=10_000, description="Most boxes kept per frame.")
    labels: list[str] | None = Field(
        None, description="Only keep these class names (e.g. [person, car]); all when absent."
    )

    @field_validator("device")
    @classmethod
    def _device_is_known(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError(f"unknown device {value!r}: use auto, cpu, cuda or cuda:N")
        return value

    @field_validator("calibration")
    @classmethod
    def _calibration_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError(f"calibration clip not found: {value}")
        return value

    @model_validator(mode="after")
    def _int8_runs_on_onnxruntime(self) -> DetectorConfig:
        if self.precision != "int8":
            if self.calibration is not None:
                raise ValueError("calibration is only used with precision: int8")
            return self
        if self.runtime in ("torch", "compile"):
            raise ValueError(
                "precision int8 runs on onnxruntime: set runtime to auto or onnxruntime"
            )
        if self.device.startswith("cuda"):
            raise ValueError("precision int8 runs on the CPU only: set device to cpu")
        return self

    @model_validator(mode="after")
    def _workers_need_onnxruntime(self) -> DetectorConfig:
        if self.workers == 2 and (
            self.runtime in ("torch", "compile") or self.device.startswith("cuda")
        ):
            raise ValueError(
                "workers: 2 needs runtime onnxruntime on the CPU (torch runs share one thread "
                "pool; CUDA overlaps batches with streams): set workers to 1"
            )
        return self

    @field_validator("weights")
    @classmethod
    def _weights_file_exists(cls, value: str) -> str:
        if value not in ("default", "none") and not Path(value).expanduser().is_file():
            raise ValueError(f"weights must be 'default', 'none' or an existing file: {value}")
        return value

    @field_validator("model")
    @classmethod
    def _checkpoint_exists(cls, value: str) -> str:
        looks_like_path = "/" in value or value.endswith((".pt", ".pth"))
        if looks_like_path and not Path(value).expanduser().is_file():
            raise ValueError(f"checkpoint file not found: {value}")
        return value


class TrackerConfig(_Strict):
    type: Literal["iou"] = Field("iou", description="Tracker kind.")
    sigma_l: float = Field(0.0, ge=0, le=1, description="Detections scoring below are not tracked.")
    sigma_h: float = Field(
        0.5, ge=0, le=1, description="A track is confirmed only once a detection scores this high."
    )
    sigma_iou: float = Field(
        0.3, gt=0, le=1, description="Least IoU between a track's predicted box and its next one."
    )
    t_min: int = Field(
        2, ge=1, le=1000, description="Detections a track needs before it gets an id."
    )
    max_age: int = Field(
        30,
        ge=0,
        le=100_000,
        description=(
            "Frames a track lives on without a detection, its box moving at its last velocity "
            "(0: the paper's tracker, ended by the first miss)."
        ),
    )

    @model_validator(mode="after")
    def _sigma_h_not_below_sigma_l(self) -> TrackerConfig:
        if self.sigma_h < self.sigma_l:
            raise ValueError(
                f"sigma_h ({self.sigma_h}) must be >= sigma_l ({self.sigma_l}): "
                "a track is confirmed by a detection it was allowed to use"
            )
        return self


VideoCodec = Literal["libx264", "h264_nvenc"]
VIDEO_CODECS: tuple[str, ...] = get_args(VideoCodec)
"""The video sink's encoders: x264 on the CPU, NVENC on an NVIDIA GPU."""
X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
]
X264_PRESETS: tuple[str, ...] = get_args(X264Preset)
"""x264's speed presets, fastest first."""


class VideoSinkConfig(_Strict):
    type: Literal["video"] = Field(description="Annotated H.264 MP4, one file per camera.")
    dir: Path = Field(Path("out/video"), description="Folder for the MP4 files.")
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
            "Encoder threads per file; 0: one on machines with 2 cores or fewer (extra x264 "
            "threads cost more CPU than they save there), FFmpeg's choice elsewhere."
        ),
    )
    queue_size: int = Field(64, ge=1, le=4096, description="Frames buffered for the encoder.")
    segment_minutes: float | None = Field(
        None,
        gt=0,
        le=24 * 60,
        description="Start a new file after this many minutes of video (none: one per run).",
    )
    keep_hours: float | None = Field(
        None, gt=0, description="Delete a camera's files last written more than this long ago."
    )
    keep_files: int | None = Field(
        None, ge=1, le=1_000_000, description="Keep at most this many finished files per camera."
    )
    fragmented: bool = Field(
        True,
        description="Fragmented MP4: playable up to its last second even after a crash.",
    )


class LiveSinkConfig(_Strict):
    type: Literal["live"] = Field(description="Live MJPEG view in the browser, with an index.")
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address to listen on; 0.0.0.0 makes the view reachable from other hosts.",
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0: any free port).")
    max_fps: float = Field(
        15.0, ge=0, le=1000, description="Most frames per second sent to each viewer (0: all)."
    )
    jpeg_quality: int = Field(80, ge=1, le=100, description="JPEG quality of the frames.")
    queue_size: int = Field(8, ge=1, le=4096, description="Frames buffered for the view.")


class ZmqSinkConfig(_Strict):
    type: Literal["zmq"] = Field(description="ZeroMQ PUB socket sending JSON events.")
    endpoint: str = Field(
        "tcp://127.0.0.1:5556",
        pattern=r"^(tcp|ipc|inproc)://.+",
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


class ZmqCurveConfig(_Strict):
    secret_key_file: Path | None = Field(
        None, description="The server's .key_secret file (python -m pipeline keygen DIR)."
    )
    secret_key: str | None = Field(
        None,
        min_length=1,
        description="The server's secret key (40 Z85 characters); use ${ENV_VAR}.",
    )
    authorized_clients: Path | None = Field(
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


class SqlSinkConfig(_Strict):
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
    flush_interval_s: float = Field(
        1.0, gt=0, le=3600, description="Longest time a row waits before it is written."
    )
    buffer_rows: int = Field(
        20_000,
        ge=1,
        le=10_000_000,
        description="Rows kept in memory while the database is away; more go to the spool.",
    )
    spool_dir: Path = Field(
        Path("out/spool"), description="Folder for rows waiting for the database."
    )
    spool_max_mb: float = Field(
        1024, gt=0, description="Largest spool file; rows beyond it are dropped and counted."
    )
    close_timeout_s: float = Field(
        30.0,
        ge=0,
        le=86_400,
        description="At the end, how long to wait for an unreachable database; the rest "
        "stays in the spool for the next run.",
    )

    @model_validator(mode="after")
    def _buffer_holds_a_batch(self) -> SqlSinkConfig:
        if self.buffer_rows < self.batch_size:
            raise ValueError(
                f"buffer_rows ({self.buffer_rows}) must be at least batch_size ({self.batch_size})"
            )
        return self


SinkConfig = Annotated[
    VideoSinkConfig | LiveSinkConfig | ZmqSinkConfig | SqlSinkConfig,
    Field(discriminator="type"),
]


class PipelineConfig(_Strict):
    cameras: list[CameraConfig] = Field(min_length=1, description="Video sources to process.")
    detector: DetectorConfig = Field(default_factory=DetectorConfig)  # type: ignore[arg-type]
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)  # type: ignore[arg-type]
    sinks: list[SinkConfig] = Field(default_factory=list, description="Where results go.")

    @model_validator(mode="after")
    def _camera_ids_unique(self) -> PipelineConfig:
        seen: set[str] = set()
        for cam in self.cameras:
            if cam.id in seen:
                raise ValueError(f"camera id {cam.id!r} is used twice")
            seen.add(cam.id)
        return self


def load_config(path: str | Path) -> PipelineConfig:
    """Read, expand and validate a YAML config; raises ConfigError naming every bad field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from None
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "<config>") -> PipelineConfig:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}invalid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must be a mapping with at least a 'cameras' key"])

    unset: dict[tuple[str | int, ...], str] = {}
    data = _expand_env(data, (), unset)
    problems = [
        f"{_where(loc, root)}: environment variable {name} is not set"
        for loc, name in unset.items()
    ]
    try:
        PipelineConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _yaml_loc(err["loc"], data)
            if loc not in unset:  # already reported as the unset variable it came from
                problems.append(_describe(err, loc, data, root))
    if problems:
        raise ConfigError(source, problems)
    return PipelineConfig.model_validate(data)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(
    value: Any, loc: tuple[str | int, ...], unset: dict[tuple[str | int, ...], str]
) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; records unset variables by path."""
    if isinstance(value, dict):
        return {k: _expand_env(v, (*loc, k), unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*loc, i), unset) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name, default)
        if found is None:
            unset[loc] = name
            return ""
        return found

    return _ENV.sub(substitute, value)


def _describe(err: Any, loc: tuple[str | int, ...], data: Any, root: Any) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        key = loc[-1]
        parent = _lookup(data, loc[:-1])
        fields = _field_names(loc[:-1], data)
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = (
            f"; allowed: {', '.join(sorted(fields))}" if fields and isinstance(parent, dict) else ""
        )
        return f"{_where(loc, root)}: unknown key{hint}{allowed}"
    if kind == "missing":
        return f"{_where(loc, root)}: required field is missing"
    if kind == "union_tag_invalid":
        expected = str(err.get("ctx", {}).get("expected_tags", "")).replace("'", "")
        return f"{_where(loc, root)}: unknown type; expected one of {expected}"
    if kind == "union_tag_not_found":
        kinds = " (video, live, zmq or sql)" if loc[:1] == ("sinks",) else ""
        return f"{_where(loc, root)}: missing 'type'{kinds}"
    msg = msg.removeprefix("Value error, ")
    got = err.get("input")
    shown = (
        "" if kind.startswith("value_error") or isinstance(got, (dict, list)) else f" (got {got!r})"
    )
    return f"{_where(loc, root)}: {msg}{shown}"


def _yaml_loc(loc: Sequence[str | int], data: Any) -> tuple[str | int, ...]:
    """Pydantic's error location without the union tags it inserts (sinks.0.video.crf)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        if not isinstance(node, (dict, list)) and out:
            break  # a shorthand scalar (`source: clip.mp4`) stands for the fields under it
        out.append(part)
        node = _child(node, part)
    return tuple(out)


def _child(node: Any, part: str | int) -> Any:
    """node[part] of a parsed YAML mapping or list; None when there is no such entry."""
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _lookup(data: Any, loc: Sequence[str | int]) -> Any:
    node = data
    for part in loc:
        node = _child(node, part)
    return node


def _field_names(loc: Sequence[str | int], data: Any) -> list[str]:
    """Field names of the model at `loc`, for "did you mean" hints; [] when unknown."""
    model: type[BaseModel] = PipelineConfig
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        candidates = _models_in(field.annotation)
        if len(candidates) > 1:  # a type-keyed union: the item's `type` picks the model
            item = _lookup(data, loc[: i + 2])
            tag = item.get("type") if isinstance(item, dict) else None
            candidates = [
                m for m in candidates if get_args(m.model_fields["type"].annotation) == (tag,)
            ]
        if len(candidates) != 1:
            return []
        model = candidates[0]
    return list(model.model_fields)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _where(loc: Sequence[str | int], root: Any) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    line = _line_of(loc, root)
    return f"{text or '<top>'} (line {line})" if line else (text or "<top>")


def _line_of(loc: Sequence[str | int], node: Any) -> int | None:
    """1-based line of the deepest YAML node on the path `loc`."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            if child is not None:
                key = next(k for k, v in node.value if v is child)
                line = key.start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
