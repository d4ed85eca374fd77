"""Whether the host names a config gives resolve: the system is asked, so this is no part
of validating the model (`parse_config(resolve_hosts=True)`, which `validate` and `run`
ask for)."""

from __future__ import annotations

import functools

from pipeline.config.mqtt import MqttSinkConfig
from pipeline.config.schema import PipelineConfig
from pipeline.config.sinks import ZmqSinkConfig
from pipeline.urls import is_host_name, is_interface, names_unknown, unknown_name
from sinks.mqtt.settings import BrokerAddress

Place = tuple[str | int, ...]
"""A YAML path, e.g. ("sinks", 0, "endpoint")."""
SERVER_HARM = (
    "the HTTP server could not listen on it; give an address of this machine, or a name "
    "that resolves to one"
)


def unknown_hosts(config: PipelineConfig) -> list[tuple[Place, str]]:
    """Each host name of `config` that the system says does not resolve, at the YAML path
    that sets it, and why that stops the run: the HTTP server's (or live view's) `host` and
    a zmq sink's tcp `endpoint`, which the run binds, and an mqtt sink's broker, which the
    run must reach as it starts. The names are asked all at once (`names_unknown`): one
    that gets no answer within `RESOLVE_S` passes."""
    named = _host_names(config)
    unknown = names_unknown(host for _, host, _ in named)
    return [(loc, f"{unknown_name(host)}{harm}") for loc, host, harm in named if host in unknown]


def _host_names(config: PipelineConfig) -> list[tuple[Place, str, str]]:
    """Where `config` names a host by a name (not an address, nor a network interface's
    name, which ZeroMQ binds as such): the YAML path, the name, and what a name that does
    not resolve stops, as the rest of the problem's line."""
    named: list[tuple[Place, str, str]] = []
    server = config.server()
    if server is not None:
        named.append((config.server_field_at("host"), server.host, f": {SERVER_HARM}"))
    for index, sink in enumerate(config.sinks):
        if (found := sink_host(sink)) is not None:
            field, host, harm = found
            named.append((("sinks", index, field), host, harm))
    return [(loc, host, harm) for loc, host, harm in named if is_host_name(host)]


@functools.singledispatch
def sink_host(config: object) -> tuple[str, str, str] | None:
    """The field of the sink `config` that names a host, the host, and what it stops when
    it does not resolve; None for a sink that names none."""
    return None


@sink_host.register
def _(config: ZmqSinkConfig) -> tuple[str, str, str] | None:
    host = config.bound_host()
    if host is None or is_interface(host):  # ZeroMQ binds an interface's name as such
        return None
    harm = (
        ", and no network interface here has that name: the zmq sink could not bind it; "
        "give an address of this machine, a name that resolves to one, an interface's name "
        "(e.g. eth0) or * (every address)"
    )
    return "endpoint", host, harm


@sink_host.register
def _(config: MqttSinkConfig) -> tuple[str, str, str] | None:
    harm = (
        ": the mqtt sink could not reach the broker, and the run would stop as it starts; "
        "give the broker's address, or a name that resolves to it"
    )
    return "url", BrokerAddress.parse(config.url).host, harm
