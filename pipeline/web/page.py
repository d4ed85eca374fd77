"""The HTML page of `serve`: the runs, the tracks that ended last (with their snapshots)
and the detections counted per label."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from html import escape
from urllib.parse import quote

from sinks.sql.query import CountRow, RunRecord, TrackRecord
from sinks.sql.reading import Page

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left}
.tracks{display:flex;flex-wrap:wrap;gap:.8em}
.track{border:1px solid #ddd;padding:.4em;width:160px;font-size:12px}
.track img{max-width:150px;max-height:150px;display:block}
"""


def render_page(
    runs: Page[RunRecord],
    tracks: Page[TrackRecord],
    counts: list[CountRow],
    foot: str,
    link: Callable[[str], str],
) -> str:
    """The page, every stored text escaped; `foot`: the HTML of its last line (links);
    `link`: the URL the page uses for a path of this server (with the request's token)."""
    run_rows = "".join(
        f"<tr><td>{r.id}</td><td>{escape(r.status)}</td><td>{_when(r.started_at)}</td>"
        f"<td>{_when(r.ended_at) if r.ended_at else ''}</td><td>{r.detections}</td>"
        f"<td>{r.tracks}</td><td>{escape(r.config)}</td></tr>"
        for r in runs.rows
    )
    count_rows = "".join(
        f"<tr><td>{escape(c.key)}</td><td>{c.detections}</td><td>{c.tracks}</td></tr>"
        for c in counts
    )
    cards = "".join(_track_card(t, link) for t in tracks.rows)
    # an empty icon: else the browser asks for /favicon.ico, without the page's token (401)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>ssd-pipeline</title><style>{_STYLE}</style></head><body>
<h1>ssd-pipeline</h1>
<h2>Runs ({runs.total})</h2>
<table><tr><th>run</th><th>status</th><th>started</th><th>ended</th><th>detections</th>
<th>tracks</th><th>config</th></tr>{run_rows}</table>
<h2>Detections per label</h2>
<table><tr><th>label</th><th>detections</th><th>tracks</th></tr>{count_rows}</table>
<h2>Latest tracks ({len(tracks.rows)} of {tracks.total})</h2>
<div class="tracks">{cards}</div>
<p>{foot}</p>
</body></html>"""


def _track_card(t: TrackRecord, link: Callable[[str], str]) -> str:
    picture = ""
    if t.snapshot_path:
        url = link(f"/api/tracks/{t.run_id}/{quote(t.camera, safe='')}/{t.track_id}/snapshot")
        picture = f'<img src="{escape(url)}" alt="track {t.track_id}" loading="lazy">'
    return (
        f'<div class="track">{picture}<b>{escape(t.camera)} #{t.track_id}</b> '
        f"{escape(t.label)} {t.best_score:.2f}<br>run {t.run_id}, {t.frames} frames<br>"
        f"ended {_when(t.last_time)}</div>"
    )


def _when(moment: datetime) -> str:
    """A stored (UTC) time to the second."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
