"""The GPU suite (`python -m benchmarks.gpu_suite`): everything the CUDA path needs checked,
in one command that fits in minutes of a lent H100/H200, and one JSON file.

It runs the CUDA tests (`tests/detector/test_cuda.py`, in a child pytest), model-only
images/s of SSD300-VGG16, SSDLite320 and the bundled person SSDLite at batch 1/8/64 in
fp32/fp16/bf16, eager and compiled (`pipeline.bench.model_only`), end-to-end frames/s of
16 cameras at 1080p without the video sink, pipelining on and off
(`pipeline.bench.end_to_end`), the trainer's steps and whole epochs of `python -m pipeline
train`, and the peak GPU memory of each case; then holds the figures to the targets
(`plan.TARGETS`). A time budget skips, and says so, the cases it cannot
hold. `--dry-run` runs the same code on the CPU with tiny sizes in seconds (the tests do).

`plan` says what runs, `cases` how each case runs (`training` and `epoch`, with
`train_child`, the training cases'), `workbench` what they share, `budget` the deadline,
`suite` the loop, `report` the JSON, `pytest_counts` the tests' results.
"""
