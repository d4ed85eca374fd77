"""The live view's pages: the index (one tile per camera, refreshed from /api/cameras) and
the recent tracks with their snapshots (from /api/tracks)."""

from __future__ import annotations

# an empty icon: else the browser asks for /favicon.ico, without the page's token (401)
_HEAD = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>%s</title>
<style>
  :root { color-scheme: dark; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: #14161a; color: #e6e6e6; }
  header { display: flex; align-items: baseline; gap: 1em; padding: 10px 16px;
           background: #1d2026; border-bottom: 1px solid #2c3038; }
  header h1 { font-size: 16px; margin: 0; font-weight: 600; }
"""


def _page_head(title: bytes) -> bytes:
    """The start of a page, up to its own styles: its title and the styles both share."""
    return _HEAD % title


INDEX_HTML = (
    _page_head(b"ssd-pipeline live view")
    + b"""  #state { color: #9aa0a6; }
  #state.down { color: #ff7b72; }
  main { display: grid; gap: 12px; padding: 12px;
         grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); }
  .tile { background: #1d2026; border: 1px solid #2c3038; border-radius: 6px; overflow: hidden; }
  .tile .bar { display: flex; gap: .8em; align-items: baseline; padding: 6px 10px; }
  .tile .name { font-weight: 600; flex: 1; overflow: hidden; text-overflow: ellipsis; }
  .tile .status { font-size: 12px; padding: 0 6px; border-radius: 8px; background: #2c3038; }
  .tile .status.live { background: #1f6f3f; }
  .tile .status.failed { background: #8b2c2c; }
  .tile .fps, .tile .frames { color: #9aa0a6; font-variant-numeric: tabular-nums; }
  .tile img { display: block; width: 100%; height: auto; background: #000; }
  .tile .error { color: #ff7b72; padding: 0 10px 6px; }
  .tile .counts { display: flex; flex-wrap: wrap; gap: 4px 14px; padding: 6px 10px;
                  font-variant-numeric: tabular-nums; }
  .tile .counts:empty { display: none; }
  .tile .zone b { color: #ffb000; }
  .tile .line b { color: #ff40ff; }
  #empty { padding: 24px; color: #9aa0a6; }
</style>
</head>
<body>
<header><h1>ssd-pipeline live view</h1><span id="state">connecting...</span>
<a id="tracks-link" href="tracks">recent tracks</a></header>
<main id="tiles"></main>
<div id="empty" hidden>No camera has started yet.</div>
<script>
"use strict";
const tiles = new Map();
const grid = document.getElementById("tiles");
const state = document.getElementById("state");
// A view opened as /?token=...: the page's own requests carry the token too.
const token = new URLSearchParams(location.search).get("token");
const auth = token ? "?token=" + encodeURIComponent(token) : "";
if (token) document.getElementById("tracks-link").href = "tracks" + auth;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function addTile(cam) {
  const tile = el("section", "tile");
  tile.dataset.camera = cam.id;
  const bar = el("div", "bar");
  const parts = {
    name: el("span", "name", cam.id), status: el("span", "status"),
    fps: el("span", "fps"), frames: el("span", "frames"), error: el("div", "error"),
    counts: el("div", "counts"),
  };
  bar.append(parts.name, parts.status, parts.fps, parts.frames);
  const img = el("img", "feed");
  img.alt = "camera " + cam.id;
  if (cam.width > 0) { img.width = cam.width; img.height = cam.height; }
  img.src = "cameras/" + encodeURIComponent(cam.id) + ".mjpg" + auth;
  tile.append(bar, img, parts.counts, parts.error);
  grid.append(tile);
  tiles.set(cam.id, parts);
  return parts;
}

function show(parts, cam) {
  parts.status.textContent = cam.status;
  parts.status.className = "status " + cam.status;
  parts.fps.textContent = cam.status === "live" ? cam.fps.toFixed(1) + " fps" : "";
  parts.frames.textContent = cam.frames + " frames";
  parts.error.textContent = cam.error || "";
  showCounts(parts.counts, cam);
}

// Each zone's tracks inside now and each line's crossings per direction so far.
function showCounts(box, cam) {
  const items = [];
  for (const z of cam.zones || []) {
    const labels = Object.entries(z.by_label).map(([k, n]) => n + " " + k).join(", ");
    items.push(["zone", z.id, z.inside + " inside" + (labels ? " (" + labels + ")" : "")]);
  }
  for (const l of cam.lines || []) {
    items.push(["line", l.id,
                Object.entries(l.crossings).map(([k, n]) => k + " " + n).join(", ")]);
  }
  const key = JSON.stringify(items);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren(...items.map(([kind, id, text]) => {
    const item = el("span", kind);
    item.append(el("b", "", id), " " + text);
    return item;
  }));
}

async function refresh() {
  try {
    const response = await fetch("api/cameras" + auth, {cache: "no-store"});
    const cameras = (await response.json()).cameras;
    for (const cam of cameras) show(tiles.get(cam.id) || addTile(cam), cam);
    document.getElementById("empty").hidden = cameras.length > 0;
    const live = cameras.filter(c => c.status === "live").length;
    state.textContent = live + " of " + cameras.length + " camera(s) live";
    state.className = "";
  } catch (err) {
    state.textContent = "pipeline not reachable (run over?)";
    state.className = "down";
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""
)

TRACKS_HTML = (
    _page_head(b"ssd-pipeline recent tracks")
    + b"""  a { color: #8ab4f8; }
  main { display: grid; gap: 10px; padding: 12px;
         grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); }
  .track { background: #1d2026; border: 1px solid #2c3038; border-radius: 6px; padding: 6px; }
  .track img { display: block; max-width: 100%; max-height: 240px; margin: 0 auto 4px;
               background: #000; }
  .track .what { font-weight: 600; }
  .track .when { color: #9aa0a6; font-size: 12px; font-variant-numeric: tabular-nums; }
  #empty { padding: 24px; color: #9aa0a6; }
</style>
</head>
<body>
<header><h1>Recent tracks</h1><a id="back" href=".">cameras</a></header>
<main id="tracks"></main>
<div id="empty" hidden>No track has ended yet.</div>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const auth = token ? "?token=" + encodeURIComponent(token) : "";
if (token) document.getElementById("back").href = "." + auth;
const list = document.getElementById("tracks");
let shown = "";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function card(t) {
  const box = el("section", "track");
  if (t.snapshot_url) {
    const img = el("img");
    img.alt = t.label + " " + t.track_id;
    img.loading = "lazy";
    img.src = t.snapshot_url + auth;
    const link = el("a");
    link.href = (t.frame_url || t.snapshot_url) + auth;
    link.append(img);
    box.append(link);
  }
  box.append(el("div", "what", t.camera + " #" + t.track_id + " " + t.label + " " +
                t.best_score.toFixed(2)));
  box.append(el("div", "when", t.first_time.replace("T", " ").slice(0, 19) + " UTC, " +
                t.frames + " frames"));
  return box;
}

async function refresh() {
  try {
    const response = await fetch("api/tracks" + auth, {cache: "no-store"});
    const tracks = (await response.json()).tracks;
    const key = JSON.stringify(tracks.map(t => [t.camera, t.track_id, t.first_time]));
    if (key !== shown) {
      shown = key;
      list.replaceChildren(...tracks.map(card));
    }
    document.getElementById("empty").hidden = tracks.length > 0;
  } catch (err) {
    document.getElementById("empty").hidden = false;
    document.getElementById("empty").textContent = "pipeline not reachable (run over?)";
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""
)
