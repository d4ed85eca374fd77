"""The YAML config: its schema (one pydantic model per section) and its loader.

`load_config` reads a file and raises `ConfigError` naming the YAML path and line of every
bad field; the models are what the rest of the pipeline is built from.
"""

from pipeline.config.cameras import (
    CameraConfig,
    DeviceSourceConfig,
    FileSourceConfig,
    ImagesSourceConfig,
    ReconnectConfig,
    SourceConfig,
    StreamSourceConfig,
)
from pipeline.config.loader import ConfigError, load_config, parse_config
from pipeline.config.scene import AnalyticsConfig, LineConfig, LineDirections, ZoneConfig
from pipeline.config.schema import PipelineConfig
from pipeline.config.sinks import (
    VIDEO_CODECS,
    X264_PRESETS,
    LiveSinkConfig,
    SinkConfig,
    SnapshotSinkConfig,
    SqlSinkConfig,
    VideoCodec,
    VideoSinkConfig,
    X264Preset,
    ZmqCurveConfig,
    ZmqSinkConfig,
)
from pipeline.config.stages import DetectorConfig, TrackerConfig

__all__ = [
    "VIDEO_CODECS",
    "X264_PRESETS",
    "AnalyticsConfig",
    "CameraConfig",
    "ConfigError",
    "DetectorConfig",
    "DeviceSourceConfig",
    "FileSourceConfig",
    "ImagesSourceConfig",
    "LineConfig",
    "LineDirections",
    "LiveSinkConfig",
    "PipelineConfig",
    "ReconnectConfig",
    "SinkConfig",
    "SnapshotSinkConfig",
    "SourceConfig",
    "SqlSinkConfig",
    "StreamSourceConfig",
    "TrackerConfig",
    "VideoCodec",
    "VideoSinkConfig",
    "X264Preset",
    "ZmqCurveConfig",
    "ZmqSinkConfig",
    "ZoneConfig",
    "load_config",
    "parse_config",
]
