"""SQL output: detections, finished tracks and the run itself, in SQLite or PostgreSQL.

Import from the module that holds what you need (nothing is re-exported here):

- `sinks.sql.sink`: `SqlSink`, the output the pipeline writes through.
- `sinks.sql.pending_rows`: `PendingRows`, results turned into rows until a batch is due.
- `sinks.sql.writer`: `RowWriter`, the sink's thread that inserts rows and rides out outages.
- `sinks.sql.outbox`: `Outbox`, the rows waiting for the database, in memory and beyond
  it in a spool file.
- `sinks.sql.opening`: the database opened for the sink (`open_database`, `start_run`,
  `check_database`).
- `sinks.sql.spool`: `RowBatch` and the spool files rows wait in.
- `sinks.sql.replay`: `SpoolReplay`, the spool files earlier runs left, written by the next
  run.
- `sinks.sql.reading`: opening a stored database to read it (`existing_database`,
  `QueryError`), the filters (`DetectionQuery`), pages of rows.
- `sinks.sql.query`: reading back (`query_detections`, `latest_detections`,
  `count_detections`, `list_runs`, `list_tracks`), as the `query` command does.
- `sinks.sql.scene_query`: the zone visits listed (`list_visits`), visits and line
  crossings counted.
- `sinks.sql.retention`: `delete_older_than`, as the `retention` command does.
- `sinks.sql.database`: `DatabaseUrl`, engines, schema creation, error reasons and kinds.
- `sinks.sql.models`: the tables (described in docs/sql.md).
- `sinks.sql.bounds`: what their columns hold (`ID_MAX`, `LIMIT_MAX`), without SQLAlchemy.
"""
