"""The `mqtt` sink's config: the broker URL, the password from the environment (never
shown), event types; what `validate` and the builder say when the sink cannot open."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.build import SceneConfigError
from pipeline.cli import main
from pipeline.config import ConfigError, MqttSinkConfig, parse_config
from pipeline.preflight import check_sinks
from pipeline.runner import Pipeline
from pipeline.sink_factory import SinkContext, build_sink
from pipeline.types import LabelMap
from sinks.base import SinkError
from sinks.mqtt.connection import MqttConnection
from sinks.mqtt.packets import MAX_PACKET_BYTES, packet_size
from tests.conftest import VideoFactory, write_video
from tests.pipeline.test_pipelining import EagerDetector
from tests.sinks.mqtt.brokers import Listener, PrivateMosquitto

SECRET = "s3cret-Hunter2-xyz"


@pytest.fixture
def video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"x")
    return "clip.mp4"


def config_text(video: str, sink: str) -> str:
    return f"cameras:\n  - id: lobby\n    source: {video}\nsinks:\n  - type: mqtt\n{sink}"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="cams.yaml")
    return caught.value.problems


def test_defaults_reach_the_local_broker_under_ssd_pipeline(video: str) -> None:
    (sink,) = parse_config(config_text(video, "")).sinks
    assert isinstance(sink, MqttSinkConfig)
    broker = sink.broker()
    assert (str(broker.address), sink.prefix, sink.qos) == (
        "mqtt://127.0.0.1:1883",
        "ssd-pipeline",
        1,
    )
    assert broker.username is None and broker.password is None
    assert not sink.homeassistant and sink.discovery_prefix == "homeassistant"


def test_mqtts_without_a_port_takes_8883(video: str) -> None:
    (sink,) = parse_config(config_text(video, "    url: mqtts://broker.lan\n")).sinks
    assert isinstance(sink, MqttSinkConfig)
    assert (sink.broker().address.port, sink.broker().address.tls) == (8883, True)


def test_a_password_in_the_url_is_refused_without_being_shown(video: str) -> None:
    found = problems(config_text(video, f"    url: mqtt://user:{SECRET}@host:1883\n"))
    assert len(found) == 1
    assert found[0].startswith("sinks[0].url (line 6): must not hold credentials")
    assert SECRET not in found[0]


def test_the_password_comes_from_the_named_variable(
    video: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = config_text(video, "    username: cam\n    password_env: MQTT_TEST_PASSWORD\n")
    monkeypatch.delenv("MQTT_TEST_PASSWORD", raising=False)
    assert problems(text) == [
        "sinks[0] (line 5): the environment variable MQTT_TEST_PASSWORD (password_env) is not set"
    ]
    monkeypatch.setenv("MQTT_TEST_PASSWORD", SECRET)
    (sink,) = parse_config(text).sinks
    assert isinstance(sink, MqttSinkConfig)
    assert sink.broker().password == SECRET
    assert SECRET not in repr(sink.broker()) and SECRET not in repr(sink)


def test_a_password_needs_a_user_and_tls_options_need_mqtts(
    video: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MQTT_TEST_PASSWORD", SECRET)
    assert problems(config_text(video, "    password_env: MQTT_TEST_PASSWORD\n")) == [
        "sinks[0] (line 5): password_env needs a username"
    ]
    Path("ca.pem").write_text("x")
    assert problems(config_text(video, "    tls_ca_file: ca.pem\n")) == [
        "sinks[0] (line 5): tls_ca_file needs an mqtts:// url"
    ]


def test_unknown_event_types_and_wildcards_in_prefixes_are_named(video: str) -> None:
    found = problems(config_text(video, "    events: [detections, track.lost]\n"))
    assert len(found) == 1 and "unknown event type 'track.lost'" in found[0]
    assert "sinks[0].prefix" in problems(config_text(video, "    prefix: home/+/cams\n"))[0]


def test_without_paho_the_sink_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)  # as if not installed
    with pytest.raises(SinkError) as caught:
        build_sink(MqttSinkConfig(type="mqtt"), SinkContext(LabelMap(("person",))))
    assert str(caught.value) == (
        "mqtt sink: the mqtt sink needs paho-mqtt, which is not installed: "
        "pip install 'ssd-pipeline[mqtt]' (or pip install paho-mqtt)"
    )


def test_validate_names_a_refused_login_without_the_password(
    video: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broker").mkdir()
    broker = PrivateMosquitto(tmp_path / "broker", users={"cam": "the-right-one-42"})
    broker.start()
    try:
        monkeypatch.setenv("MQTT_TEST_PASSWORD", SECRET)
        text = config_text(
            video,
            f"    url: {broker.url}\n    username: cam\n    password_env: MQTT_TEST_PASSWORD\n",
        )
        # what `validate` prints after "error: CONFIG: ", and exits 1 for
        assert check_sinks(parse_config(text).sinks) == [
            f"sinks[0] (mqtt): the broker at {broker.url} as 'cam' refused the login: Not "
            "authorized; check `username` and the password in `password_env`"
        ]
        monkeypatch.setenv("MQTT_TEST_PASSWORD", "the-right-one-42")
        assert check_sinks(parse_config(text).sinks) == []
    finally:
        broker.kill()


def test_validate_refuses_count_labels_the_model_lacks_at_their_yaml_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    synthetic_video: VideoFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    synthetic_video("clip.mp4", frames=1, size=(16, 16))
    config = tmp_path / "cams.yaml"
    config.write_text(
        config_text("clip.mp4", "    url: mqtt://127.0.0.1:1\n    count_labels: [Person, car]\n")
        + "detector: {device: cpu}\n"
    )
    assert main(["validate", "--quick", str(config)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {config}: sinks[0].count_labels[1] (mqtt): 'car' is not a class the "
        "detector reports (person)"
    )


def test_ids_home_assistant_writes_alike_are_refused_with_homeassistant(video: str) -> None:
    text = (
        f"cameras:\n  - id: gate.1\n    source: {video}\n  - id: gate_1\n    source: {video}\n"
        "    zones:\n      - {id: z.a, polygon: [[0, 0], [1, 0], [1, 1]]}\n"
        "      - {id: z_a, polygon: [[0, 0], [1, 0], [1, 1]]}\n"
        "sinks:\n  - {type: mqtt, homeassistant: true}\n"
    )
    assert problems(text) == [
        "cameras[1].id (line 4): 'gate_1' is 'gate_1' in Home Assistant ids, "
        "as camera 'gate.1' is (anything but letters, digits, '_' and '-' is '_'): name "
        "them apart by those, or leave homeassistant off",
        "cameras[1].zones[1].id (camera gate_1, line 8): 'z_a' is 'z_a' in Home Assistant "
        "ids, as zone 'z.a' is (anything but letters, digits, '_' and '-' is '_'): name "
        "them apart by those, or leave homeassistant off",
    ]
    assert parse_config(text.replace("homeassistant: true", "homeassistant: false"))


class PersonCarDetector(EagerDetector):
    """A model with the classes person and car."""

    labels = LabelMap(("background", "person", "car"))
    background = 0


def test_run_refuses_count_labels_that_detector_labels_filters_out_before_opening_the_sink(
    video: str,
) -> None:
    # the model has `car`, but `detector.labels` keeps only people: the count would stay 0
    write_video(Path(video), frames=2, size=(32, 32))  # a camera the run's first look passes
    config = parse_config(
        config_text(video, "    url: mqtt://127.0.0.1:1\n    count_labels: [Person, car]\n")
        + "detector: {labels: [person]}\n"
    )
    with pytest.raises(SceneConfigError) as refused:  # not SinkError: port 1 was never tried
        Pipeline(config, detector=PersonCarDetector()).run()
    assert str(refused.value) == (
        "sinks[0].count_labels[1] (mqtt): 'car' is not a class the detector reports (person)"
    )


def test_max_packet_kb_counts_thousands_of_bytes_up_to_mqtt_s_largest_packet(video: str) -> None:
    (sink,) = parse_config(config_text(video, "    max_packet_kb: 256\n")).sinks
    assert isinstance(sink, MqttSinkConfig)
    assert sink.broker().max_packet_bytes == 256_000
    assert problems(config_text(video, "    max_packet_kb: 0\n"))
    largest = MAX_PACKET_BYTES // 1000  # 268435 kB: MQTT's 268,435,460 bytes, whole kB
    (sink,) = parse_config(config_text(video, f"    max_packet_kb: {largest}\n")).sinks
    assert isinstance(sink, MqttSinkConfig)
    assert sink.broker().max_packet_bytes <= MAX_PACKET_BYTES
    assert problems(config_text(video, f"    max_packet_kb: {largest + 1}\n"))


def payload_of(topic: str, size: int) -> bytes:
    """A payload whose QoS 1 packet to `topic` has `size` bytes (a few thousand)."""
    headers = packet_size(topic, b"x" * size, qos=1) - size
    return b"x" * (size - headers)


def test_a_message_of_max_packet_kb_times_1000_bytes_is_sent_and_one_byte_more_is_not(
    video: str, tmp_path: Path
) -> None:
    (tmp_path / "broker").mkdir()
    broker = PrivateMosquitto(tmp_path / "broker")
    broker.start()
    listener = Listener("127.0.0.1", broker.port, ["limit/#"])
    (config,) = parse_config(
        config_text(video, f"    url: {broker.url}\n    max_packet_kb: 2\n")
    ).sinks
    assert isinstance(config, MqttSinkConfig)
    connection = MqttConnection(config.broker(), None, qos=1, buffer_size=10)
    try:
        at_limit, over = payload_of("limit/at", 2000), payload_of("limit/over", 2001)
        assert packet_size("limit/at", at_limit, qos=1) == 2000
        assert packet_size("limit/over", over, qos=1) == 2001
        connection.publish("limit/over", over)
        connection.publish("limit/at", at_limit)
        got = listener.wait_for(lambda m: any(x.topic == "limit/at" for x in m))
        assert [x.payload for x in got] == [at_limit]
        assert (connection.published, connection.oversized) == (1, 1)
    finally:
        connection.close(2)
        listener.close()
        broker.kill()
