"""The snapshots sink: each track's best-scoring detection as JPEG files, with retention.

- `sink`: `SnapshotSink`, which writes the snapshots the tracks' "ended" events carry.
- `retention`: which snapshot files to delete (age, count, bytes).
File names follow the rule in `sinks.snapshot_files`.
"""
