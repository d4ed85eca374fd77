"""The video output: annotated H.264 MP4 files per camera, rotated and pruned.

- `encoding`: the encoder's options (x264, NVENC) and `SegmentFile`, one open MP4 that
  encodes frames (fragmented, one frame per input frame at the input's rate);
- `files`: the files' names, the pattern that recognises them, and retention (a camera's
  old files while it records; `delete_old_videos` for `python -m pipeline retention`);
- `segments`: `Segments`, each camera's files: opening, rotating and finishing them, what a
  full disk cuts short or drops, and what the run wrote and lost;
- `sink`: `VideoSink`, the `video` sink: a file per camera and segment.
- `stalls`, `slowdown`: whether a live camera's frames have stopped, or clearly slowed
  down, either of which ends its file.

docs/video.md describes the output for users.
"""
