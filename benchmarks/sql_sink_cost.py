"""What the SQL sink costs the process, per frame, writing to a SQLite file.

`SqlSink.write` of frames from 16 cameras with 4 or 16 tracked boxes each and a track event
on every 10th frame (the ZeroMQ cost benchmark's frames, `benchmarks.event_bus_cost`), then
`close`, which waits for the writer thread to store every row. Figures are CPU ms per frame:
of the thread calling `write` (the rows gathered), and of the whole process (that and the
writer thread's inserts). Part of the writer's time is SQLite's own, which does not hold
the interpreter lock; the rest competes with every other thread of a run for it. Each round
runs every condition in a fresh process; with `--baseline REF` the commit REF runs its
rounds in turn with this checkout's, and the ratios are printed.

    python -m benchmarks.sql_sink_cost [--frames 4000] [--rounds 5] [--baseline REF]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.event_bus_cost import LABELS, frame_results
from benchmarks.machine import machine_line
from pipeline.config import SqlSinkConfig
from sinks.sql.sink import SqlSink

BOXES = (4, 16)
BATCH_ROWS: int = SqlSinkConfig.model_fields["batch_size"].default
"""Rows a batch, as a config that does not say."""
WARM_UP = 100
"""Frames written (and stored) before the timed ones."""


def cpu_ms_per_frame(folder: Path, frames: int, boxes: int) -> tuple[float, float, int]:
    """(CPU ms per frame of the calling thread, of the process, detection rows stored)."""
    results = frame_results(frames + WARM_UP, boxes)
    # frames come faster than real time: rows wait in memory, not in the spool file
    sink = SqlSink(
        f"sqlite:///{folder / 'detections.db'}", LABELS, spool_dir=folder / "spool",
        buffer_rows=max(BATCH_ROWS, (frames + WARM_UP) * boxes),
    )  # fmt: skip
    for result in results[:WARM_UP]:
        sink.write(result)
    sink.flush(30)
    caller, process = time.thread_time(), time.process_time()
    for result in results[WARM_UP:]:
        sink.write(result)
    caller = time.thread_time() - caller
    sink.close()
    process = time.process_time() - process
    stored = sink.rows_written["detections"]
    return caller / frames * 1e3, process / frames * 1e3, stored


def one_round(frames: int) -> dict[str, list[float]]:
    """Every condition once, in this process: {"boxes": [caller CPU ms, process CPU ms]}."""
    measured = {}
    for boxes in BOXES:
        with tempfile.TemporaryDirectory(prefix="sql-sink-cost-") as folder:
            caller, process, stored = cpu_ms_per_frame(Path(folder), frames, boxes)
        if stored != (frames + WARM_UP) * boxes:
            raise SystemExit(f"{stored} detection rows stored, not {(frames + WARM_UP) * boxes}")
        measured[str(boxes)] = [caller, process]
    return measured


def main(argv: list[str] | None = None) -> None:
    from benchmarks.checkouts import add_round_options, rounds_in_turn  # see that module

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=4000, help="frames per timed run")
    add_round_options(parser)
    args = parser.parse_args(argv)

    print(machine_line())
    print(
        f"sql sink write() + close() to SQLite: {args.frames} frames of 16 cameras, a track "
        f"event every 10th frame; CPU ms per frame, median of {args.rounds} rounds"
    )
    rounds = rounds_in_turn(__file__, [args.frames], args.rounds, args.baseline)
    header = "".join(f"{name + ' caller':>24}{'process':>10}" for name in rounds)
    ratio = "  process ratio" if args.baseline else ""
    print(f"  {'boxes':<6}{header}{ratio}")
    for boxes in map(str, BOXES):
        medians = {
            name: [statistics.median(r[boxes][k] for r in runs) for k in (0, 1)]
            for name, runs in rounds.items()
        }
        columns = list(medians.values())
        cells = "".join(f"{caller:>24.4f}{process:>10.4f}" for caller, process in columns)
        shown = f"  {columns[-1][1] / columns[0][1]:.2f}x" if args.baseline else ""
        print(f"  {boxes:<6}{cells}{shown}")
    if args.baseline:
        print(f"  process ratio: this checkout / {args.baseline}")


if __name__ == "__main__":
    main()
