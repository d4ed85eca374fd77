"""Topic levels and Home Assistant ids made of camera ids and label names."""

from __future__ import annotations

import json

from sinks.mqtt.discovery import Discovery, hass_id
from sinks.mqtt.settings import BrokerAddress
from sinks.mqtt.topics import Topics, segment


def test_a_label_becomes_one_topic_level_without_wildcards() -> None:
    assert segment("traffic light") == "traffic_light"
    assert segment("a/b+c#") == "a_b_c_"
    assert Topics("home/cams").count("gate.1", "stop sign") == "home/cams/gate.1/count/stop_sign"


def test_discovery_ids_hold_only_what_home_assistant_allows() -> None:
    assert hass_id("gate.1") == "gate_1"
    topic, payload = Discovery(Topics("home/cams"), "ha").count("gate.1", "stop sign")
    assert topic == "ha/sensor/home_cams/gate_1_stop_sign_count/config"
    config = json.loads(payload)
    assert config["unique_id"] == "home_cams_gate_1_stop_sign_count"
    assert config["state_topic"] == "home/cams/gate.1/count/stop_sign"
    assert config["name"] == "Stop sign count"


def test_broker_urls_and_their_default_ports() -> None:
    assert BrokerAddress.parse("mqtt://broker.lan") == BrokerAddress("broker.lan", 1883, False)
    assert BrokerAddress.parse("mqtts://[::1]:8884") == BrokerAddress("::1", 8884, True)
    assert str(BrokerAddress.parse("mqtts://[::1]:8884")) == "mqtts://[::1]:8884"
