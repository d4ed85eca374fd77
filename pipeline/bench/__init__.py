"""`python -m pipeline bench`: model-only throughput, end-to-end throughput, naive baseline;
or, with `--capacity`, the cameras held in real time.

Three measurements in one run (docs/performance.md explains them and records results):

- model only (`model_only`): images/s of the network alone (no decoding, resizing or
  post-processing) per model, batch size and precision, on random uint8 inputs of the
  model's input size;
- end to end (`end_to_end`): N copies of a clip through the real `Pipeline` (PyAV decoding,
  batched detection, IoU tracking, video + ZeroMQ + SQL sinks writing into a temporary
  folder), with the busy time of each stage;
- naive (`naive`): the same clip the way a first script does it: OpenCV reads a frame, the
  model runs on it alone with a per-image float transform and a torchvision-style
  post-processing loop over classes, OpenCV draws the boxes and `cv2.VideoWriter` writes them.

`bench --capacity` instead runs `capacity`: N cameras paced in real time, N increased
until frames are dropped or the p99 capture-to-publish latency passes 250 ms, and the
latency at twice the N held.

`clips` holds the clip helpers, `report` the results and their text and JSON forms,
`options` the command's options, `cli` the order the measurements run in. Figures are the median of
`repeat` runs, with every run listed. Nothing here is a test.

torch, OpenCV and the detector are imported where used: `python -m pipeline` builds this
command's options for every command, and must not pay for them.
"""
