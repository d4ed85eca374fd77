"""The sinks' config sections: defaults, checks, and keys from files or the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq.auth

from pipeline.config import (
    ConfigError,
    LiveSinkConfig,
    SqlSinkConfig,
    VideoSinkConfig,
    ZmqSinkConfig,
    parse_config,
)
from pipeline.sink_factory import SinkContext, build_sink
from pipeline.types import LabelMap
from sinks.base import SinkError
from sinks.event_bus.publisher import EventPublisher


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not read by the config")
    return path


def config(video: Path, sinks: str) -> str:
    return f"cameras:\n  - id: a\n    source: {video}\nsinks:\n{sinks}"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    return err.value.problems


def test_every_sink_kind_parses_with_its_options(video: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    _, secret_file = zmq.auth.create_certificates(keys, "server")
    cfg = parse_config(
        config(
            video,
            "  - type: video\n    segment_minutes: 10\n    keep_hours: 48\n    keep_files: 20\n"
            "    codec: h264_nvenc\n"
            "  - type: live\n    port: 0\n    max_fps: 5\n"
            f"  - type: zmq\n    isolate_subscribers: true\n    curve:\n"
            f"      secret_key_file: {secret_file}\n      authorized_clients: {keys}\n"
            f"  - type: sql\n    buffer_rows: 1000\n    spool_dir: {tmp_path / 'spool'}\n",
        )
    )
    video_cfg, live_cfg, zmq_cfg, sql_cfg = cfg.sinks
    assert isinstance(video_cfg, VideoSinkConfig) and video_cfg.segment_minutes == 10
    assert video_cfg.fragmented and video_cfg.codec == "h264_nvenc"
    assert isinstance(live_cfg, LiveSinkConfig) and live_cfg.host == "127.0.0.1"
    assert isinstance(zmq_cfg, ZmqSinkConfig) and zmq_cfg.curve is not None
    assert zmq_cfg.curve.secret_key_file == Path(secret_file)
    assert isinstance(sql_cfg, SqlSinkConfig) and sql_cfg.close_timeout_s == 30


def test_the_video_sections_settings_reach_the_sink_its_times_in_seconds(
    video: Path, tmp_path: Path
) -> None:
    from sinks.video.encoding import Encoding
    from sinks.video.files import Rotation
    from sinks.video.sink import VideoSink

    cfg = parse_config(
        config(
            video,
            f"  - type: video\n    dir: {tmp_path / 'out'}\n    segment_minutes: 10\n"
            "    keep_hours: 48\n    keep_files: 20\n    crf: 30\n    preset: veryfast\n"
            "    fragmented: false\n    threads: 3\n",
        )
    )
    sink = build_sink(cfg.sinks[0], SinkContext(LabelMap(()), "test"))
    assert isinstance(sink, VideoSink)
    assert sink.encoding == Encoding("libx264", 30, "veryfast", fragmented=False, threads=3)
    assert sink.rotation == Rotation(segment_s=600, max_age_s=48 * 3600, max_segments=20)
    sink.close()


def test_curve_secret_key_from_the_environment_reaches_the_sink(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    public, secret = zmq.curve_keypair()
    monkeypatch.setenv("TEST_ZMQ_SECRET", secret.decode())
    cfg = parse_config(
        config(
            video,
            "  - type: zmq\n    endpoint: tcp://127.0.0.1:*\n"
            "    curve:\n      secret_key: ${TEST_ZMQ_SECRET}\n",
        )
    )
    sink = build_sink(cfg.sinks[0], SinkContext(LabelMap(()), "test"))
    try:
        assert isinstance(sink, EventPublisher) and sink.curve_public_key == public.decode()
    finally:
        sink.close()


def test_a_bad_curve_key_fails_the_sink_with_one_line(video: Path) -> None:
    cfg = parse_config(config(video, "  - type: zmq\n    curve:\n      secret_key: not-a-key\n"))
    with pytest.raises(SinkError, match=r"not a 40-character Z85 CURVE key.*keygen"):
        build_sink(cfg.sinks[0], SinkContext(LabelMap(()), "test"))


@pytest.mark.parametrize(
    ("sinks", "problem"),
    [
        ("  - type: zmq\n    curve: {}\n", "exactly one of secret_key_file and secret_key"),
        (
            "  - type: zmq\n    curve:\n      secret_key_file: /no/such.key_secret\n",
            "secret_key_file not found",
        ),
        ("  - type: live\n    port: 70000\n", "less than or equal to 65535"),
        ("  - type: video\n    segment_minutes: 0\n", "greater than 0"),
        (
            "  - type: sql\n    batch_size: 500\n    buffer_rows: 100\n",
            "buffer_rows (100) must be at least batch_size (500)",
        ),
    ],
    ids=["curve-no-key", "curve-missing-file", "live-port", "video-segment", "sql-buffer"],
)
def test_bad_sink_options_are_refused_with_their_yaml_path(
    video: Path, sinks: str, problem: str
) -> None:
    (found,) = problems(config(video, sinks))
    assert found.startswith("sinks[0]") and problem in found


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "cams.example.org"])
def test_live_view_on_a_reachable_address_without_auth_is_refused_at_its_yaml_path(
    video: Path, host: str
) -> None:
    found = problems(config(video, f"  - type: live\n    host: '{host}'\n"))
    assert len(found) == 1
    assert found[0].startswith("sinks[0]") and "allow_unauthenticated" in found[0]


def test_live_view_on_a_reachable_address_with_auth_or_an_explicit_yes_is_accepted(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVE_PASSWORD", "s3cret-enough")
    cfg = parse_config(
        config(
            video,
            "  - type: live\n    host: 0.0.0.0\n    allowed_hosts: [cams.example.org]\n"
            "    auth:\n      password: ${LIVE_PASSWORD}\n",
        )
    )
    (with_auth,) = cfg.sinks
    assert isinstance(with_auth, LiveSinkConfig) and with_auth.auth is not None
    credentials = with_auth.auth.credentials()
    assert (credentials.username, credentials.password) == ("viewer", "s3cret-enough")
    assert "s3cret-enough" not in repr(cfg) and "s3cret-enough" not in str(cfg)
    assert with_auth.allowed_hosts == ("cams.example.org",) and with_auth.max_viewers == 32
    open_cfg = parse_config(
        config(
            video,
            "  - type: live\n    host: 0.0.0.0\n    port: 8081\n    allow_unauthenticated: true\n",
        )
    )
    (open_view,) = open_cfg.sinks
    assert isinstance(open_view, LiveSinkConfig) and open_view.allow_unauthenticated


def test_without_an_http_section_the_live_sinks_settings_make_the_runs_server(video: Path) -> None:
    cfg = parse_config(
        config(
            video,
            "  - type: live\n    host: 0.0.0.0\n    port: 8081\n    allow_unauthenticated: true\n",
        )
    )
    server = cfg.server()
    assert server is not None
    assert (server.host, server.port, server.allow_unauthenticated) == ("0.0.0.0", 8081, True)
    assert not server.metrics and not server.api  # the live view alone
    assert parse_config(config(video, "  - type: video\n    dir: out\n")).server() is None


@pytest.mark.parametrize(
    "live",
    [
        "  - type: live\n    max_fps: 5\n",  # nothing of the server said: it is http's
        "  - type: live\n    host: 127.0.0.1\n    port: 9464\n",  # the same as http
    ],
)
def test_with_an_http_section_the_live_view_is_on_that_server(video: Path, live: str) -> None:
    cfg = parse_config(config(video, live) + "http:\n  port: 9464\n")
    assert cfg.server() is cfg.http


@pytest.mark.parametrize(
    ("live", "field"),
    [
        ("  - type: live\n    port: 8080\n", "port"),
        ("  - type: live\n    host: localhost\n", "host"),
        ("  - type: live\n    allowed_hosts: [cams.example.org]\n", "allowed_hosts"),
        ("  - type: live\n    auth: {token: 0123456789abcdef-token}\n", "auth"),
    ],
)
def test_live_server_settings_that_differ_from_the_http_section_are_refused_at_their_yaml_path(
    video: Path, live: str, field: str
) -> None:
    (found,) = problems(config(video, "  - type: video\n    dir: out\n" + live) + "http: {}\n")
    assert found.startswith(f"sinks[1].{field} (line ") and f"differs from http.{field}" in found
    assert "0123456789abcdef-token" not in found


def test_two_live_sinks_are_refused(video: Path) -> None:
    (found,) = problems(config(video, "  - type: live\n  - type: live\n    port: 8081\n"))
    assert "at most one sink of type live" in found


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("password: short1", "must be 8 to 1024 characters long"),
        ("token: short-token-1", "must be 16 to 1024 characters long"),
        ("password: 123456789", "must be text"),
        (
            "password: s3cret-enough\n      token: another-s3cret-token",
            "exactly one of password and token",
        ),
        ("username: viewer", "exactly one of password and token"),
    ],
)
def test_live_view_auth_errors_never_show_the_secret(video: Path, auth: str, expected: str) -> None:
    found = problems(config(video, f"  - type: live\n    auth:\n      {auth}\n"))
    assert len(found) == 1 and found[0].startswith("sinks[0].auth") and expected in found[0]
    for secret in ("short1", "short-token-1", "123456789", "s3cret-enough", "another-s3cret-token"):
        assert secret not in found[0]


def test_live_view_config_builds_a_view_that_asks_for_the_password(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.client

    from pipeline.metrics import RunMetrics
    from pipeline.web.beside_run import start_run_server

    monkeypatch.setenv("LIVE_PASSWORD", "s3cret-enough")
    cfg = parse_config(
        config(
            video,
            "  - type: live\n    port: 0\n    max_viewers: 3\n    auth:\n      password: ${LIVE_PASSWORD}\n",
        )
    )
    sink = build_sink(cfg.sinks[0], SinkContext(LabelMap(("background", "person")), "cfg.yaml"))
    server_config = cfg.server()
    assert server_config is not None
    server = start_run_server(server_config, RunMetrics(), None, [sink], sinks_at_root=True)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/api/cameras")
        assert conn.getresponse().status == 401
        conn.close()
    finally:
        sink.close()
        server.close()
