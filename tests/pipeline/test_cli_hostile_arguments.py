"""Every command, given hostile arguments (huge and negative numbers, empty strings, paths of
non-UTF-8 bytes, missing files, folders for files, hostile configs, 127.0.0.1 ports nobody
listens on), exits 1 or 2 with one `error:` line and never a traceback. In-process through
`pipeline.cli.main`, as `python -m pipeline` runs it."""

from __future__ import annotations

import errno
import io
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import safe_yaml
from tests.conftest import VideoFactory, free_port, write_video

BIG = "9" * 30
DIGITS_5000 = "9" * 5000  # more than Python turns into an int from text
NOT_UTF8 = os.fsdecode(b"caf\xe9")  # a name of latin-1 bytes, as Linux allows
CAMERA = "cameras:\n  - id: a\n    source: clip.mp4\n"


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A folder to run in, with a valid config, a clip and a folder; the paths by name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"not a video")
    (tmp_path / "cams.yaml").write_text(CAMERA)
    (tmp_path / "folder").mkdir()
    return {
        "dead": f"127.0.0.1:{free_port()}",
        "clip": str(tmp_path / "clip.mp4"),
        "folder": str(tmp_path / "folder"),
        "missing": str(tmp_path / "missing.yaml"),
        "not_utf8": str(tmp_path / f"{NOT_UTF8}.yaml"),
    }


def config_file(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "hostile.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


CONFIGS: dict[str, str | bytes] = {
    "billion-laughs": "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "cameras: *i\n",
    "deep-nesting": "cameras: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "recursive-alias": "cameras: &a [*a]\n",
    "duplicate-key": CAMERA + "cameras: []\n",
    "not-utf8": CAMERA.encode() + b"# caf\xe9\n",
    "over-1-mib": CAMERA + "#" * (safe_yaml.MAX_BYTES + 1) + "\n",
    "binary": bytes(range(256)) * 10,
    "huge-int": CAMERA + f"    queue_size: {DIGITS_5000}\n",
    "huge-value": CAMERA + f"    queue_policy: {'x' * 500_000}\n",
    "inf-float": CAMERA + "sinks:\n  - type: sql\n    spool_max_mb: .inf\n",
    "nan-float": CAMERA + "    max_fps: .nan\n",
    "cuda-index": CAMERA + "detector:\n  device: cuda:99999\n",
    "long-path": CAMERA.replace("clip.mp4", "d" * 5000),
    "not-a-mapping": "- a\n- b\n",
    "zmq-port-over-65535": CAMERA + "sinks:\n  - {type: zmq, endpoint: 'tcp://127.0.0.1:99999'}\n",
    "zmq-port-not-a-number": CAMERA + "sinks:\n  - {type: zmq, endpoint: 'tcp://127.0.0.1:x'}\n",
    "empty": "",
}

# {placeholders} are filled from the `place` fixture; a case is (id, argv)
DEAD = ["--endpoint", "tcp://{dead}"]  # not the default port, where a pipeline may publish
QUIET = [*DEAD, "--timeout", "0.1"]
CASES: list[tuple[str, list[str]]] = [
    ("log-level", ["--log-level", "loud", "validate", "cams.yaml"]),
    ("no-command", []),
    # validate and run: the config path
    *[
        (f"{command}-{what}", [command, path])
        for command in ("validate", "run")
        for what, path in [
            ("empty", ""),
            ("missing", "{missing}"),
            ("folder", "{folder}"),
            ("not-utf8", "{not_utf8}"),
            ("device", "/dev/zero"),
            ("clip", "{clip}"),
        ]
    ],
    # query
    *[
        (f"query-{option}-{what}", ["query", f"--{option}", value])
        for option in ("limit", "track", "run")
        for what, value in [
            ("huge", BIG),
            ("negative", "-1"),
            ("zero", "0"),
            ("digits", DIGITS_5000),
        ]
    ],
    *[
        (f"query-min-score-{value}", ["query", "--min-score", value])
        for value in ("nan", "inf", "-1", "2", BIG)
    ],
    *[
        (f"query-{option}-{i}", ["query", f"--{option}", value])
        for option in ("since", "until")
        for i, value in enumerate(
            [
                "",
                "3000000 days ago",
                f"{BIG} days ago",
                "0001-01-01T00:00+01:00",
                "9999-12-31T23:59-05:00",
                "x" * 100_000,
                "-3 days",
            ]
        )
    ],
    *[
        (f"query-empty-{option}", ["query", f"--{option}", ""])
        for option in ("camera", "label", "db")
    ],
    ("query-db-nonsense", ["query", "--db", "nonsense"]),
    ("query-db-folder", ["query", "--db", "sqlite:///{folder}"]),
    ("query-db-missing", ["query", "--db", "sqlite:///{missing}"]),
    ("query-db-not-utf8", ["query", "--db", "sqlite:///{not_utf8}"]),
    ("query-db-not-a-database", ["query", "--db", "sqlite:///{clip}"]),
    ("query-db-dead-port", ["query", "--db", "postgresql+psycopg://u:p@{dead}/x"]),
    # retention
    *[
        (f"retention-older-than-{i}", ["retention", "--older-than", value])
        for i, value in enumerate(
            ["", "-1d", f"{BIG} days", "99999999999 days", "0.0000001s", "1e9d"]
        )
    ],
    (
        "retention-db-dead-port",
        ["retention", "--older-than", "1d", "--db", "postgresql+psycopg://{dead}/x"],
    ),
    ("retention-db-folder", ["retention", "--older-than", "1d", "--db", "sqlite:///{folder}"]),
    ("retention-video-dir-empty", ["retention", "--older-than", "1d", "--video-dir", ""]),
    ("retention-snapshot-dir-empty", ["retention", "--older-than", "1d", "--snapshot-dir", ""]),
    # subscribe: arguments, each run with a timeout so that a regression cannot hang
    *[
        (f"subscribe{'-'.join(args)[:20]}", ["subscribe", *args, *until])
        for args, until in [
            (["--count", "0"], QUIET),
            (["--count", "-1"], QUIET),
            (["--count", BIG], QUIET),
            (["--timeout", "-1"], DEAD),
            (["--timeout", "nan"], DEAD),
            (["--timeout", BIG], DEAD),
            (["--endpoint", ""], ["--timeout", "0.1"]),
            (["--endpoint", "nonsense"], ["--timeout", "0.1"]),
            (["--endpoint", "tcp://127.0.0.1:99999"], ["--timeout", "0.1"]),
            (["--camera", ""], QUIET),
            (["--label", ""], QUIET),
            (["--type", ""], QUIET),
            (["--server-key", "{missing}"], QUIET),
            (["--server-key", "{folder}"], QUIET),
            (["--client-key", "{clip}"], QUIET),
            (["--server-key", "{not_utf8}"], QUIET),
        ]
    ],
    # dataset export: refused before a frame is decoded or a file written
    *[
        (
            f"dataset-export-{option}-{what}",
            ["dataset", "export", "--run", "1", "--out", "{folder}/ds", f"--{option}", value],
        )
        for option, values in [
            ("run", {"huge": BIG, "negative": "-1", "zero": "0", "over-id": "99999999999"}),
            ("every", {"zero": "0", "huge": BIG, "digits": DIGITS_5000}),
            ("min-score", {"nan": "nan", "two": "2"}),
            ("camera", {"empty": ""}),
            ("label", {"empty": ""}),
            ("source", {"empty": ""}),
            ("out", {"empty": ""}),
            (
                "db",
                {
                    "empty": "",
                    "nonsense": "nonsense",
                    "folder": "sqlite:///{folder}",
                    "missing": "sqlite:///{missing}",
                    "not-a-database": "sqlite:///{clip}",
                    "dead-port": "postgresql+psycopg://u:p@{dead}/x",
                },
            ),
        ]
        for what, value in values.items()
    ],
    ("dataset-no-action", ["dataset"]),
    ("dataset-export-no-run", ["dataset", "export", "--out", "{folder}/ds"]),
    # keygen
    *[
        (
            f"bench-video-crf-{value[:8]}",
            ["bench", "--clip", "{clip}", "--skip-model-only", "--video-crf", value],
        )
        for value in ("-1", BIG)
    ],  # refused by the video output's config, before the clip is read
    ("keygen-empty", ["keygen", ""]),
    ("keygen-name-empty", ["keygen", "{folder}", "--name", ""]),
    ("keygen-name-path", ["keygen", "{folder}", "--name", "../../x"]),
    ("keygen-file", ["keygen", "{clip}"]),
    ("keygen-under-a-file", ["keygen", "{clip}/keys"]),
    ("keygen-proc", ["keygen", "/proc/keys-here"]),
    # bench: arguments are refused before anything is measured
    *[
        (f"bench-{option}-{value[:8]}", ["bench", "--clip", "{clip}", f"--{option}", value])
        for option, values in [
            ("copies", ["0", "-1", BIG]),
            ("batch-size", ["0", BIG]),
            ("batch-sizes", ["-5", BIG]),
            ("repeat", ["0", BIG]),
            ("min-time", ["nan", "-1", BIG]),
            ("threads", ["-1", BIG]),
            ("scale", ["0x0", f"{BIG}x2", "99999998x99999998", "16384x16384"]),
            ("device", ["", "cuda:99999"]),
            ("model", [""]),
            ("clip", ["", "{missing}", "{folder}"]),
        ]
        for value in values
    ],
    # export: refused before any model is built, or by reading what is not a checkpoint
    *[
        (f"export-{what}", ["export", *args])
        for what, args in [
            ("model-empty", ["--model", "", "--out", "x.onnx"]),
            ("out-empty", ["--model", "person_ssdlite", "--out", ""]),
            ("format", ["--model", "person_ssdlite", "--out", "x.onnx", "--format", "tflite"]),
            ("size-zero", ["--model", "person_ssdlite", "--out", "x.onnx", "--size", "0"]),
            ("size-huge", ["--model", "person_ssdlite", "--out", "x.onnx", "--size", BIG]),
            ("size-untaken", ["--model", "ssd300_vgg16", "--out", "x.onnx", "--size", "512"]),
            ("model-missing", ["--model", "{missing}.pt", "--out", "x.onnx"]),
            ("model-folder", ["--model", "{folder}", "--out", "x.onnx"]),
            ("model-clip", ["--model", "{clip}", "--out", "x.onnx"]),
            ("model-unknown", ["--model", "yolo_v99", "--out", "x.onnx"]),
        ]
    ],
    # zones: refused before a frame is decoded, or by a source that is not a video
    *[
        (f"zones-{what}", ["zones", *args])
        for what, args in [
            ("config-missing", ["{missing}", "--camera", "a"]),
            ("camera-empty", ["cams.yaml", "--camera", ""]),
            ("camera-unknown", ["cams.yaml", "--camera", "nope"]),
            ("at-frame-negative", ["cams.yaml", "--camera", "a", "--at-frame", "-1"]),
            ("at-frame-huge", ["cams.yaml", "--camera", "a", "--at-frame", BIG]),
            ("out-empty", ["cams.yaml", "--camera", "a", "--out", ""]),
            ("not-a-video", ["cams.yaml", "--camera", "a", "--out", "{folder}/x.png"]),
        ]
    ],
    # train, evaluate, dataset stats: refused before a model is built or an image read
    *[
        (f"train-{what}", ["train", "--out", "{folder}/run", *args])
        for what, args in [
            ("data-empty", ["--data", ""]),
            ("data-missing", ["--data", "{missing}"]),
            ("data-folder", ["--data", "{folder}"]),
            ("data-clip", ["--data", "{clip}"]),
            ("epochs-zero", ["--data", "{missing}", "--epochs", "0"]),
            ("epochs-huge", ["--data", "{missing}", "--epochs", BIG]),
            ("batch-zero", ["--data", "{missing}", "--batch-size", "0"]),
            ("lr-negative", ["--data", "{missing}", "--lr", "-1"]),
            ("lr-nan", ["--data", "{missing}", "--lr", "nan"]),
            ("size-untaken", ["--data", "{missing}", "--size", "123"]),
            ("val-fraction", ["--data", "{missing}", "--val-fraction", "1.5"]),
            ("device", ["--data", "{missing}", "--device", "tpu"]),
            ("workers-huge", ["--data", "{missing}", "--workers", BIG]),
            ("int8-unknown", ["--data", "{missing}", "--int8", "maybe"]),
            ("resume-nothing", ["--data", "{missing}", "--resume"]),
        ]
    ],
    *[
        (f"evaluate-{what}", ["evaluate", *args])
        for what, args in [
            ("model-empty", ["--model", "", "--data", "{missing}"]),
            ("data-missing", ["--model", "person_ssdlite", "--data", "{missing}"]),
            ("data-clip", ["--model", "person_ssdlite", "--data", "{clip}"]),
            ("split", ["--model", "person_ssdlite", "--data", "{missing}", "--split", "x"]),
        ]
    ],
    *[
        (f"dataset-stats-{what}", ["dataset", "stats", data])
        for what, data in [
            ("empty", ""),
            ("missing", "{missing}"),
            ("folder", "{folder}"),
            ("clip", "{clip}"),
        ]
    ],
]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[object, str]:
    try:
        code: object = main(argv)
    except SystemExit as exit_:  # argparse refusing an argument
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out + err


def assert_one_line_error(code: object, output: str) -> None:
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "error:" in line]
    assert code in (1, 2) and len(errors) == 1, output[-2000:]
    assert len(errors[0]) < 500, errors[0][:600]


@pytest.mark.parametrize(("argv"), [argv for _, argv in CASES], ids=[name for name, _ in CASES])
def test_hostile_arguments_end_in_one_error_line(
    argv: list[str], place: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_main([arg.format(**place) for arg in argv], capsys)
    assert_one_line_error(code, output)


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_hostile_configs_end_in_one_error_line(
    name: str, command: str, place: dict[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code, output = run_main([command, config_file(tmp_path, CONFIGS[name])], capsys)
    assert code == 2
    assert_one_line_error(code, output)


def fifo(tmp_path: Path) -> str:
    os.mkfifo(tmp_path / "pipe.yaml")  # reading it would wait forever for a writer
    return str(tmp_path / "pipe.yaml")


def dead_sql(tmp_path: Path, place: dict[str, str]) -> str:
    # a camera that opens: with none left, the run would end before it opens its sinks
    write_video(tmp_path / "clip.mp4", frames=2, size=(32, 32))
    return config_file(
        tmp_path,
        CAMERA + "detector: {model: person_ssdlite, weights: none, device: cpu, runtime: torch}\n"
        f"sinks:\n  - type: sql\n    url: postgresql+psycopg://u:p@{place['dead']}/x\n"
        f"    close_timeout_s: 0\n    spool_dir: {tmp_path / 'spool'}\n",
    )


@pytest.mark.parametrize(
    ("command", "make"),
    [("validate", fifo), ("run", lambda tmp, place: dead_sql(tmp, place))],
    ids=["validate-fifo", "run-sql-on-a-dead-port"],
)
def test_a_config_that_cannot_be_used_ends_in_one_error_line(
    command: str, make: Callable[..., str], place: dict[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    args = [command, "--no-progress"] if command == "run" else [command]
    path = make(tmp_path, place) if command == "run" else make(tmp_path)
    code, output = run_main([*args, path], capsys)
    assert_one_line_error(code, output)


def test_odd_but_valid_paths_work_and_print_without_a_traceback(
    place: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    synthetic_video: VideoFactory,
) -> None:
    synthetic_video("clip.mp4", frames=1, size=(16, 16))  # `validate` decodes its frame
    config = Path(place["not_utf8"])
    config.write_text(CAMERA)
    code, output = run_main(["validate", str(config)], capsys)
    assert code == 0 and "ok (1 camera(s)" in output
    keys = tmp_path / NOT_UTF8
    code, output = run_main(["keygen", str(keys)], capsys)
    assert code == 0 and (keys / "server.key").is_file() and "Traceback" not in output


def test_subscribe_to_a_port_nobody_listens_on_ends_at_its_timeout_with_one_error_line(
    place: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # ZeroMQ connects in the background; its socket monitor tells "nobody there" from "quiet"
    code, output = run_main(["subscribe", "--endpoint", f"tcp://{place['dead']}",
                             "--timeout", "0.1"], capsys)  # fmt: skip
    assert code == 1 and output.startswith("error: no publisher at ") and output.count("\n") == 1


class Unwritable(io.StringIO):
    """A stdout whose reader left (`| head`) or whose disk is full."""

    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), 128 + signal.SIGPIPE, ""),
        (OSError(errno.ENOSPC, "No space left on device"), 1, "error: No space left on device\n"),
        (OSError(errno.EIO, "Input/output error"), 1, "error: Input/output error\n"),
    ],
    ids=["reader-left", "disk-full", "io-error"],
)
def test_output_that_cannot_be_written_ends_the_command_without_a_traceback(
    place: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    error: OSError, code: int, message: str, synthetic_video: VideoFactory,
) -> None:  # fmt: skip
    synthetic_video("clip.mp4", frames=1, size=(16, 16))  # `validate` decodes its frame
    monkeypatch.setattr("sys.stdout", Unwritable(error))
    assert main(["validate", "cams.yaml"]) == code
    assert capsys.readouterr().err == message


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["export", "--model", "person_ssdlite", "--out", "{clip}/x.onnx"], "{clip} is"),
        (["export", "--model", "person_ssdlite", "--out", "{folder}"], "{folder} is a folder"),
        (["zones", "cams.yaml", "--camera", "a", "--out", "{clip}/x.png"], "{clip} is"),
        (["zones", "cams.yaml", "--camera", "a", "--out", "{folder}"], "{folder} is a folder"),
        (["train", "--data", "{folder}", "--out", "{clip}/run"], "{clip} is"),
        (["train", "--data", "{folder}", "--out", "{clip}"], "{clip} is"),
        (["dataset", "export", "--run", "1", "--out", "{clip}/ds"], "{clip} is"),
    ],
    ids=["export-under-a-file", "export-to-a-folder", "zones-under-a-file", "zones-to-a-folder",
         "train-under-a-file", "train-to-a-file", "dataset-export-under-a-file"],
)  # fmt: skip
def test_an_output_path_that_cannot_be_written_is_refused_before_any_work_naming_it(
    argv: list[str], why: str, place: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_main([arg.format(**place) for arg in argv], capsys)
    assert_one_line_error(code, output)  # was "File exists: ..." after building the model
    assert code == 2 and output.startswith("error: --out: ") and why.format(**place) in output


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["bench", "--clip", "{folder}"], "error: clip is a folder, not a file: {folder}"),
        (
            ["export", "--model", "person_ssdlite", "--weights", "{folder}", "--out", "x.onnx"],
            "error: weights file is a folder, not a file: {folder}",
        ),
        (
            ["export", "--model", "ssd300_vgg16", "--weights", "{pipe}", "--out", "x.onnx"],
            "error: weights file is a device or a pipe, not a file: {pipe}",
        ),
        (
            ["subscribe", "--server-key", "{pipe}", *QUIET],
            "error: key file is a device or a pipe, not a file: {pipe}",
        ),
    ],
    ids=["clip-folder", "weights-folder", "weights-pipe", "server-key-pipe"],
)
def test_a_folder_or_a_pipe_given_for_a_file_to_read_is_named_so_not_said_missing(
    argv: list[str], said: str, place: dict[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    os.mkfifo(tmp_path / "pipe")
    place = {**place, "pipe": str(tmp_path / "pipe")}
    code, output = run_main([arg.format(**place) for arg in argv], capsys)
    assert_one_line_error(code, output)
    assert output.startswith(said.format(**place))  # was: "... not found: {folder}"
