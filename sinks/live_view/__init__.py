"""The live view: each camera's annotated frames as MJPEG over HTTP, and an index page.

- `hub`: `LiveHub`, the cameras' newest frames and status, encoded to JPEG on demand;
- `routes`: `LiveRoutes`, the HTTP endpoints (index page, status, streams, snapshots), served
  by the run's server;
- `access`: who may see the view: Host/Origin names, optional credentials, exposure rule;
- `page`: the index page's HTML;
- `sink`: `LiveViewSink`, the `live` sink, which feeds the hub and gives the routes.

docs/live-view.md describes the endpoints and the page.
"""
