"""What `run` checks before it reads a frame, checked without reading one: for `validate`.

The detector's options are resolved on this machine (the device is there, int8 has
onnxruntime), weights that would need a download are named, and the model is built on the
CPU (its weights read and fitted, as `run` does, without the engine's export) so that
`detector.labels`, and the labels of the cameras' zones and lines, are checked against the
model's own class names. Sinks are not opened, which has effects (tables created, ports
held): what would stop them opening is checked instead (a port another program holds, a
folder that cannot be made, a database server that does not answer, an MQTT broker that
does not accept the login). `run`, and each shard of a cluster run, ask `check_before_work`
before they prepare the detector.
"""

from __future__ import annotations

import errno
import functools
import socket
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import (
    DetectorConfig,
    MqttSinkConfig,
    PipelineConfig,
    SinkConfig,
    SnapshotSinkConfig,
    SqlSinkConfig,
    VideoSinkConfig,
    ZmqSinkConfig,
)
from pipeline.config.scene import kept_classes, scene_label_problems, unknown_label
from pipeline.folders import folder_problem
from pipeline.urls import is_interface
from sinks.disk import open_folder


def check_detector(config: DetectorConfig) -> tuple[str, dict[str, frozenset[int]]]:
    """The model's class count, in words, and the classes the detector reports (by the
    `LabelMap.key` of their names, `kept_classes`), once everything `run` checks of the
    detector before reading holds.

    Raises:
        ModelConfigError: an unknown model, a missing device, labels the model lacks, ...
        WeightsUnavailableError: weights that are missing, unreadable or not downloaded yet.
    """
    from detector.errors import WeightsUnavailableError
    from detector.labels import resolve_label_filter
    from detector.models import build_model
    from detector.options import DetectorOptions
    from detector.quantize import calibration_images
    from detector.state_dicts import OFFLINE_ALTERNATIVES, hub_cache_file
    from detector.torchvision_models import pending_download

    request = config.to_request()
    options = DetectorOptions.resolve(request)
    if options.precision == "int8" and request.calibration is not None:
        calibration_images(request.calibration, count=1)  # run quantizes on 50 of its frames
    url = pending_download(request.model, request.weights)
    if url is not None:
        cached = hub_cache_file(url)
        raise WeightsUnavailableError(
            f"{request.model} weights are not downloaded yet ({cached} is missing); run would "
            f"download {url} first, which needs internet access: run it once where there is, "
            f"or download that file elsewhere and set `detector.weights: /path/to/{cached.name}`, "
            f"{OFFLINE_ALTERNATIVES}"
        )
    model, labels = build_model(request.model, request.weights)
    resolve_label_filter(request.labels, labels, model.background_class)
    classes = len(labels.names) - (model.background_class is not None)
    kept = kept_classes(labels.names, request.labels, model.background_class)
    return f"{classes} class{'es' if classes != 1 else ''}", kept


def check_labels(config: PipelineConfig, classes: dict[str, frozenset[int]]) -> list[str]:
    """One line, at its YAML path, per label of the config that names no class the detector
    reports (`classes`: `kept_classes`, after `detector.labels`): a zone's or line's, an
    mqtt sink's `count_labels`. `validate` says them, and `run` refuses them once its
    detector is built, before any sink opens."""
    return scene_label_problems(config.cameras, classes) + _count_label_problems(config, classes)


def _count_label_problems(config: PipelineConfig, classes: dict[str, frozenset[int]]) -> list[str]:
    """One line per `count_labels` entry of an mqtt sink that names no class the detector
    reports (a count that would stay 0), at its YAML path."""
    return [
        f"sinks[{s}].count_labels[{i}] (mqtt): {problem}"
        for s, sink in enumerate(config.sinks)
        if isinstance(sink, MqttSinkConfig)
        for i, label in enumerate(sink.count_labels or ())
        if (problem := unknown_label(label, classes)) is not None
    ]


def check_sinks(configs: Sequence[SinkConfig]) -> list[str]:
    """What would stop `run` from opening each sink, found without opening it (nothing is
    created, bound or written): one line per problem, naming the sink's entry."""
    problems = []
    for index, config in enumerate(configs):
        why = sink_problem(config)
        if why is not None:
            problems.append(f"sinks[{index}] ({config.type}): {why}")
    return problems


def check_server(config: PipelineConfig) -> list[str]:
    """What would stop `run` from starting its HTTP server (`PipelineConfig.server`): its
    libraries missing, its port held; one line each, naming the section that sets it."""
    if config.server() is None:
        return []
    problems = []
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        problems.append(f"{_server_section(config)}: {exc}; pip install 'ssd-pipeline[api]'")
    if (why := server_port_problem(config)) is not None:
        problems.append(why)
    return problems


def server_port_problem(config: PipelineConfig) -> str | None:
    """Why `run`'s HTTP server could not listen now (its port held, say), naming the section
    that sets it; None when it could, or when there is no server."""
    server = config.server()
    if server is None:
        return None
    why = port_problem(server.host, server.port)
    return None if why is None else f"{_server_section(config)}: {why}"


def _server_section(config: PipelineConfig) -> str:
    """The section of the config that sets the run's HTTP server."""
    live = config.live
    if config.http is not None or live is None:
        return "http"
    return f"sinks[{config.sinks.index(live)}] (live)"


def check_before_work(config: PipelineConfig) -> None:
    """What must hold before any work, checked at once: `run` and each shard of a cluster
    run ask before they prepare the detector (a first run's export takes many seconds), so
    that the one line comes first.

    Raises:
        ServerError: the run's HTTP server could not listen (`server_port_problem`).
        SinkError: a sink could never open (`check_sink_before_work`): an output folder
            it could never write, a SQLite database it may not write.
    """
    from pipeline.web import ServerError

    if (problem := server_port_problem(config)) is not None:
        raise ServerError(problem)
    for sink in config.sinks:
        check_sink_before_work(sink)


@functools.singledispatch
def check_sink_before_work(config: SinkConfig) -> None:
    """Raises the `SinkError` the sink `config` describes would raise as it opens, where
    that is known at once without changing anything: an output folder it could never write
    (`open_folder`), and what its own check adds."""
    _open_folders(config)


@check_sink_before_work.register
def _(config: ZmqSinkConfig) -> None:
    from sinks.event_bus.publisher import bind_error

    address = _tcp_address(config)
    if address is not None and _port_in_use(*address):
        raise bind_error(config.endpoint, errno.EADDRINUSE)
    # Anything else (an interface name for a host, an ipc path) is ZeroMQ's to judge as
    # the sink binds; `validate` says more (`sink_problem`).


@check_sink_before_work.register
def _(config: SqlSinkConfig) -> None:
    from sinks.sql.opening import check_database

    _open_folders(config)  # the spool first, as the sink opens
    check_database(config.url)  # a SQLite file it may not write, or not make


def _open_folders(config: SinkConfig) -> None:
    """Raises the `SinkError` of the first of the sink's `output_folders` it could never
    write."""
    for folder in output_folders(config):
        open_folder(folder, config.type)


@functools.singledispatch
def output_folders(config: object) -> tuple[Path, ...]:
    """The folders the sink `config` describes writes its files in, which it checks as it
    opens (`open_folder`); () for a sink that writes no files of its own."""
    return ()


@output_folders.register
def _(config: VideoSinkConfig | SnapshotSinkConfig) -> tuple[Path, ...]:
    return (config.dir,)


@output_folders.register
def _(config: SqlSinkConfig) -> tuple[Path, ...]:
    return (config.spool_dir,)  # rows wait there while the database is away


@functools.singledispatch
def sink_problem(config: object) -> str | None:
    """Why the sink `config` describes could not open here; None when nothing is known.
    Its output folders unless the sink's own says more."""
    return _folders_problem(config)


def _folders_problem(config: object) -> str | None:
    """Why files could not be written in one of the sink's `output_folders`; None if they
    could in each."""
    return next(filter(None, map(folder_problem, output_folders(config))), None)


@sink_problem.register
def _(config: ZmqSinkConfig) -> str | None:
    scheme, _, address = config.endpoint.partition("://")
    if scheme == "ipc" and not address.startswith("@") and address != "*":
        folder = Path(address).parent  # ZeroMQ makes the socket, never its folder
        if not folder.is_dir():
            return f"cannot bind {config.endpoint!r}: {folder} is not a folder"
        return None  # a path in use: the publisher's own check at open
    tcp = _tcp_address(config)
    if tcp is None or is_interface(tcp[0]):  # an interface's name: ZeroMQ's alone to bind
        return None  # None: inproc, or any port (*)
    return port_problem(*tcp)


def _tcp_address(config: ZmqSinkConfig) -> tuple[str, int] | None:
    """The host and port a zmq sink's tcp endpoint binds (`*`: every address); None for
    another transport, or for any port (`*`)."""
    host = config.bound_host()
    port = config.endpoint.rpartition(":")[2]
    if host is None or not port.isdigit():
        return None
    return "0.0.0.0" if host == "*" else host, int(port)


@sink_problem.register
def _(config: SqlSinkConfig) -> str | None:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from sinks.base import SinkError
    from sinks.sql.database import DatabaseUrl, make_engine, open_failure
    from sinks.sql.opening import check_database
    from sinks.sql.schema import foreign_tables

    db = DatabaseUrl(config.url)
    if db.sqlite_file is not None:
        try:
            check_database(config.url)  # as `run` checks it
        except SinkError as exc:
            return str(exc).removeprefix("sql sink: ")
        return _folders_problem(config)
    try:
        engine = make_engine(db)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        return f"cannot open database {db}: {open_failure(exc, db)}"
    try:
        with engine.connect() as connection:  # writes nothing
            connection.execute(text("SELECT 1"))
        foreign = foreign_tables(engine)
    except (SQLAlchemyError, ImportError) as exc:
        return f"cannot open database {db}: {open_failure(exc, db)}"
    finally:
        engine.dispose()
    if foreign is not None:
        return f"cannot write to {db}: {foreign}"
    return _folders_problem(config)


@sink_problem.register
def _(config: MqttSinkConfig) -> str | None:
    from sinks.mqtt.settings import paho_missing

    if (missing := paho_missing()) is not None:
        return missing
    from sinks.base import SinkError
    from sinks.mqtt.login import probe_broker

    try:  # logs in and out: publishes nothing, subscribes to nothing
        probe_broker(config.broker())
    except SinkError as exc:
        return str(exc).removeprefix("mqtt sink: ")
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on `host`:`port` now (another program holds the port,
    an address this machine does not have); None when it could. Port 0 takes any."""
    exc = _bind_failure(host, port)
    return None if exc is None else f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _port_in_use(host: str, port: int) -> bool:
    """Whether another program holds `host`:`port` now (a host this machine cannot bind,
    an interface name say, is not this)."""
    exc = _bind_failure(host, port)
    return exc is not None and exc.errno == errno.EADDRINUSE


def _bind_failure(host: str, port: int) -> OSError | None:
    """The error a server listening on `host`:`port` now would meet; None when it could.
    Port 0 takes any."""
    if port == 0:
        return None
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            probe.bind((host, port))
    except OSError as exc:
        return exc
    return None
