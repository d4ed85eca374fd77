"""A camera's `zones:`, `lines:` and the `analytics:` rules: parsed, and refused at their
YAML path with a one-line reason; zone and line labels checked against the detector's."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build import SceneConfigError, build_scene_analyzers
from pipeline.cli import main
from pipeline.config import ConfigError, load_config, parse_config
from pipeline.config.scene import kept_classes, scene_label_problems
from pipeline.preflight import check_detector, check_labels
from pipeline.types import LabelMap
from tests.conftest import VideoFactory

ROOT = Path(__file__).resolve().parents[2]
COCO_LIKE = LabelMap(("background", "person", "bicycle", "car"))


@pytest.fixture
def video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthetic_video: VideoFactory) -> str:
    monkeypatch.chdir(tmp_path)
    synthetic_video("clip.mp4", frames=1, size=(16, 16))  # `validate` decodes its frame
    return "clip.mp4"


def camera(video: str, scene: str) -> str:
    return f"cameras:\n  - id: lobby\n    source: {video}\n" + "".join(
        f"    {line}\n" for line in scene.strip("\n").split("\n")
    )


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="cams.yaml")
    return info.value.problems


def test_zones_and_lines_get_documented_defaults(video: str) -> None:
    cfg = parse_config(
        camera(
            video,
            """
zones:
  - id: door
    polygon: [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]
lines:
  - id: entrance
    points: [[0.0, 0.6], [1.0, 0.6]]
    directions: {left_to_right: in, right_to_left: out}
""",
        )
    )
    cam = cfg.cameras[0]
    assert cam.has_scene
    zone, line = cam.zones[0], cam.lines[0]
    assert (zone.units, zone.labels, zone.dwell_alert_s) == ("fraction", None, None)
    assert (line.directions.left_to_right, line.directions.right_to_left) == ("in", "out")
    rules = cfg.analytics_of(cam)
    assert (rules.anchor, rules.anchor_fractions, rules.min_frames) == (
        "bottom_center",
        (0.5, 1.0),
        3,
    )
    assert rules.occupancy_period_s is None
    plain = parse_config(f"cameras:\n  - id: a\n    source: {video}\n")
    assert not plain.cameras[0].has_scene


def test_a_camera_s_analytics_section_replaces_the_top_level_one(video: str) -> None:
    text = camera(
        video, "analytics: {anchor: center}\nlines:\n  - {id: l, points: [[0, 0], [1, 1]]}"
    )
    text += "  - id: other\n    source: clip.mp4\nanalytics: {min_frames: 5}\n"
    cfg = parse_config(text)
    own, other = cfg.cameras
    assert (cfg.analytics_of(own).anchor, cfg.analytics_of(own).min_frames) == ("center", 3)
    assert (cfg.analytics_of(other).anchor, cfg.analytics_of(other).min_frames) == (
        "bottom_center",
        5,
    )


@pytest.mark.parametrize(
    ("scene", "expected"),
    [
        (
            "zones:\n  - {id: z, polygon: [[0, 0], [1, 0]]}",
            "cameras[0].zones[0].polygon (camera lobby, line 5): List should have at least 3 items "
            "after validation, not 2",
        ),
        (
            "zones:\n  - {id: z, polygon: [[0.1, 0.5], [0.4, 0.5], [0.7, 0.5]]}",
            "cameras[0].zones[0] (camera lobby, line 5): polygon has no area: its corners lie on one line",
        ),
        (
            "zones:\n  - {id: z, polygon: [[0, 0], [1, 1], [1, 0], [0, 1]]}",
            "cameras[0].zones[0] (camera lobby, line 5): polygon crosses or touches itself: "
            "list its corners in order around it",
        ),
        (
            "zones:\n  - {id: z, polygon: [[0, 0], [640, 0], [640, 480]]}",
            "cameras[0].zones[0] (camera lobby, line 5): coordinate 640 is above 1: coordinates "
            "are fractions of the frame (0 to 1) unless `units: pixel` says they are pixels",
        ),
        (
            "zones:\n  - {id: z, polygon: [[0, 0], [0.5, 0], [0.5, -0.5]]}",
            "cameras[0].zones[0].polygon[2][1] (camera lobby, line 5): Input should be greater "
            "than or equal to 0 (got -0.5)",
        ),
        (
            "lines:\n  - {id: l, points: [[0.5, 0.5], [0.5, 0.5]]}",
            "cameras[0].lines[0] (camera lobby, line 5): the line's two points are the same",
        ),
        (
            "lines:\n  - {id: l, points: [[0, 0], [1, 1], [1, 0]]}",
            "cameras[0].lines[0].points (camera lobby, line 5): List should have at most 2 items "
            "after validation, not 3",
        ),
        (
            "lines:\n  - {id: l, points: [[0, 0], [1, 1]], directions: {left_to_right: in, "
            "right_to_left: in}}",
            "cameras[0].lines[0].directions (camera lobby, line 5): both directions are named 'in'",
        ),
        (
            "lines:\n  - {id: l, points: [[0, 0], [1, 1]], directions: {left_to_right: 'in+', "
            "right_to_left: 'in#'}}",
            "cameras[0].lines[0].directions (camera lobby, line 5): both directions are "
            "'in_' in MQTT topics and Home Assistant ids ('in+', 'in#'), where anything but "
            "letters, digits, '_' and '-' is '_': name them apart by those",
        ),
        (
            "lines:\n  - {id: l, points: [[0, 0], [1, 1]], directions: {up: in}}",
            "cameras[0].lines[0].directions.up (camera lobby, line 5): unknown key; allowed: "
            "left_to_right, right_to_left",
        ),
        (
            "zones:\n  - {id: door, polygon: [[0, 0], [1, 0], [1, 1]]}\n"
            "lines:\n  - {id: door, points: [[0, 0], [1, 1]]}",
            "cameras[0] (camera lobby, line 2): zone/line id 'door' is used twice in this camera",
        ),
        (
            "zones:\n  - {id: 'the door', polygon: [[0, 0], [1, 0], [1, 1]]}",
            "cameras[0].zones[0].id (camera lobby, line 5): invalid zone id 'the door': use "
            "letters, digits, '_', '-' and '.' (it names events and database rows)",
        ),
        (
            "zones:\n  - {id: z, polygon: [[0, 0], [1, 0], [1, 1]], dwell_alert_s: 0}",
            "cameras[0].zones[0].dwell_alert_s (camera lobby, line 5): Input should be greater "
            "than 0 (got 0)",
        ),
        (
            "analytics: {anchor: feet}",
            "cameras[0].analytics.anchor (camera lobby, line 4): Input should be 'bottom_center', "
            "'center', 'top_center', 'bottom_left' or 'bottom_right' (got 'feet')",
        ),
    ],
    ids=[
        "two-corners",
        "flat",
        "bowtie",
        "pixels-as-fractions",
        "negative",
        "one-point-line",
        "three-point-line",
        "same-direction-names",
        "direction-names-the-same-as-topic-levels",
        "unknown-direction",
        "duplicate-id",
        "id-with-space",
        "zero-dwell",
        "unknown-anchor",
    ],
)
def test_bad_zones_and_lines_are_refused_at_their_yaml_path(
    video: str, scene: str, expected: str
) -> None:
    assert problems(camera(video, scene)) == [expected]


def test_pixel_units_take_coordinates_beyond_1(video: str) -> None:
    cfg = parse_config(
        camera(video, "zones:\n  - {id: z, units: pixel, polygon: [[0, 0], [640, 0], [640, 480]]}")
    )
    assert cfg.cameras[0].zones[0].polygon[1] == (640.0, 0.0)


def test_labels_match_the_classes_the_detector_reports_without_regard_to_case() -> None:
    classes = kept_classes(COCO_LIKE.names, None, background=0)
    assert set(classes) == {"person", "bicycle", "car"}
    assert kept_classes(COCO_LIKE.names, ["Car"], background=0) == {"car": frozenset({3})}


def test_zone_and_line_labels_match_non_ascii_class_names_as_detector_labels_does() -> None:
    names = ("Straße", "Café")
    assert kept_classes(names, ["STRASSE"]) == {"strasse": frozenset({0})}
    assert set(kept_classes(names, None)) == {"strasse", "café"}


def test_a_zone_or_line_label_the_detector_does_not_report_is_named_at_its_path(
    video: str,
) -> None:
    cfg = parse_config(
        camera(
            video,
            "zones:\n  - {id: z, polygon: [[0, 0], [1, 0], [1, 1]], labels: [Person, truck]}\n"
            "lines:\n  - {id: l, points: [[0, 0], [1, 1]], labels: [car]}",
        )
    )
    only_people = kept_classes(COCO_LIKE.names, ["person"], background=0)
    assert scene_label_problems(cfg.cameras, only_people) == [
        "cameras[0].zones[0].labels (camera lobby): 'truck' is not a class the detector "
        "reports (person)",
        "cameras[0].lines[0].labels (camera lobby): 'car' is not a class the detector "
        "reports (person)",
    ]
    with pytest.raises(SceneConfigError, match=r"cameras\[0\].zones\[0\].labels"):
        build_scene_analyzers(cfg.cameras, cfg.analytics_of, COCO_LIKE, ["person"], 0)


def test_a_zone_labelled_with_the_background_column_is_refused(video: str) -> None:
    cfg = parse_config(
        camera(
            video, "zones:\n  - {id: z, polygon: [[0, 0], [1, 0], [1, 1]], labels: [background]}"
        )
    )
    with pytest.raises(SceneConfigError, match="'background' is not a class the detector reports"):
        build_scene_analyzers(cfg.cameras, cfg.analytics_of, COCO_LIKE, None, 0)


def test_only_cameras_with_zones_or_lines_get_an_analyzer(video: str) -> None:
    text = camera(video, "lines:\n  - {id: l, points: [[0, 0], [1, 1]], labels: [car, person]}")
    text += "  - id: plain\n    source: clip.mp4\n"
    cfg = parse_config(text)
    analyzers = build_scene_analyzers(cfg.cameras, cfg.analytics_of, COCO_LIKE, None, 0)
    assert list(analyzers) == ["lobby"]
    assert analyzers["lobby"].lines[0].labels == frozenset({1, 3})


def test_the_analytics_rules_reach_the_analyzer(video: str) -> None:
    text = camera(video, "lines:\n  - {id: l, points: [[0, 0], [1, 1]]}")
    text += "analytics: {min_frames: 2, leave_frames: 7}\n"
    cfg = parse_config(text)
    rules = build_scene_analyzers(cfg.cameras, cfg.analytics_of, COCO_LIKE, None, 0)["lobby"].rules
    assert (rules.min_frames, rules.leave_frames) == (2, 7)


def test_validate_counts_the_zones_and_lines_it_accepted(
    video: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cams.yaml"
    config.write_text(
        camera(
            video,
            "zones:\n  - {id: z, polygon: [[0, 0], [1, 0], [1, 1]], labels: [PERSON]}\n"
            "lines:\n  - {id: a, points: [[0, 0], [1, 1]]}\n  - {id: b, points: [[0, 1], [1, 0]]}",
        )
        + "detector: {device: cpu}\n"
    )
    assert main(["validate", str(config)]) == 0
    assert capsys.readouterr().out == (
        f"{config}: ok (1 camera(s) with 1 zone(s) and 2 line(s), model person_ssdlite "
        "(1 class), sinks: none)\n"
    )


def test_validate_refuses_a_zone_label_the_model_lacks(
    video: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cams.yaml"
    config.write_text(
        camera(video, "zones:\n  - {id: z, polygon: [[0, 0], [1, 0], [1, 1]], labels: [car]}")
        + "detector: {device: cpu}\n"
    )
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {config}: cameras[0].zones[0].labels (camera lobby): 'car' is not a class "
        "the detector reports (person)"
    )


def test_the_example_zones_config_is_valid_with_the_bundled_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # as `validate` checks it, but for its sinks (a port another program may hold)
    monkeypatch.chdir(ROOT)
    cfg = load_config("config/zones.yaml")
    assert [(c.id, len(c.zones), len(c.lines)) for c in cfg.cameras] == [("lobby", 1, 1)]
    _, classes = check_detector(cfg.detector)
    assert check_labels(cfg, classes) == []
