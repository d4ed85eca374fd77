from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from detector import DetectorRequest, ModelConfigError
from detector.request import BOUNDS, DEFAULTS
from pipeline.cli import main
from pipeline.config import (
    CameraConfig,
    ConfigError,
    DetectorConfig,
    PipelineConfig,
    SqlSinkConfig,
    load_config,
    parse_config,
)
from pipeline.config.base import BYTES_PER_KB, BYTES_PER_MB, ONE_BYTE_MB, SINK_QUEUE_MB
from pipeline.config.loader import MAX_PROBLEM_CHARS, MAX_PROBLEMS_SHOWN, NUL_PROBLEM
from tests.conftest import VideoFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthetic_video: VideoFactory) -> str:
    monkeypatch.chdir(tmp_path)
    synthetic_video("clip.mp4", frames=1, size=(16, 16))  # `validate` decodes its frame
    return "clip.mp4"


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="cams.yaml")
    return info.value.problems


def test_minimal_config_gets_documented_defaults(video: str) -> None:
    cfg = parse_config(f"cameras:\n  - id: lobby\n    source: {video}\n")
    assert cfg.cameras[0].id == "lobby"
    assert cfg.detector.batch_size == "auto"
    assert cfg.detector.runtime == "auto"
    assert cfg.tracker.type == "iou"
    assert cfg.sinks == []


def test_a_config_without_detector_runs_the_bundled_model_that_needs_no_download(
    video: str,
) -> None:
    cfg = parse_config(f"cameras:\n  - id: lobby\n    source: {video}\n")
    assert (cfg.detector.model, cfg.detector.weights) == ("person_ssdlite", "default")
    assert DEFAULTS.model == "person_ssdlite"


def test_unknown_key_is_named_with_its_path_line_and_a_suggestion(video: str) -> None:
    problems = _problems(f"cameras:\n  - id: a\n    source: {video}\ndetector:\n  bach_size: 4\n")
    assert problems == [
        "detector.bach_size (line 5): unknown key (did you mean 'batch_size'?); allowed: "
        "batch_size, calibration, device, labels, max_detections, max_wait_ms, model, "
        "nms_threshold, precision, runtime, score_threshold, weights, workers"
    ]


def test_wrong_type_and_out_of_range_are_each_reported(video: str) -> None:
    problems = _problems(
        f"cameras:\n  - id: a\n    source: {video}\n"
        "detector:\n  batch_size: many\n  score_threshold: 1.5\n"
    )
    assert len(problems) == 2
    assert problems[0] == (
        "detector.batch_size (line 5): must be auto or a whole number in [1, 1024], got 'many'"
    )
    assert problems[1].startswith("detector.score_threshold (line 6): Input should be less than")


@pytest.mark.parametrize("value", ["0", "1025", "2.5", "[8]"])
def test_a_batch_size_neither_auto_nor_in_bounds_is_one_problem(video: str, value: str) -> None:
    problems = _problems(
        f"cameras:\n  - id: a\n    source: {video}\ndetector:\n  batch_size: {value}\n"
    )
    assert len(problems) == 1
    assert problems[0].startswith("detector.batch_size (line 5): must be auto or a whole number")


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("16", 16)])
def test_a_batch_size_auto_or_a_number_reaches_the_detector_request(
    video: str, value: str, expected: object
) -> None:
    cfg = parse_config(
        f"cameras:\n  - id: a\n    source: {video}\ndetector:\n  batch_size: {value}\n"
    )
    assert cfg.detector.to_request().batch_size == expected


def test_the_shipped_configs_leave_the_batch_size_to_auto() -> None:
    for path in sorted((ROOT / "config").glob("*.yaml")):
        detector = (yaml.safe_load(path.read_text()) or {}).get("detector") or {}
        assert detector.get("batch_size", "auto") == "auto", path.name


def test_missing_source_file_names_the_camera_entry_and_its_id(video: str) -> None:
    problems = _problems(
        f"cameras:\n  - id: a\n    source: {video}\n  - id: b\n    source: no.mp4\n"
    )
    assert len(problems) == 1
    assert problems[0].startswith("cameras[1].source (camera b, line 5): file not found: 'no.mp4'")


def test_an_empty_source_file_is_found_by_validate_naming_the_camera(
    video: str, tmp_path: Path
) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")  # a recording that never got a byte
    problems = _problems(
        f"cameras:\n  - id: a\n    source: {video}\n  - id: b\n    source: empty.mp4\n"
    )
    assert problems == ["cameras[1].source (camera b, line 5): empty file (0 bytes): 'empty.mp4'"]


@pytest.mark.parametrize("written", ["123", "1.5", "yes", "[a.mp4]", "null"])
def test_a_source_neither_text_nor_a_mapping_is_told_what_a_source_may_be(
    video: str, written: str
) -> None:
    (problem,) = _problems(f"cameras:\n  - id: a\n    source: {written}\n")
    assert problem.startswith("cameras[0].source (camera a, line 3): a source is ")
    assert "path or URL" in problem and "mapping with `type:`" in problem
    assert "dictionary" not in problem


def test_a_config_loaded_to_run_leaves_missing_sources_to_their_cameras(video: str) -> None:
    # each fails alone when its reader opens it (tests/pipeline/test_run_e2e.py)
    text = (
        f"cameras:\n  - id: a\n    source: {video}\n  - id: b\n    source: no.mp4\n"
        "  - id: c\n    source: {type: images, path: 'no/*.jpg'}\n"
    )
    config = parse_config(text, check_sources=False)
    assert [c.id for c in config.cameras] == ["a", "b", "c"]
    assert len(_problems(text)) == 2


def test_sink_errors_point_inside_the_tagged_union(video: str) -> None:
    problems = _problems(
        f"cameras:\n  - id: a\n    source: {video}\n"
        "sinks:\n  - type: video\n    crf: 99\n  - type: kafka\n  - url: x\n"
    )
    assert problems[0].startswith("sinks[0].crf (line 6): Input should be less than or equal to 51")
    assert (
        problems[1]
        == "sinks[1] (line 7): unknown type; expected one of video, live, zmq, sql, snapshots, mqtt"
    )
    assert problems[2] == "sinks[2] (line 8): missing 'type' (video, live, zmq or sql)"


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("tcp://127.0.0.1:99999", "is not a number from 0 to 65535"),  # ZeroMQ: a random port
        ("tcp://127.0.0.1:events", "is not a number from 0 to 65535"),
        ("tcp://127.0.0.1", "needs a host and a port"),
        ("udp://127.0.0.1:5556", "not a ZeroMQ endpoint"),
        ("tcp://[::1:5556", "has an unpaired bracket"),
    ],
)
def test_a_zmq_endpoint_zeromq_would_misread_is_refused_at_its_path(
    video: str, endpoint: str, why: str
) -> None:
    problems = _problems(
        f"cameras:\n  - id: a\n    source: {video}\nsinks:\n  - type: zmq\n"
        f"    endpoint: '{endpoint}'\n"
    )
    assert len(problems) == 1
    assert problems[0].startswith("sinks[0].endpoint (line 6): ") and why in problems[0]


@pytest.mark.parametrize(
    "endpoint", ["tcp://*:5556", "tcp://127.0.0.1:*", "tcp://[::1]:0", "ipc:///tmp/e", "inproc://e"]
)
def test_zmq_endpoints_zeromq_takes_are_accepted(video: str, endpoint: str) -> None:
    text = f"cameras:\n  - id: a\n    source: {video}\nsinks:\n  - {{type: zmq, endpoint: '{endpoint}'}}\n"
    assert parse_config(text).sinks[0].endpoint == endpoint  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("more", "expected"),
    [
        (
            "http: {port: 9484}\nsinks:\n  - {type: zmq, endpoint: 'tcp://127.0.0.1:9484'}\n",
            "sinks[0].endpoint (line 6): port 9484 is also the port of http.port: the run "
            "listens on each port once; give each its own",
        ),
        (
            "sinks:\n  - {type: live, port: 9485}\n  - {type: zmq, endpoint: 'tcp://*:9485'}\n",
            "sinks[1].endpoint (line 6): port 9485 is also the port of sinks[0].port: the run "
            "listens on each port once; give each its own",
        ),
    ],
)
def test_two_servers_of_the_run_on_one_port_are_refused_at_the_second(
    video: str, more: str, expected: str
) -> None:
    problems = _problems(f"cameras:\n  - id: a\n    source: {video}\n{more}")
    assert problems == [expected]


def test_servers_of_the_run_on_one_port_of_different_addresses_are_accepted(video: str) -> None:
    text = (
        f"cameras:\n  - id: a\n    source: {video}\nhttp: {{port: 9484}}\nsinks:\n"
        "  - {type: zmq, endpoint: 'tcp://127.0.0.2:9484'}\n"
        "  - {type: zmq, endpoint: 'tcp://127.0.0.1:0'}\n  - {type: zmq, endpoint: 'tcp://127.0.0.1:0'}\n"
    )
    assert len(parse_config(text).sinks) == 3


@pytest.mark.parametrize(
    ("sinks", "expected"),
    [
        (
            "  - {type: video, dir: out/v}\n  - {type: video, dir: ./out/v/}\n",
            "sinks[1].dir (line 6): the same folder as sinks[0].dir: each camera's file of one "
            "would replace the other's; give each its own",
        ),
        (
            "  - {type: sql, url: 'sqlite:///out/d.db'}\n"
            "  - {type: sql, url: 'sqlite:///./out/d.db'}\n",
            "sinks[1].url (line 6): the same database as sinks[0].url: the run would be stored "
            "twice, every count doubled; give each its own",
        ),
        (
            "  - {type: sql, url: 'postgresql+psycopg://u:one@db/pipeline'}\n"
            "  - {type: sql, url: 'postgresql+psycopg://u:two@db/pipeline'}\n",
            "sinks[1].url (line 6): the same database as sinks[0].url: the run would be stored "
            "twice, every count doubled; give each its own",
        ),
    ],
    ids=["video-folder", "sqlite-file", "postgresql"],
)
def test_two_sinks_writing_one_place_are_refused_at_the_second(
    video: str, sinks: str, expected: str
) -> None:
    # were: both video sinks wrote each camera's file under one name, and both sql sinks
    # stored the run, so that `query --count-by` counted everything twice
    assert _problems(f"cameras:\n  - id: a\n    source: {video}\nsinks:\n{sinks}") == [expected]


def test_sinks_writing_places_of_their_own_are_accepted(video: str) -> None:
    sinks = (
        "  - {type: video, dir: out/a}\n  - {type: video, dir: out/b}\n"
        "  - {type: sql, url: 'sqlite:///a.db'}\n  - {type: sql, url: 'sqlite:///b.db'}\n"
        "  - {type: sql, url: 'sqlite://'}\n  - {type: sql, url: 'sqlite://'}\n"  # in memory
    )
    config = parse_config(f"cameras:\n  - id: a\n    source: {video}\nsinks:\n{sinks}")
    assert len(config.sinks) == 6


@pytest.mark.parametrize(
    ("key", "read_as", "where"),
    [("~", "a null", "<top> (line 4)"), ("1", "a number", "<top> (line 4)"),
     ("  yes", "a yes/no value", "detector (line 5)")],
    ids=["null", "number", "yes-in-a-section"],
)  # fmt: skip
def test_a_key_yaml_reads_as_no_name_is_refused_at_its_own_line(
    video: str, key: str, read_as: str, where: str
) -> None:
    section = "detector:\n" if key.startswith(" ") else ""
    text = f"cameras:\n  - id: a\n    source: {video}\n{section}{key}: 3\n"
    # was: "None (line 1): Keys should be strings (got None)", the line the file's first
    assert _problems(text) == [
        f"{where}: YAML reads the key {key.strip()!r} as {read_as}, not a name; quote it"
    ]


def test_duplicate_camera_ids_and_empty_camera_list_are_refused(video: str) -> None:
    problems = _problems(
        f"cameras:\n  - id: a\n    source: {video}\n  - id: a\n    source: {video}\n"
    )
    assert "camera id 'a' is used twice" in problems[0]
    assert _problems("cameras: []\n")[0].startswith("cameras (line 1): List should have at least 1")


def test_a_problem_between_entries_names_the_entry_that_repeats_and_its_line(video: str) -> None:
    cameras = f"cameras:\n  - id: a\n    source: {video}\n  - id: a\n    source: {video}\n"
    assert _problems(cameras)[0] == "cameras[1].id (line 4): camera id 'a' is used twice"
    for kind in ("snapshots", "live"):
        sinks = f"sinks:\n  - type: {kind}\n  - type: {kind}\n"
        twice = f"cameras:\n  - id: a\n    source: {video}\n{sinks}"
        assert _problems(twice)[0] == f"sinks[1] (line 6): at most one sink of type {kind}"


def test_every_problem_between_entries_is_named_at_once_not_only_the_first(video: str) -> None:
    camera = f"  - id: a\n    source: {video}\n"
    sinks = (
        "sinks:\n  - type: snapshots\n  - type: snapshots\n"
        "  - {type: zmq, endpoint: 'tcp://127.0.0.1:5599'}\n"
        "  - {type: zmq, endpoint: 'tcp://127.0.0.1:5599'}\n"
    )
    assert _problems(f"cameras:\n{camera}{camera}{camera}{sinks}") == [
        "cameras[1].id (line 4): camera id 'a' is used twice",
        "cameras[2].id (line 6): camera id 'a' is used twice",
        "sinks[1] (line 10): at most one sink of type snapshots",
        "sinks[3].endpoint (line 12): port 5599 is also the port of sinks[2].endpoint: the run "
        "listens on each port once; give each its own",
    ]


def test_bad_camera_id_and_device_get_plain_messages(video: str) -> None:
    problems = _problems(
        f"cameras:\n  - id: 'my cam'\n    source: {video}\ndetector:\n  device: gpu\n"
    )
    assert problems[0].startswith("cameras[0].id (line 2): invalid camera id 'my cam'")
    assert (
        problems[1]
        == "detector.device (line 5): invalid device 'gpu'; use auto, cpu, cuda or cuda:N"
    )


def test_env_variables_are_expanded_and_unset_ones_reported(
    video: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_PASSWORD", "s3cret")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    cfg = parse_config(
        f"cameras:\n  - id: a\n    source: {video}\n"
        "sinks:\n  - type: sql\n    url: postgresql+psycopg://u:${PG_PASSWORD}@h/${DB:-test}\n"
    )
    sink = cfg.sinks[0]
    assert isinstance(sink, SqlSinkConfig)
    assert sink.url == "postgresql+psycopg://u:s3cret@h/test"
    problems = _problems(
        f"cameras:\n  - id: a\n    source: {video}\n"
        "sinks:\n  - type: zmq\n    endpoint: ${NOT_SET_ANYWHERE}\n"
    )
    assert problems == [
        "sinks[0].endpoint (line 6): environment variable NOT_SET_ANYWHERE is not set"
    ]


def test_int8_is_refused_where_it_cannot_run_and_calibration_only_serves_int8(
    video: str,
) -> None:
    head = f"cameras:\n  - id: a\n    source: {video}\ndetector:\n"
    assert _problems(head + "  precision: int8\n  runtime: torch\n") == [
        "detector (line 4): precision int8 runs on onnxruntime; set `detector.runtime` to "
        "auto or onnxruntime"
    ]
    assert (
        "int8 runs on onnxruntime" in _problems(head + "  precision: int8\n  runtime: compile\n")[0]
    )
    assert "runs on the CPU only" in _problems(head + "  precision: int8\n  device: cuda\n")[0]
    assert "only used with precision: int8" in _problems(head + f"  calibration: {video}\n")[0]
    missing = _problems(head + "  precision: int8\n  calibration: gone.mp4\n")
    assert missing[0].startswith("detector.calibration (line 6): calibration clip "
                                 "not found: gone.mp4")  # fmt: skip
    cfg = parse_config(head + f"  precision: int8\n  calibration: {video}\n")
    assert (cfg.detector.precision, cfg.detector.calibration) == ("int8", Path(video))


def test_score_threshold_1_is_refused_by_the_config_at_its_path_as_by_the_detector(
    video: str,
) -> None:
    text = f"cameras:\n  - id: a\n    source: {video}\ndetector:\n  score_threshold: 1.0\n"
    (problem,) = _problems(text)
    assert problem == "detector.score_threshold (line 5): Input should be less than 1 (got 1.0)"
    with pytest.raises(ModelConfigError, match=r"score_threshold must be in \[0, 1\), got 1.0"):
        DetectorRequest(score_threshold=1.0)
    assert parse_config(text.replace("1.0", "0.99")).detector.score_threshold == 0.99


def _outside(name: str) -> list[float]:
    """Values just outside the bounds of the request's field `name`."""
    bounds = BOUNDS[name]
    return [
        value
        for value in (
            None if bounds.ge is None else bounds.ge - 1,
            bounds.gt,
            None if bounds.le is None else bounds.le + 1,
            bounds.lt,
        )
        if value is not None
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (name, value)
        for name in BOUNDS
        if name in DetectorConfig.model_fields
        for value in _outside(name)
    ],
)
def test_config_and_detector_refuse_the_same_values(name: str, value: float) -> None:
    with pytest.raises(ModelConfigError, match=f"{name} must be"):
        DetectorRequest(**{name: value})  # type: ignore[arg-type]
    within = (
        r"Value error, must be auto or a whole number in"
        if name == "batch_size"
        else (r"Input should be (greater|less) than")
    )
    with pytest.raises(ValueError, match=rf"{name}\n  {within}"):
        DetectorConfig(**{name: value})


def test_config_defaults_are_the_detector_request_defaults() -> None:
    assert DetectorConfig().to_request() == DEFAULTS


def test_invalid_yaml_reports_the_line() -> None:
    problems = _problems("cameras:\n  - id: a\n   source: [\n")
    assert len(problems) == 1
    assert problems[0].startswith("line ")
    assert "invalid YAML" in problems[0]


def test_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "missing.yaml")


def test_validate_command_exit_codes(
    video: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(f"cameras:\n  - id: a\n    source: {video}\n")
    assert main(["validate", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"cameras:\n  - id: a\n    source: {video}\n    fps: 3\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cameras[0].fps (camera a, line 4): unknown key" in err


@pytest.mark.parametrize("name", ["cams\nx.yaml", "cams\x1b[31m.yaml"], ids=["newline", "escape"])
def test_a_config_path_that_would_not_print_on_one_line_is_shown_escaped(
    video: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    config = tmp_path / name
    config.write_text(f"cameras:\n  - id: a\n    source: {video}\n")
    assert main(["validate", str(config)]) == 0
    assert capsys.readouterr().out.startswith(f"{str(config)!r}: ok (1 camera(s)")
    config.write_text(f"cameras:\n  - id: a\n    source: {video}\n    fps: 3\n")
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {str(config)!r}: cameras[0].fps") and err.count("\n") == 1
    assert main(["run", str(tmp_path / name.replace("cams", "gone"))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: '") and err.count("\n") == 1 and "\x1b" not in err


VTEST = "../shared/data/vtest.avi"


def test_shipped_configs_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    configs = sorted((ROOT / "config").glob("*.yaml"))
    assert configs, "config/ holds the example configs"
    for path in configs:
        # vtest-zones.yaml reads footage kept beside the project (../shared/data/vtest.avi):
        # whether the file is there is checked only where it is
        outside = path.name == "vtest-zones.yaml" and not (ROOT / VTEST).is_file()
        load_config(path, check_sources=not outside)


def config_models() -> list[type[BaseModel]]:
    """Every model of the config, sections and the sources and sinks inside them."""
    found: list[type[BaseModel]] = []

    def visit(annotation: Any) -> None:
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if is_model and annotation not in found:
            found.append(annotation)
            for field in annotation.model_fields.values():
                visit(field.annotation)
        for arg in get_args(annotation):
            visit(arg)

    visit(PipelineConfig)
    return found


NUMBER_FIELDS = [
    (model, name)
    for model in config_models()
    for name, field in model.model_fields.items()
    if {int, float} & {field.annotation, *get_args(field.annotation)}
]


def _bounds_of(model: type[BaseModel], name: str) -> tuple[float | None, float | None]:
    low = high = None
    for item in model.model_fields[name].metadata:
        low = next(
            (v for v in (getattr(item, "ge", None), getattr(item, "gt", None)) if v is not None),
            low,
        )
        high = next(
            (v for v in (getattr(item, "le", None), getattr(item, "lt", None)) if v is not None),
            high,
        )
    return low, high


@pytest.mark.parametrize(("model", "name"), NUMBER_FIELDS, ids=lambda v: getattr(v, "__name__", v))
def test_every_number_in_the_config_has_bounds_that_the_run_can_hold(
    model: type[BaseModel], name: str
) -> None:
    low, high = _bounds_of(model, name)
    assert low is not None and high is not None, f"{model.__name__}.{name} needs both bounds"
    assert high < 2**31, f"{model.__name__}.{name} could overflow what uses it"


SIZE_FIELDS = [(model, name) for model, name in NUMBER_FIELDS if name.endswith("_mb")]


def test_the_sizes_in_mb_are_the_spool_the_snapshots_a_shards_memory_and_the_queues() -> None:
    assert {name for _, name in SIZE_FIELDS} == {"spool_max_mb", "keep_mb", "memory_mb", "queue_mb"}


def test_every_sink_with_a_queue_size_bounds_its_queue_by_bytes_too_by_default() -> None:
    queued = [
        m for m in config_models() if "queue_size" in m.model_fields and m is not CameraConfig
    ]
    assert len(queued) == 6  # video, live, zmq, sql, snapshots, mqtt
    for model in queued:
        assert model.model_fields["queue_mb"].default == SINK_QUEUE_MB, model.__name__


def test_every_size_in_the_config_is_in_decimal_kb_or_mb_and_says_so() -> None:
    sizes = [
        (model, name)
        for model, name in NUMBER_FIELDS
        if name.endswith(("_b", "_bytes", "_kb", "_kib", "_mb", "_mib", "_gb", "_gib"))
    ]
    assert {name for _, name in sizes} == {
        "max_packet_kb",
        "spool_max_mb",
        "keep_mb",
        "memory_mb",
        "queue_mb",
    }
    assert (BYTES_PER_KB, BYTES_PER_MB) == (1000, 1_000_000)
    for model, name in sizes:
        unit = "kB (thousands" if name.endswith("_kb") else "MB (millions"
        assert f"in {unit} of bytes" in str(model.model_fields[name].description), name


@pytest.mark.parametrize(("model", "name"), SIZE_FIELDS, ids=lambda v: getattr(v, "__name__", v))
def test_every_size_in_mb_below_one_byte_is_refused_not_counted_as_no_room(
    model: type[BaseModel], name: str
) -> None:
    def errors_at_the_field(value: float) -> list[str]:
        with pytest.raises(ValidationError) as info:  # other required fields are missing
            model.model_validate({name: value, "no such key": 1})
        return [e["type"] for e in info.value.errors() if e["loc"] == (name,)]

    assert errors_at_the_field(1e-300) == errors_at_the_field(9e-7) == ["greater_than_equal"]
    assert errors_at_the_field(ONE_BYTE_MB) == []


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ("sinks:\n  - type: sql\n    spool_max_mb: 1e-300\n", "sinks[0].spool_max_mb (line 6)"),
        (
            "cluster:\n  engine: ray\n  resources_per_shard:\n    memory_mb: 1e-300\n",
            "cluster.resources_per_shard.memory_mb (line 7)",
        ),
        ("    queue_mb: 1e-300\n", "cameras[0].queue_mb (camera a, line 4)"),
        ("sinks:\n  - type: video\n    queue_mb: 1e-300\n", "sinks[0].queue_mb (line 6)"),
    ],
    ids=["spool", "memory", "camera queue", "sink queue"],
)
def test_a_size_below_one_byte_is_refused_at_its_yaml_path(
    video: str, entry: str, where: str
) -> None:
    (problem,) = _problems(f"cameras:\n  - id: a\n    source: {video}\n{entry}")
    assert problem.startswith(f"{where}: Input should be greater than or equal to 0.000001 (")


FLOAT_FIELDS = [
    (model, name)
    for model, name in NUMBER_FIELDS
    if float
    in {model.model_fields[name].annotation, *get_args(model.model_fields[name].annotation)}
]


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize(("model", "name"), FLOAT_FIELDS, ids=lambda v: getattr(v, "__name__", v))
def test_no_float_in_the_config_takes_infinity_or_nan(
    model: type[BaseModel], name: str, value: float
) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate({name: value})
    assert any(e["loc"] == (name,) and e["type"] == "finite_number" for e in info.value.errors())


@pytest.mark.parametrize(
    "entry", ["sinks:\n  - type: sql\n    spool_max_mb: .inf", "  - id: b\n    max_fps: .nan"]
)
def test_validate_refuses_an_infinite_or_nan_number_that_would_crash_the_run(
    video: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str
) -> None:
    config = tmp_path / "cams.yaml"
    camera = f"cameras:\n  - id: a\n    source: {video}\n"
    config.write_text(camera + entry + ("\n    source: clip.mp4\n" if "id: b" in entry else "\n"))
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Input should be a finite number" in err


@pytest.mark.parametrize(
    "entry",
    [
        "  - id: {huge}\n    source: clip.mp4",
        "  - id: b\n    source: {huge}.mp4",
        "  - id: b\n    source: {{type: images, path: {huge}*}}",
        "  - id: b\n    source: rtsp://{huge}\n    queue_size: {huge}",
        "  - id: b\n    source: clip.mp4\n    ? {huge}\n    : 1",  # explicit: no 1024 limit
        "  - id: b\n    source: clip.mp4\n    queue_policy: {huge}",
    ],
    ids=["id", "file", "images", "int", "key", "choice"],
)
def test_a_huge_value_is_shown_by_its_start_in_one_short_line(video: str, entry: str) -> None:
    huge = "y" * 900_000
    with pytest.raises(ConfigError) as info:
        parse_config(f"cameras:\n  - id: a\n    source: {video}\n" + entry.format(huge=huge))
    assert info.value.problems
    for problem in info.value.problems:
        assert len(problem) < MAX_PROBLEM_CHARS + 40 and "\n" not in problem
    assert len(str(info.value)) < 2 * (MAX_PROBLEM_CHARS + 40)


@pytest.mark.parametrize("check_sources", [True, False], ids=["validate", "run"])
@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ("sinks:\n  - type: video\n    dir: out/{name}\n", "sinks[0].dir (line 6)"),
        ("sinks:\n  - type: snapshots\n    dir: out/{name}\n", "sinks[0].dir (line 6)"),
        ("sinks:\n  - type: sql\n    spool_dir: out/{name}\n", "sinks[0].spool_dir (line 6)"),
        ("sinks:\n  - type: sql\n    url: sqlite:///out/{name}/x.db\n", "sinks[0].url (line 6)"),
        ("detector:\n  weights: w/{name}/x.pt\n", "detector.weights (line 5)"),
        ("detector:\n  calibration: c/{name}/x.mp4\n", "detector.calibration (line 5)"),
    ],
    ids=["video", "snapshots", "spool", "sqlite", "weights", "calibration"],
)
def test_a_name_too_long_for_the_file_system_is_refused_at_its_yaml_path(
    video: str, entry: str, where: str, check_sources: bool
) -> None:
    name = "d" * 300  # longer than any file system's names: ENAMETOOLONG
    with pytest.raises(ConfigError) as info:
        parse_config(
            f"cameras:\n  - id: a\n    source: {video}\n" + entry.format(name=name),
            check_sources=check_sources,
        )
    (problem,) = info.value.problems
    assert problem.startswith(
        f"{where}: too long for the file system (a name in it is 300 bytes long; the file "
        "system takes at most 255): '"
    )


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("{name}.mp4", "cameras[1].source (camera b, line 5)"),
        ("{{type: images, path: 'x/{name}/*.jpg'}}", "cameras[1].source.path (camera b, line 5)"),
        ("{{type: images, path: {long_name}}}", "cameras[1].source.path (camera b, line 5)"),
    ],
    ids=["file", "images", "images-5000"],
)
def test_a_source_name_too_long_for_the_file_system_is_refused_at_its_yaml_path(
    video: str, source: str, where: str
) -> None:
    text = f"cameras:\n  - id: a\n    source: {video}\n  - id: b\n    source: {source}\n"
    text = text.format(name="d" * 300, long_name="d" * 5000)  # 5000: no stat() crash
    (problem,) = _problems(text)
    assert problem.startswith(f"{where}: too long for the file system (a name in it is ")
    with pytest.raises(ConfigError) as run:  # as a NUL character is: no name for a file
        parse_config(text, check_sources=False)
    assert run.value.problems == [problem]


def test_one_problem_is_one_line_and_many_are_listed_up_to_a_limit(video: str) -> None:
    with pytest.raises(ConfigError) as one:
        parse_config("cameras: []\n", source="cams.yaml")
    assert str(one.value).count("\n") == 0 and str(one.value).startswith("cams.yaml: cameras")
    cams = "".join(f"  - id: c{i}\n    source: {video}\n    fps: 1\n" for i in range(500))
    with pytest.raises(ConfigError) as many:
        parse_config("cameras:\n" + cams, source="cams.yaml")
    lines = str(many.value).splitlines()
    assert lines[0] == "cams.yaml: 500 problems"
    assert (
        len(lines) == 1 + MAX_PROBLEMS_SHOWN + 1
        and lines[-1] == f"  ... and {500 - MAX_PROBLEMS_SHOWN} more"
    )
    assert len(many.value.problems) == 500


@pytest.mark.parametrize("device", ["cuda:128", "cuda:99999", "cuda:9999999999", "cuda:007"])
def test_a_cuda_index_torch_cannot_hold_is_refused_by_validate(video: str, device: str) -> None:
    (problem,) = _problems(
        f"cameras:\n  - id: a\n    source: {video}\ndetector:\n  device: {device}\n"
    )
    assert problem.startswith(f"detector.device (line 5): invalid device '{device}'")
    parse_config(f"cameras:\n  - id: a\n    source: {video}\ndetector:\n  device: cuda:127\n")


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ('sinks:\n  - type: snapshots\n    dir: "out/\\0x"\n', "sinks[0].dir (line 6)"),
        ('sinks:\n  - type: video\n    dir: "out/\\0x"\n', "sinks[0].dir (line 6)"),
        ('sinks:\n  - type: sql\n    spool_dir: "sp\\0ol"\n', "sinks[0].spool_dir (line 6)"),
        ('detector:\n  weights: "w\\0.pt"\n', "detector.weights (line 5)"),
    ],
    ids=["snapshots", "video", "spool", "weights"],
)
def test_a_nul_character_in_a_path_is_refused_at_its_path_not_left_to_crash_the_run(
    video: str, entry: str, where: str
) -> None:
    assert _problems(f"cameras:\n  - id: a\n    source: {video}\n{entry}") == [
        f"{where}: {NUL_PROBLEM}"
    ]


@pytest.mark.parametrize(
    ("written", "kind"),
    [("on", "yes/no value"), ("1.0", "number"), ("12", "number"), ("2026-01-01", "date")],
)
def test_text_that_yaml_reads_as_another_type_is_told_to_be_quoted(
    video: str, written: str, kind: str
) -> None:
    (problem,) = _problems(f"cameras:\n  - id: {written}\n    source: {video}\n")
    assert problem.startswith("cameras[0].id (line 2): Input should be a valid string (got ")
    assert problem.endswith(f": YAML reads {written!r} as a {kind}; quote it")
    parse_config(f"cameras:\n  - id: '{written}'\n    source: {video}\n")


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("999.1.1.1", "host '999.1.1.1' is no IPv4 address: 4 numbers from 0 to 255"),
        ("[::1]", "host '[::1]' is no IP address and no host name"),
        ("cams_1", "host 'cams_1' is no IP address and no host name"),
    ],
    ids=["octet-past-255", "ipv6-in-brackets", "underscore"],
)
def test_an_http_or_live_host_that_no_server_could_listen_on_is_refused_at_its_yaml_line(
    video: str, host: str, why: str
) -> None:
    # Binding found it later, as "http: cannot listen on ...", without a line.
    head = f"cameras:\n  - id: a\n    source: {video}\n"
    (problem,) = _problems(f"{head}http:\n  host: '{host}'\n")
    assert problem.startswith(f"http.host (line 5): {why}")
    (problem,) = _problems(f"{head}sinks:\n  - type: live\n    host: '{host}'\n")
    assert problem.startswith(f"sinks[0].host (line 6): {why}")
