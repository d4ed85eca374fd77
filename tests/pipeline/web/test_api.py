"""The API over a stored database: its answers checked against SQL run on the same file."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline.cli import main
from tests.pipeline.web.conftest import sqlite_path


def sql(url: str, query: str, *params: object) -> list[tuple]:
    with sqlite3.connect(sqlite_path(url)) as conn:
        return conn.execute(query, params).fetchall()


def test_runs_are_listed_newest_first_with_their_counts(client: TestClient, stored: str) -> None:
    body = client.get("/api/runs").json()
    expected = sql(
        stored,
        "SELECT r.id, r.status, (SELECT count(*) FROM detections d WHERE d.run_id = r.id), "
        "(SELECT count(*) FROM tracks t WHERE t.run_id = r.id) FROM runs r ORDER BY r.id DESC",
    )
    assert body["total"] == len(expected) == 2
    got = [(r["id"], r["status"], r["detections"], r["tracks"]) for r in body["rows"]]
    assert got == [tuple(row) for row in expected]
    assert all(r["detections"] > 0 and r["status"] == "finished" for r in body["rows"])


def test_detections_are_filtered_as_query_filters_them(client: TestClient, stored: str) -> None:
    run = sql(stored, "SELECT max(id) FROM runs")[0][0]
    body = client.get("/api/detections", params={"camera": "door", "run": run, "limit": 5}).json()
    expected = sql(
        stored,
        "SELECT id, frame, label, score FROM detections WHERE camera = ? AND run_id = ? "
        "ORDER BY time DESC, id DESC",
        "door",
        run,
    )
    assert body["total"] == len(expected) > 5
    got = [(d["id"], d["frame"], d["label"], d["score"]) for d in body["rows"]]
    assert got == [tuple(row) for row in expected[:5]]
    assert {d["camera"] for d in body["rows"]} == {"door"}


def test_tracks_and_their_snapshots_are_served_from_their_rows(
    client: TestClient, stored: str
) -> None:
    body = client.get("/api/tracks", params={"camera": "lobby"}).json()
    expected = sql(
        stored,
        "SELECT run_id, track_id, snapshot_path FROM tracks WHERE camera = 'lobby' "
        "ORDER BY last_time DESC, id DESC",
    )
    assert [(t["run_id"], t["track_id"], t["snapshot_path"]) for t in body["rows"]] == [
        tuple(row) for row in expected
    ]
    run, track, path = expected[0]
    picture = client.get(f"/api/tracks/{run}/lobby/{track}/snapshot")
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/jpeg"
    assert picture.content == Path(path).read_bytes()
    assert client.get(f"/api/tracks/{run}/lobby/{track + 1000}/snapshot").status_code == 404


def test_a_path_with_a_trailing_newline_is_404_not_the_path_without(
    client: TestClient, stored: str
) -> None:
    """Starlette's routes end in `$`, which matches before a trailing newline too: the
    snapshot's path with `%0A` after it was sent the picture, `/healthz%0A` the health."""
    run, track = sql(stored, "SELECT run_id, track_id FROM tracks WHERE camera = 'lobby'")[0]
    for path in (f"/api/tracks/{run}/lobby/{track}/snapshot", "/healthz", "/api/runs", "/docs"):
        assert client.get(path).status_code == 200
        response = client.get(path + "%0A")
        assert response.status_code == 404, path
        assert response.json() == client.get("/no-such-path").json()


def test_counts_per_label_and_camera_match_sql(client: TestClient, stored: str) -> None:
    for by, column in (("label", "label"), ("camera", "camera"), ("run", "run_id")):
        body = client.get("/api/counts", params={"by": by}).json()
        expected = sql(
            stored,
            f"SELECT {column}, count(*), count(DISTINCT run_id || '/' || camera || '/' || track_id) "
            f"FROM detections GROUP BY {column}",
        )
        assert sorted((c["key"], c["detections"], c["tracks"]) for c in body) == sorted(
            (str(k), n, t) for k, n, t in expected
        )


def test_bad_filters_are_answered_422_naming_the_parameter(client: TestClient) -> None:
    response = client.get("/api/detections", params={"min_score": 2})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "min_score"]
    assert client.get("/api/counts", params={"by": "colour"}).status_code == 422


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/api/detections?camera=a%00b", ["query", "camera"]),
        ("/api/tracks?label=%00", ["query", "label"]),
        ("/api/counts/zones?camera=%00", ["query", "camera"]),
        ("/api/tracks/1/lobby%00/1/snapshot", ["path", "camera"]),
    ],
)
def test_a_nul_in_a_camera_or_label_is_answered_422_saying_so_not_503(
    client: TestClient, path: str, where: list[str]
) -> None:
    """PostgreSQL refuses a query with a NUL in its text: that was a 503 saying the
    database cannot be read, while it could; then a 422 in pydantic's words of a regular
    expression ("String should match pattern '^[^\\x00]*$'")."""
    response = client.get(path)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == where
    assert error["msg"] == f"{where[1]} must not contain a NUL character"


def test_healthz_of_serve_answers_503_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    from pipeline.web.app import create_app

    missing = f"sqlite:///{tmp_path / 'none.db'}"
    with TestClient(create_app(db=missing)) as client:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["ok"] is False
        assert "none.db" in response.json()["problems"][0]
        assert client.get("/api/runs").status_code == 503
    assert not (tmp_path / "none.db").exists()  # read, never created


def test_the_page_lists_runs_tracks_and_counts_with_snapshots(
    client: TestClient, stored: str
) -> None:
    page = client.get("/").text
    runs = sql(stored, "SELECT id FROM runs")
    tracks = sql(stored, "SELECT run_id, camera, track_id FROM tracks ORDER BY last_time DESC")
    assert f"Runs ({len(runs)})" in page
    run, camera, track = tracks[0]
    assert f"/api/tracks/{run}/{camera}/{track}/snapshot" in page
    assert "person" in page


def test_status_is_404_without_a_running_pipeline(client: TestClient) -> None:
    assert client.get("/api/status").status_code == 404
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("path", ["/api/runs", "/healthz", "/", "/openapi.json"])
def test_a_token_is_required_of_every_request_when_configured(stored: str, path: str) -> None:
    from pipeline.web.app import create_app
    from sinks.live_view.access import Access, Credentials

    token = "s3cret-token-0123456789"
    app = create_app(db=stored, access=Access("127.0.0.1", (), Credentials(token=token)))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        refused = client.get(path)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        allowed = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200
        assert client.get(path, params={"token": token}).status_code == 200
        rebound = client.get(
            path, headers={"Host": "evil.example", "Authorization": f"Bearer {token}"}
        )
        assert rebound.status_code == 403


def test_a_snapshot_path_that_is_no_jpeg_is_not_served(stored: str, tmp_path: Path) -> None:
    import shutil

    from pipeline.web.app import create_app

    copy = tmp_path / "copy.db"
    shutil.copy(sqlite_path(stored), copy)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the API")
    with sqlite3.connect(copy) as conn:
        run, camera, track = conn.execute("SELECT run_id, camera, track_id FROM tracks").fetchone()
        conn.execute(
            "UPDATE tracks SET snapshot_path = ? WHERE run_id = ? AND camera = ? AND track_id = ?",
            (str(secret), run, camera, track),
        )
    with TestClient(create_app(db=f"sqlite:///{copy}")) as client:
        response = client.get(f"/api/tracks/{run}/{camera}/{track}/snapshot")
    assert response.status_code == 404
    assert "not for the API" not in response.text


def test_line_counts_match_sql_and_query_per_line_and_direction(
    client: TestClient, stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = client.get("/api/counts/lines").json()
    expected = sql(
        stored,
        "SELECT camera, line, direction, count(*), "
        "count(DISTINCT run_id || '/' || track_id) FROM line_crossings "
        "GROUP BY camera, line, direction ORDER BY camera, line, direction",
    )
    got = [(r["camera"], r["line"], r["direction"], r["crossings"], r["tracks"]) for r in body]
    assert got == [tuple(row) for row in expected]
    person = client.get("/api/counts/lines", params={"label": "PERSON", "run": 1}).json()
    assert person == [
        {"camera": "door", "line": "gate", "direction": "in", "crossings": 2, "tracks": 2},
        {"camera": "door", "line": "gate", "direction": "out", "crossings": 1, "tracks": 1},
    ]
    params = {"camera": "door", "every": "15m", "since": "2026-11-21T10:02:00Z"}
    assert same_times(client.get("/api/counts/lines", params=params).json()) == query_json(
        capsys, stored, "line", "--camera", "door", "--every", "15m",
        "--since", "2026-11-21T10:02:00Z",
    )  # fmt: skip


def test_zone_counts_match_sql_and_query_with_peak_occupancy_per_period(
    client: TestClient, stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = client.get("/api/counts/zones", params={"camera": "lobby"}).json()
    expected = sql(
        stored,
        "SELECT zone, count(*), count(DISTINCT run_id || '/' || track_id), max(dwell_s) "
        "FROM zone_visits WHERE camera = 'lobby' GROUP BY zone ORDER BY zone",
    )
    got = [(r["zone"], r["visits"], r["tracks"], r["max_dwell_s"]) for r in body]
    assert got == [tuple(row) for row in expected]
    periods = client.get("/api/counts/zones", params={"camera": "lobby", "every": "30m"}).json()
    assert same_times(periods) == query_json(
        capsys, stored, "zone", "--camera", "lobby", "--every", "30m"
    )
    assert [(p["from"], p["entered"], p["peak"]) for p in periods] == [
        ("2026-11-21T10:00:00Z", 2, 2), ("2026-11-21T10:30:00Z", 1, 1),
    ]  # fmt: skip


def test_visits_are_listed_with_their_last_frame_inside_as_query_lists_them(
    client: TestClient, stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = client.get("/api/visits", params={"camera": "lobby", "run": 1}).json()
    expected = sql(
        stored,
        "SELECT track_id, entered_frame, last_frame, left_frame, dwell_s FROM zone_visits "
        "WHERE camera = 'lobby' AND run_id = 1 ORDER BY left_at DESC",
    )
    got = [
        (r["track_id"], r["entered_frame"], r["last_frame"], r["left_frame"], r["dwell_s"])
        for r in body["rows"]
    ]
    assert body["total"] == len(expected) == 3 and got == [tuple(row) for row in expected]
    assert body["rows"][0]["last_time"] == "2026-11-21T10:55:00Z"  # a minute before it left
    capsys.readouterr()
    args = ["--list", "visits", "--camera", "lobby", "--run", "1", "--format", "json"]
    assert main(["query", "--db", stored, *args]) == 0
    listed = json.loads(capsys.readouterr().out)
    times = ("entered_at", "last_time", "left_at")
    assert [{**r, **{k: datetime.fromisoformat(r[k]) for k in times}} for r in listed] == [
        {**r, **{k: datetime.fromisoformat(r[k]) for k in times}} for r in body["rows"]
    ]


def test_a_period_too_fine_or_unreadable_is_answered_422(client: TestClient) -> None:
    too_fine = client.get("/api/counts/lines", params={"every": "0.01s"})
    assert too_fine.status_code == 422
    assert "periods" in too_fine.json()["detail"]
    unreadable = client.get("/api/counts/zones", params={"every": "often"})
    assert unreadable.status_code == 422
    assert unreadable.json()["detail"][0]["loc"] == ["query", "every"]


def query_json(capsys: pytest.CaptureFixture[str], db: str, by: str, *args: str) -> Any:
    """What `python -m pipeline query --count-by BY ARGS --format json` prints."""
    capsys.readouterr()
    assert main(["query", "--db", db, "--count-by", by, "--format", "json", *args]) == 0
    return same_times(json.loads(capsys.readouterr().out))


def same_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` with their period starts as datetimes (JSON writes them with or without
    microseconds)."""
    return [{**r, "from": datetime.fromisoformat(r["from"])} if "from" in r else r for r in rows]


def test_each_endpoint_takes_the_filters_docs_api_lists_in_that_order(client: TestClient) -> None:
    doc = (Path(__file__).parents[3] / "docs" / "api.md").read_text()
    listed = dict(re.findall(r"`GET (/api/[\w/]+)\?([\w=&|\\]+)`", doc))
    described = client.get("/openapi.json").json()["paths"]
    assert len(listed) == 7
    for path, query in listed.items():
        names = [part.split("=")[0] for part in query.split("&")]
        parameters = described[path]["get"]["parameters"]
        assert [p["name"] for p in parameters if p["in"] == "query"] == names, path
