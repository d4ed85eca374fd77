"""The live view lists the recent ended tracks and serves their snapshots from the snapshot
folder at /snapshots/<camera>/<file>.jpg: with the same auth as every page, and never a file
outside that folder."""

from __future__ import annotations

import http.client
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    Snapshot,
    SnapshotLoss,
    StreamEnd,
    TrackEvent,
)
from sinks.live_view.tracks import RecentTracks, snapshot_file
from sinks.snapshot_files import frame_name, snapshot_name
from tests.sinks.live_view.conftest import ServedView, get
from tests.sinks.snapshots.builders import T0, summary

TOKEN = "0123456789abcdef-token"
JPEG = b"\xff\xd8 a snapshot \xff\xd9"


def ended(folder: Path, track_id: int, *, whole: bool = False) -> TrackEvent:
    name = snapshot_name("lobby", track_id, T0 + track_id)
    crop = np.zeros((4, 4, 3), np.uint8)
    snap = Snapshot(
        3, (1.0, 2.0, 3.0, 4.0), crop, str(folder), name,
        crop if whole else None, frame_name(name) if whole else None,
    )  # fmt: skip
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(JPEG)
    return TrackEvent("ended", summary("lobby", track_id), snap)


def result(events: tuple[TrackEvent, ...]) -> FrameResult:
    frame = Frame("lobby", 9, 0.36, T0 + 3, np.zeros((24, 32, 3), np.uint8))
    return FrameResult(frame, Detections.empty(), events)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "snapshots"
    path.mkdir()
    return path


@pytest.mark.parametrize("under", ["", "/live"], ids=["own server", "beside the API"])
def test_recent_tracks_are_listed_newest_first_with_their_snapshot_urls(
    folder: Path, under: str
) -> None:
    sink = ServedView(snapshot_dir=folder, under=under)
    try:
        sink.write(result((ended(folder, 1),)))
        sink.end(StreamEnd("lobby", 10, (ended(folder, 2, whole=True),)))
        status, headers, body = get(sink, "/api/tracks")
        tracks = json.loads(body)["tracks"]
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert [(t["camera"], t["track_id"], t["label"]) for t in tracks] == [
            ("lobby", 2, "background"),
            ("lobby", 1, "background"),
        ]
        newest = tracks[0]
        # the URLs are where the server serves them: under the view's path
        assert newest["snapshot_url"] == f"{under}/snapshots/" + snapshot_name("lobby", 2, T0 + 2)
        assert newest["frame_url"].startswith(f"{under}/snapshots/")
        assert newest["frame_url"].endswith("_2-frame.jpg")
        assert tracks[1]["frame_url"] is None
        status, headers, body = get(sink, newest["snapshot_url"].removeprefix(under))
        assert (status, headers["Content-Type"], body) == (200, "image/jpeg", JPEG)
        page = get(sink, "/tracks")
        assert page[0] == 200 and b"api/tracks" in page[2]
    finally:
        sink.close()


def test_without_a_snapshot_folder_tracks_are_listed_without_urls(folder: Path) -> None:
    sink = ServedView()
    try:
        sink.write(result((ended(folder, 1),)))
        (track,) = json.loads(get(sink, "/api/tracks")[2])["tracks"]
        assert track["snapshot_url"] is None
        assert get(sink, "/snapshots/" + snapshot_name("lobby", 1, T0 + 1))[0] == 404
    finally:
        sink.close()


def test_a_track_whose_snapshot_was_lost_is_listed_without_urls(folder: Path) -> None:
    event = ended(folder, 1, whole=True)
    assert event.snapshot is not None
    lost = SnapshotLoss("disk full: the file system at /mnt (0.0 MB free of 1.0 MB)", True)
    event = replace(event, snapshot=replace(event.snapshot, lost=lost))
    tracks = RecentTracks(LabelMap(("background", "person")), snapshots=True)
    tracks.add((ended(folder, 2), event))
    lost_row, kept_row = tracks.rows()
    assert (lost_row["track_id"], lost_row["snapshot_url"], lost_row["frame_url"]) == (
        1,
        None,
        None,
    )
    assert kept_row["snapshot_url"] is not None


def raw_get(sink: ServedView, path: str) -> int:
    """The status of GET `path` sent as is (http.client would not normalise it either)."""
    conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/snapshots/../secret.jpg",
        "/snapshots/lobby/../../secret.jpg",
        "/snapshots/%2e%2e/secret.jpg",
        "/snapshots/lobby%2f..%2f..%2fsecret.jpg",
        "/snapshots//etc/passwd",
        "/snapshots/lobby/20270115-080001-000_1.jpg/..",
        "/snapshots/lobby/secret.jpg",
        "/snapshots/lobby/20270115-080001-000_1.png",
    ],
)
def test_paths_out_of_the_snapshot_folder_are_refused(folder: Path, path: str) -> None:
    (folder.parent / "secret.jpg").write_bytes(b"secret")
    (folder / "lobby").mkdir()
    (folder / "lobby" / "secret.jpg").write_bytes(b"secret")
    sink = ServedView(snapshot_dir=folder)
    try:
        assert raw_get(sink, path) == 404
    finally:
        sink.close()


@pytest.mark.parametrize("under", ["", "/live"], ids=["own server", "beside the API"])
def test_a_snapshot_name_with_a_trailing_newline_is_404_not_that_snapshot(
    folder: Path, under: str
) -> None:
    """Starlette's routes end in `$`, which matches before a trailing newline too: the
    name `<camera>/<file>.jpg\\n` was served the file `<camera>/<file>.jpg`."""
    sink = ServedView(snapshot_dir=folder, under=under)
    try:
        sink.write(result((ended(folder, 1),)))
        url = f"{under}/snapshots/" + snapshot_name("lobby", 1, T0 + 1)
        assert raw_get(sink, url) == 200
        for tail in ("%0A", "%0a", "%0D%0A", "%0A%0A"):
            assert raw_get(sink, url + tail) == 404, tail
    finally:
        sink.close()


def test_a_link_leading_out_of_the_folder_is_refused(folder: Path) -> None:
    outside = folder.parent / "secret.jpg"
    outside.write_bytes(b"secret")
    name = snapshot_name("lobby", 1, T0)
    (folder / "lobby").mkdir()
    os.symlink(outside, folder / name)
    assert snapshot_file(folder, name) is None
    (folder / "lobby" / "real.jpg").write_bytes(JPEG)
    real = snapshot_name("lobby", 2, T0)
    (folder / real).write_bytes(JPEG)
    assert snapshot_file(folder, real) == (folder / real).resolve()


def test_snapshots_and_tracks_need_the_token_like_every_page(folder: Path) -> None:
    sink = ServedView(snapshot_dir=folder, auth={"token": TOKEN})
    try:
        sink.write(result((ended(folder, 1),)))
        url = "/snapshots/" + snapshot_name("lobby", 1, T0 + 1)
        for path in (url, "/api/tracks", "/tracks"):
            assert get(sink, path)[0] == 401
            assert get(sink, f"{path}?token={TOKEN}")[0] == 200
    finally:
        sink.close()
