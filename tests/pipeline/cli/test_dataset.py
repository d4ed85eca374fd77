"""`dataset export` on the command line: after a real `run` (the bundled model with random
weights, keeping its best boxes whatever they score), from the folder it ran in; its exit
codes, one-line errors, help, and a full disk."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from pipeline.cli import build_parser, main
from tests.conftest import write_video
from tests.sinks.small_disk import small_disk

CONFIG = (
    "cameras:\n  - id: lobby\n    source: clip.mp4\n    detect_every: 2\n"
    "detector:\n  model: person_ssdlite\n  weights: none\n  device: cpu\n  runtime: torch\n"
    "  batch_size: 4\n  score_threshold: 0.0\n  max_detections: 2\n"
    "sinks:\n  - type: sql\n    url: sqlite:///det.db\n"
)
"""Relative paths, as users write them: they are relative to the folder `run` ran in."""
FRAMES = 12


@pytest.fixture(scope="module")
def ran_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder where `python -m pipeline run cams.yaml` ran once (run 1)."""
    folder = tmp_path_factory.mktemp("run")
    write_video(folder / "clip.mp4", frames=FRAMES)
    (folder / "cams.yaml").write_text(CONFIG)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert main(["run", "cams.yaml", "--no-progress"]) == 0
    yield folder


@pytest.fixture
def here(ran_in: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ran_in)
    return ran_in


def export(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["dataset", "export", "--db", "sqlite:///det.db", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_real_run_exports_from_the_folder_it_ran_in(
    here: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    code, printed, err = export(capsys, "--run", "1", "--out", str(out), "--every", "2")
    with sqlite3.connect(here / "det.db") as conn:
        rows = conn.execute(
            "SELECT frame, x1, y1, x2, y2, score FROM detections ORDER BY frame, obj"
        ).fetchall()
    boxed = sorted({r[0] for r in rows})
    assert boxed == list(range(0, FRAMES, 2))  # detect_every: 2, a box a frame at least
    chosen = boxed[::2]
    kept = [r for r in rows if r[0] in chosen]
    assert code == 0 and err == ""
    assert printed == (
        f"wrote {len(chosen)} images of camera(s) lobby with {len(kept)} boxes of person: "
        f"{out / 'annotations.json'}\n"
    )

    coco = COCO(str(out / "annotations.json"))
    images = coco.loadImgs(sorted(coco.getImgIds()))
    assert [i["frame"] for i in images] == chosen
    with av.open(str(here / "clip.mp4")) as clip:
        frames = [f.to_ndarray(format="rgb24") for f in clip.decode(video=0)]
    for image in images:
        bgr = cv2.imread(str(out / image["file_name"]))
        assert bgr is not None
        picture = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.int16)
        assert np.abs(picture - frames[image["frame"]]).mean() < 1.0
    boxes = [
        (images[a["image_id"] - 1]["frame"], *a["bbox"], a["score"])
        for a in coco.loadAnns(sorted(coco.getAnnIds()))
    ]
    assert boxes == [(f, x1, y1, x2 - x1, y2 - y1, s) for f, x1, y1, x2, y2, s in kept]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "2"], "error: run 2 is not in the database (runs: 1)"),
        (
            ["--run", "1", "--camera", "gate"],
            "error: run 1 stored no detections of camera 'gate' (its cameras: lobby)",
        ),
        (
            ["--run", "1", "--label", "car"],
            "error: run 1 stored no detections labelled 'car' (its labels: person)",
        ),
        (
            ["--run", "1", "--source", "rtsp://u:secret@127.0.0.1:9/s"],
            "error: camera lobby reads a live source (rtsp://u:***@127.0.0.1:9/s): its frames "
            "were not kept, so they cannot be exported",
        ),
    ],
    ids=["run", "camera", "label", "live-source"],
)
def test_a_request_naming_nothing_to_export_exits_2_with_one_line(
    here: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, printed, err = export(capsys, *args, "--out", str(tmp_path / "ds"))
    assert (code, printed, err) == (2, "", message + "\n")


def test_an_occupied_folder_exits_2_and_keeps_its_files(
    here: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = export(capsys, "--run", "1", "--out", str(tmp_path))
    assert code == 2 and err.startswith(f"error: --out {tmp_path} holds files an export did not")
    assert (tmp_path / "notes.txt").read_text() == "mine" and len(list(tmp_path.iterdir())) == 1


def test_a_missing_database_or_video_exits_1_with_one_line(
    here: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = export(capsys, "--run", "1", "--out", "ds", "--db", "sqlite:///none.db")
    assert code == 1 and err.startswith("error: cannot query sqlite:///none.db: database file")
    assert err.count("\n") == 1
    code, _, err = export(
        capsys, "--run", "1", "--out", str(tmp_path / "ds"), "--source", "gone.mp4"
    )
    assert (code, err) == (1, "error: --source gone.mp4 not found\n")


def test_a_full_disk_ends_in_one_line_and_leaves_no_annotations(
    here: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        disk.fill(leave=6000)  # room for an image or two (about 3 KB each)
        out = disk.path / "ds"
        code, _, err = export(capsys, "--run", "1", "--out", str(out))
        assert code == 1 and err.count("\n") == 1
        assert err.startswith(f"error: cannot write {out}/images/lobby_")
        assert f": disk full: the file system at {disk.path} (" in err
        assert not (out / "annotations.json").exists()
        disk.free()
        assert export(capsys, "--run", "1", "--out", str(out))[0] == 0


def test_ctrl_c_during_an_export_says_it_is_unfinished_and_how_to_finish_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr("pipeline.dataset_export.export_dataset", interrupted)
    out = tmp_path / "ds"
    code, printed, err = export(capsys, "--run", "1", "--out", str(out), "--no-progress")
    assert (code, printed) == (130, "")
    assert err == (
        f"\ninterrupted: the export into {out} is not finished; run the same command again "
        "to write it whole\n"
    )


def test_sigterm_during_an_export_keeps_the_images_written_and_says_how_to_finish(
    here: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def terminated_midway(bar: object, camera: str, decoded: int, total: int) -> None:
        if decoded == FRAMES // 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a process manager does

    monkeypatch.setattr("pipeline.cli.dataset._ProgressBar.update", terminated_midway)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "ds"
    code, printed, err = export(capsys, "--run", "1", "--out", str(out))
    assert (code, printed) == (143, "")
    assert err == (
        f"\ninterrupted: the export into {out} is not finished; run the same command again "
        "to write it whole\n"
    )
    assert list((out / "images").iterdir()) and not (out / "annotations.json").exists()
    assert signal.getsignal(signal.SIGTERM) is before  # put back as it was


def test_log_level_works_after_dataset_export() -> None:
    args = ["dataset", "export", "--run", "1", "--out", "ds"]
    parse = build_parser().parse_args
    assert parse(args).log_level == "warning"
    assert parse([*args, "--log-level", "debug"]).log_level == "debug"
    assert parse(["dataset", "--log-level", "info", *args[1:]]).log_level == "info"


def test_every_dataset_action_and_option_has_help() -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    dataset = commands.choices["dataset"]
    (actions,) = [a for a in dataset._actions if isinstance(a, argparse._SubParsersAction)]
    assert "export" in actions.choices
    missing = [name for name in actions.choices if not any(
        c.dest == name and c.help for c in actions._choices_actions)]  # fmt: skip
    missing += [
        f"{name} {a.dest}"
        for name, action in actions.choices.items()
        for a in action._actions
        if not a.help
    ]
    assert missing == []


def test_stats_says_how_many_images_lie_outside_the_dataset_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "data" / "images" / "a.png")
    Image.new("RGB", (40, 30)).save(tmp_path / "shared" / "b.png")
    doc = {
        "images": [
            {"id": 1, "file_name": "images/a.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "../shared/b.png", "width": 40, "height": 30},
        ],
        "annotations": [],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (tmp_path / "data" / "train.json").write_text(json.dumps(doc))
    data = str(tmp_path / "data" / "train.json")
    assert main(["dataset", "stats", data]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    folder = (tmp_path / "data").resolve()
    assert first == f"train: 2 images (2 without boxes), 0 boxes; 1 of them outside {folder}"
    assert main(["dataset", "stats", data, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["folder"] == str(folder) and printed["splits"][0]["outside"] == 1


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("coco/x.json", "dataset coco: x.json: expected a JSON object at the top, got a list"),
        ("coco", "dataset coco: train.json: expected a JSON object at the top, got a list"),
        ("yolo/data.yaml", "dataset yolo: data.yaml: expected a mapping of keys, got a list"),
    ],
    ids=["coco-file", "coco-folder", "yolo"],
)
def test_a_dataset_given_by_a_relative_path_is_named_once_as_given_not_twice_in_two_forms(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    for path in ("coco/x.json", "coco/train.json", "yolo/data.yaml"):
        Path(path).parent.mkdir(exist_ok=True)
        Path(path).write_text("[1]")
    assert main(["dataset", "stats", given]) == 2
    assert capsys.readouterr() == ("", f"error: {message}\n")
