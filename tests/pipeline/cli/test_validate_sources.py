"""`validate` finds a source `run` could not read: a file that is not a video, an image
folder without an image, each at its camera's YAML path, on one line; and, decoding each
video file to its end, the damage `run` would skip or stop at."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipeline.cli import EXIT_USAGE, main
from pipeline.config import ConfigError, load_config
from pipeline.runner import Pipeline
from pipeline.sources import AVSource, SourceError
from tests.conftest import VideoFactory, audio_only_file, damaged_video, write_video


@pytest.fixture
def cams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthetic_video: VideoFactory) -> Path:
    """cams.yaml in the working folder, its first camera a real video; the test adds more."""
    monkeypatch.chdir(tmp_path)
    synthetic_video("good.mp4", frames=2, size=(32, 32))
    return tmp_path / "cams.yaml"


def validate_errors(config: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["validate", str(config)]) == EXIT_USAGE
    return capsys.readouterr().err.splitlines()


def test_validate_refuses_a_text_file_named_like_a_video_at_its_camera(
    cams: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("clip.mp4").write_text("a shopping list, not a recording\n")
    cams.write_text("cameras:\n  - id: a\n    source: good.mp4\n  - id: b\n    source: clip.mp4\n")
    errors = validate_errors(cams, capsys)
    assert len(errors) == 1
    assert errors[0].startswith(
        f"error: {cams}: cameras[1].source (camera b, line 5): not a video (cannot open it: "
    )
    assert errors[0].endswith("): 'clip.mp4'")


def test_validate_refuses_a_file_source_with_no_video_stream(
    cams: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio_only_file(Path("sound.wav"))
    cams.write_text("cameras:\n  - id: a\n    source: {type: file, path: sound.wav}\n")
    errors = validate_errors(cams, capsys)
    assert errors == [
        f"error: {cams}: cameras[0].source.path (camera a, line 3): "
        "not a video (it holds no video stream): 'sound.wav'"
    ]


@pytest.mark.parametrize("source", ["frames", "'frames/*.txt'"])
def test_validate_refuses_an_image_source_holding_no_image(
    cams: Path, capsys: pytest.CaptureFixture[str], source: str
) -> None:
    Path("frames").mkdir()
    Path("frames/notes.txt").write_text("no picture here")
    Path("frames/0001.jpg").mkdir()  # a folder named like an image is no image
    cams.write_text(
        "cameras:\n  - id: a\n    source: good.mp4\n"
        f"  - id: b\n    source: {{type: images, path: {source}}}\n"
    )
    errors = validate_errors(cams, capsys)
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {cams}: cameras[1].source.path (camera b, line 5): ")
    assert "no images (.bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp) in 'frames" in errors[0]


def test_validate_takes_a_video_and_a_folder_of_images(cams: Path) -> None:
    Path("frames").mkdir()
    cv2.imwrite("frames/0001.PNG", np.zeros((24, 32, 3), np.uint8))  # any case of suffix
    Path("frames/0002.png").write_bytes(b"\x89PNG")  # not the first: run skips it
    cams.write_text("cameras:\n  - id: a\n    source: good.mp4\n  - id: b\n    source: frames/\n")
    config = load_config(cams, probe_sources=True)
    assert [c.id for c in config.cameras] == ["a", "b"]


def test_run_leaves_a_file_that_is_not_a_video_to_its_camera(cams: Path) -> None:
    Path("clip.mp4").write_text("not a video")  # the camera fails alone when read
    cams.write_text("cameras:\n  - id: a\n    source: clip.mp4\n")
    assert load_config(cams, check_sources=False).cameras[0].id == "a"
    assert load_config(cams).cameras[0].id == "a"  # nothing decoded unless probed


def test_a_source_path_with_a_newline_is_named_on_one_line(
    cams: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLIP", "recordings/\nmonday.mp4")
    cams.write_text("cameras:\n  - id: a\n    source: '${CLIP}'\n")
    with pytest.raises(ConfigError) as info:
        load_config(cams)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(
        f"{cams}: cameras[0].source (camera a, line 3): "
        "file not found: 'recordings/\\nmonday.mp4' (relative to "
    )


DETECTOR = "detector:\n  model: person_ssdlite\n  weights: none\n  device: cpu\n  runtime: torch\n"


def test_validate_and_run_agree_on_the_damaged_packets_of_a_file(
    cams: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged_video(Path("damaged.mp4"))
    cams.write_text(f"cameras:\n  - id: lobby\n    source: damaged.mp4\n{DETECTOR}")
    assert main(["validate", str(cams)]) == 0
    out, err = capsys.readouterr()
    said = re.fullmatch(
        r"camera 'lobby': damaged\.mp4: (\d+) damaged packets between 00:00:0\d and 00:00:0\d; "
        r"playable \(run skips them: (\d+) frames decode of the 60 it declares\)\n"
        rf"{re.escape(str(cams))}: ok .*\n",
        out,
    )
    assert said is not None, out
    assert err == ""  # no progress bar off a terminal
    assert main(["run", str(cams), "--no-progress"]) == 0
    (lobby,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lobby")]
    assert lobby.split()[1] == said[2]  # the frames run processed
    assert f"ok ({said[1]} corrupt packets/images skipped)" in lobby


def test_validate_quick_decodes_only_the_first_frame(
    cams: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged_video(Path("damaged.mp4"))
    cams.write_text(f"cameras:\n  - id: lobby\n    source: damaged.mp4\n{DETECTOR}")
    assert main(["validate", str(cams), "--quick"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{cams}: ok (1 camera(s)") and out.count("\n") == 1


def test_a_file_whose_reading_stops_midway_fails_validate_as_its_camera_would_fail_run(
    cams: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    read_frames = AVSource.decoded

    def stops(self: AVSource, on_corrupt: object = None) -> Iterator[object]:
        for index, frame in enumerate(read_frames(self)):
            if index == 12:  # as a disk that fails under the file, at 1.2 s
                raise SourceError(f"reading {self.name} failed: Input/output error")
            yield frame

    monkeypatch.setattr(AVSource, "decoded", stops)
    cams.write_text(f"cameras:\n  - id: a\n    source: good.mp4\n{DETECTOR}")
    Path("good.mp4").unlink()
    write_video(Path("good.mp4"), frames=30)
    assert main(["validate", str(cams)]) == 1
    assert capsys.readouterr().err == (
        f"error: {cams}: camera 'a': good.mp4: reading stops at 00:00:01, after 12 frames: "
        "Input/output error; run fails this camera there\n"
    )


@pytest.mark.parametrize("quick", [False, True], ids=["whole", "quick"])
def test_validate_opens_each_video_file_once(
    cams: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, quick: bool
) -> None:
    import av

    damaged_video(Path("damaged.mp4"))  # its damage is found: the whole file is decoded
    opened: list[str] = []
    av_open = av.open

    def counted(file: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(file)
        return av_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", counted)
    cams.write_text(
        "cameras:\n  - id: a\n    source: damaged.mp4\n  - id: b\n    source: good.mp4\n"
        f"  - id: c\n    source: good.mp4\n{DETECTOR}"
    )
    assert main(["validate", str(cams), *(["--quick"] if quick else [])]) == 0
    out = capsys.readouterr().out
    assert sorted(opened) == sorted(["damaged.mp4", "good.mp4", *(["good.mp4"] if quick else [])])
    assert ("camera 'a': damaged.mp4: " in out) is not quick


@pytest.mark.parametrize(
    "content", [b"a shopping list, not a recording\n", b""], ids=["text", "empty"]
)
def test_validate_says_a_file_is_no_video_in_the_same_words_with_or_without_quick(
    cams: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    Path("clip.mp4").write_bytes(content)
    cams.write_text("cameras:\n  - id: a\n    source: good.mp4\n  - id: b\n    source: clip.mp4\n")
    whole = validate_errors(cams, capsys)
    assert main(["validate", str(cams), "--quick"]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == whole and len(whole) == 1


def truncated_video(path: Path) -> None:
    """The first 40 bytes of an MP4: its header cut off."""
    path.write_bytes(write_video(path.with_suffix(".whole.mp4"), 2, (32, 32)).read_bytes()[:40])


@pytest.mark.parametrize(
    "make",
    [
        lambda path: path.write_bytes(b""),
        lambda path: path.write_text("a shopping list, not a recording\n"),
        audio_only_file,
        truncated_video,
    ],
    ids=["empty", "text", "audio-only", "truncated-header"],
)
def test_validate_and_run_say_the_same_line_of_a_file_that_is_no_video(
    cams: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], object]
) -> None:
    make(Path("clip"))
    cams.write_text("cameras:\n  - id: b\n    source: {type: file, path: clip}\n")
    (said,) = validate_errors(cams, capsys)
    summary = Pipeline(load_config(cams, check_sources=False)).run()  # ends before its set-up

    where = f"error: {cams}: cameras[0].source.path (camera b, line 3): "
    assert said.startswith(where) and said.endswith(": 'clip'")
    assert summary.cameras["b"].error == f"camera b: {said.removeprefix(where)}"


def test_validate_refuses_a_file_of_frames_larger_than_a_camera_may_have_at_its_camera(
    cams: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def first_frame(path: Path, count: int) -> list[np.ndarray]:  # np.zeros: not yet in memory
        return [np.zeros((6400, 6400, 3), np.uint8)]

    monkeypatch.setattr("detector.clip_frames.sample_frames", first_frame)
    cams.write_text("cameras:\n  - id: a\n    source: good.mp4\n")
    assert main(["validate", "--quick", str(cams)]) == EXIT_USAGE
    # was: ok, and `run` failed the camera, or queued dozens of its 123 MB frames
    assert capsys.readouterr().err == (
        f"error: {cams}: cameras[0].source (camera a, line 3): frames of 6400x6400 are more "
        "than a camera may have (40,000,000 pixels, 8K and some): 123 MB each, and dozens wait "
        "in the queues at once\n"
    )
