"""What the SQL sink costs the process, per frame, writing to a SQLite file or to PostgreSQL.

`SqlSink.write` of frames from 16 cameras with 4 or 16 tracked boxes each and a track event
on every 10th frame (the ZeroMQ cost benchmark's frames, `benchmarks.event_bus_cost`), then
`close`, which waits for the writer thread to store every row. Figures are CPU ms per frame:
of the thread calling `write` (the rows gathered), and of the whole process (that and the
writer thread's inserts). Part of the writer's time is SQLite's own, which does not hold
the interpreter lock; the rest competes with every other thread of a run for it. With
`--url` the rows go to a PostgreSQL server on 127.0.0.1 instead (nothing else is accepted),
each condition's tables in a schema of their own, dropped after; the server's own work,
another process's, is not in the process's figure, and is shown beside it (the CPU time of
the server processes serving the sink's connections until every row is stored, read from
/proc: the server runs on this machine). Each round runs every condition in a fresh process;
with `--baseline REF` the commit REF runs its rounds in turn with this checkout's, and the
ratios are printed.

    python -m benchmarks.sql_sink_cost [--frames 4000] [--rounds 5] [--baseline REF]
        [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.event_bus_cost import LABELS, frame_results
from benchmarks.machine import machine_line
from pipeline.config import SqlSinkConfig
from sinks.sql.sink import SqlSink

BOXES = (4, 16)
BATCH_ROWS: int = SqlSinkConfig.model_fields["batch_size"].default
"""Rows a batch, as a config that does not say."""
WARM_UP = 100
"""Frames written (and stored) before the timed ones."""


LOCAL_HOST = "127.0.0.1"
"""The only PostgreSQL server `--url` may name."""


def local_postgres(url: str) -> str:
    """`url`, a PostgreSQL URL on 127.0.0.1; ArgumentTypeError saying so otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.host != LOCAL_HOST:
        raise argparse.ArgumentTypeError(f"not a PostgreSQL database on {LOCAL_HOST}: {parsed!r}")
    return url


ServerCpu = Callable[[], float]
"""CPU seconds the database server has spent on the sink's connections so far (SQLite: 0,
its work is the process's own)."""


@contextmanager
def database(folder: Path, url: str | None) -> Iterator[tuple[str, ServerCpu]]:
    """The URL the sink writes to, and its server's CPU time: a SQLite file in `folder`, or,
    with `url`, a new schema of that PostgreSQL database (dropped after)."""
    if url is None:
        yield f"sqlite:///{folder / 'detections.db'}", lambda: 0.0
        return
    admin = create_engine(local_postgres(url))
    schema = f"sql_sink_cost_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # the sink's connections named after the schema: the server processes serving them
    query = {"options": f"-csearch_path={schema}", "application_name": schema}
    try:
        yield (
            make_url(url).update_query_dict(query).render_as_string(hide_password=False),
            lambda: server_cpu_s(admin, schema),
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def server_cpu_s(admin: Engine, name: str) -> float:
    """CPU seconds of the server processes now serving connections named `name`."""
    with admin.connect() as conn:
        pids = conn.scalars(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": name},
        ).all()
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):  # ended meanwhile
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_ms_per_frame(
    folder: Path, url: str, server_cpu: ServerCpu, frames: int, boxes: int
) -> tuple[float, float, float, int]:
    """(CPU ms per frame of the calling thread, of the process, of the database server,
    detection rows stored) writing to `url` (the spool file in `folder`)."""
    results = frame_results(frames + WARM_UP, boxes)
    # frames come faster than real time: rows wait in memory, not in the spool file
    sink = SqlSink(
        url, LABELS, spool_dir=folder / "spool",
        buffer_rows=max(BATCH_ROWS, (frames + WARM_UP) * boxes),
    )  # fmt: skip
    for result in results[:WARM_UP]:
        sink.write(result)
    sink.flush(30)
    caller, process, server = time.thread_time(), time.process_time(), server_cpu()
    for result in results[WARM_UP:]:
        sink.write(result)
    caller = time.thread_time() - caller
    sink.flush(60)  # every row stored: the server's connections are still open
    server = server_cpu() - server
    sink.close()
    process = time.process_time() - process
    stored = sink.rows_written["detections"]
    return caller / frames * 1e3, process / frames * 1e3, server / frames * 1e3, stored


def one_round(frames: int, url: str | None) -> dict[str, list[float]]:
    """Every condition once, in this process: {"boxes": [caller CPU ms, process CPU ms,
    server CPU ms]}."""
    measured = {}
    for boxes in BOXES:
        with (
            tempfile.TemporaryDirectory(prefix="sql-sink-cost-") as folder,
            database(Path(folder), url) as (sink_url, server_cpu),
        ):
            *cpu, stored = cpu_ms_per_frame(Path(folder), sink_url, server_cpu, frames, boxes)
        if stored != (frames + WARM_UP) * boxes:
            raise SystemExit(f"{stored} detection rows stored, not {(frames + WARM_UP) * boxes}")
        measured[str(boxes)] = cpu
    return measured


def main(argv: list[str] | None = None) -> None:
    from benchmarks.checkouts import add_round_options, rounds_in_turn  # see that module

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=4000, help="frames per timed run")
    add_round_options(parser)
    parser.add_argument(
        "--url",
        type=local_postgres,
        help=f"a PostgreSQL database on {LOCAL_HOST} to write to instead of a SQLite file "
        "(each condition in a schema of its own, dropped after), e.g. "
        f"postgresql+psycopg://postgres@{LOCAL_HOST}:5432/test",
    )
    args = parser.parse_args(argv)

    print(machine_line())
    target = "SQLite" if args.url is None else f"PostgreSQL at {make_url(args.url)}"
    print(
        f"sql sink write() + close() to {target}: {args.frames} frames of 16 cameras, a track "
        f"event every 10th frame; CPU ms per frame, median of {args.rounds} rounds"
    )
    rounds = rounds_in_turn(__file__, [args.frames, args.url], args.rounds, args.baseline)
    shown = (0, 1) if args.url is None else (0, 1, 2)  # SQLite: no server
    names = ("caller", "process", "server")
    header = "".join(
        f"{name + ' ' + names[0]:>24}" + "".join(f"{names[k]:>10}" for k in shown[1:])
        for name in rounds
    )
    ratios = "".join(f"{names[k] + ' ratio':>15}" for k in shown[1:]) if args.baseline else ""
    print(f"  {'boxes':<6}{header}{ratios}")
    for boxes in map(str, BOXES):
        medians = [
            [statistics.median(r[boxes][k] for r in runs) for k in shown]
            for runs in rounds.values()
        ]
        cells = "".join(
            f"{figures[0]:>24.4f}" + "".join(f"{f:>10.4f}" for f in figures[1:])
            for figures in medians
        )
        if args.baseline:
            cells += "".join(f"{medians[-1][k] / medians[0][k]:>14.2f}x" for k in shown[1:])
        print(f"  {boxes:<6}{cells}")
    if args.baseline:
        print(f"  ratios: this checkout / {args.baseline}")


if __name__ == "__main__":
    main()
