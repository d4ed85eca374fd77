"""The snapshots sink: each track's best-scoring detection as JPEG files, with retention.

- `sink`: `SnapshotSink`, which counts the snapshots the tracks' "ended" events carry
  and applies retention.
- `writer`: `SnapshotWriter`, the JPEG files of one snapshot; `writer_thread`:
  `SnapshotWriterThread`, which runs it off the pipeline's thread, each snapshot within a
  bound.
- `retention`: which snapshot files to delete (age, count, bytes).
File names follow the rule in `sinks.snapshot_files`.
"""
