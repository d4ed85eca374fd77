"""The API over a stored database: its answers checked against SQL run on the same file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

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
