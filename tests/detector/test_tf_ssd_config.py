"""The TF SSD architecture config: defaults, and its plain-data round trip."""

from __future__ import annotations

from detector.tf_ssd_config import TFSSDConfig


def test_config_survives_a_round_trip_through_plain_data() -> None:
    config = TFSSDConfig()
    assert TFSSDConfig.from_dict(config.to_dict()) == config
    assert config.feature_channels == [576, 1280, 512, 256, 256, 128]
    assert [len(level) for level in config.anchor_specs] == [3, 6, 6, 6, 6, 6]
