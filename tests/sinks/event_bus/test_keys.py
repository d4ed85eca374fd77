"""CURVE keys are read and checked, and only subscribers with the right keys get events."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth

from pipeline.types import StreamEnd
from sinks.base import SinkError
from sinks.event_bus.keys import (
    CurveKeyError,
    check_z85_key,
    create_key_pair,
    read_public_key,
    read_secret_key,
    server_secret_key,
)
from sinks.event_bus.publisher import EventPublisher
from sinks.event_bus.subscriber import EventSubscriber
from tests.sinks.event_bus.conftest import LABELS, boxes, result


def _keys(path: Path) -> tuple[bytes, bytes]:
    return read_public_key(path), read_secret_key(path)


def curve_publisher(
    endpoint: str, secret_file: Path, authorized_clients: Path | None = None
) -> EventPublisher:
    """A CURVE publisher that waits up to 20 s for its first subscriber."""
    return EventPublisher(
        endpoint,
        LABELS,
        wait_for_subscribers=1,
        wait_timeout_s=20,
        curve_secret_key=read_secret_key(secret_file),
        curve_authorized_clients=authorized_clients,
    )


def test_curve_subscriber_needs_the_server_key_and_an_authorized_client_key(
    endpoint: str, curve_keys: dict[str, Path]
) -> None:
    server_public = read_public_key(curve_keys["server_public"])
    mallory_public = read_public_key(curve_keys["mallory"])
    context = zmq.Context()
    plain = context.socket(zmq.SUB)  # no CURVE at all
    plain.setsockopt(zmq.SUBSCRIBE, b"")
    plain.connect(endpoint)
    outsiders = [
        # right server key, but a client key the server does not know
        EventSubscriber(
            endpoint, server_key=server_public, client_keys=_keys(curve_keys["mallory"])
        ),
        # a known client key, but the wrong server key (a man in the middle's)
        EventSubscriber(
            endpoint, server_key=mallory_public, client_keys=_keys(curve_keys["alice"])
        ),
        # right server key, a fresh key pair
        EventSubscriber(endpoint, server_key=server_public),
    ]
    alice = EventSubscriber(
        endpoint, server_key=server_public, client_keys=_keys(curve_keys["alice"])
    )
    try:
        sink = curve_publisher(endpoint, curve_keys["server"], curve_keys["authorized"])
        assert sink.curve_public_key == server_public.decode()
        for i in range(50):
            sink.write(result("cam1", i, boxes([[1, 1, 5, 5]], [-1])))
        sink.end(StreamEnd("cam1", frames=50))
        sink.close()

        got = [alice.receive(timeout_s=5.0) for _ in range(51)]
        assert [e.seq if e is not None else None for e in got] == list(range(51))
        assert alice.missed == {}
        for outsider in outsiders:
            assert outsider.receive(timeout_s=0.5) is None
        assert plain.poll(500) == 0
    finally:
        for subscriber in (*outsiders, alice):
            subscriber.close()
        plain.close(linger=0)
        context.term()


@pytest.mark.parametrize("outsider", ["unknown client", "wrong server key", "no keys"])
def test_a_subscriber_the_curve_publisher_turns_away_knows_it_was_refused(
    endpoint: str, curve_keys: dict[str, Path], outsider: str
) -> None:
    # Told apart from a publisher that is there but silent, and from no publisher at all.
    server_public = read_public_key(curve_keys["server_public"])
    keys = {
        "unknown client": {
            "server_key": server_public,
            "client_keys": _keys(curve_keys["mallory"]),
        },
        "wrong server key": {
            "server_key": read_public_key(curve_keys["mallory"]),
            "client_keys": _keys(curve_keys["alice"]),
        },
        "no keys": {},
    }[outsider]
    sink = EventPublisher(
        endpoint,
        LABELS,
        curve_secret_key=read_secret_key(curve_keys["server"]),
        curve_authorized_clients=curve_keys["authorized"],
    )
    try:
        with EventSubscriber(endpoint, **keys) as subscriber:  # type: ignore[arg-type]
            deadline = time.monotonic() + 10
            while subscriber.publisher == "absent" and time.monotonic() < deadline:
                assert subscriber.receive(timeout_s=0.05) is None
            assert subscriber.publisher == "refused"
    finally:
        sink.close()


def test_curve_without_authorized_clients_admits_anyone_with_the_server_key(
    endpoint: str, curve_keys: dict[str, Path]
) -> None:
    server_public = read_public_key(curve_keys["server_public"])
    with EventSubscriber(endpoint, server_key=server_public) as anyone:
        sink = curve_publisher(endpoint, curve_keys["server"])
        sink.write(result("cam1", 0))
        sink.close()
        event = anyone.receive(timeout_s=5.0)
    assert event is not None and (event.type, event.seq) == ("detections", 0)


def test_key_files_and_z85_strings_are_read_and_bad_ones_named(
    curve_keys: dict[str, Path], tmp_path: Path
) -> None:
    public, secret = zmq.auth.load_certificate(curve_keys["server"])
    assert read_secret_key(curve_keys["server"]) == secret
    assert read_public_key(curve_keys["server_public"]) == public
    assert read_public_key(public.decode()) == public
    with pytest.raises(CurveKeyError, match=r"only a public key.*key_secret"):
        read_secret_key(curve_keys["server_public"])
    with pytest.raises(CurveKeyError, match=r"nope\.key' is neither a 40-character .* nor a key"):
        read_public_key(tmp_path / "nope.key")
    with pytest.raises(CurveKeyError, match=r"'abc' is neither a 40-character Z85 CURVE key \(3 "):
        read_public_key("abc")  # a key mistyped is not called a missing file
    with pytest.raises(CurveKeyError, match="not a 40-character Z85"):
        check_z85_key("tooshort", "curve.secret_key")
    with pytest.raises(SinkError, match=r"authorized_clients .* holds no client"):
        EventPublisher(
            "tcp://127.0.0.1:*", LABELS, curve_secret_key=secret, curve_authorized_clients=tmp_path
        )


def test_server_secret_key_is_read_from_a_file_or_given_inline_but_not_both(
    curve_keys: dict[str, Path],
) -> None:
    _, secret = zmq.auth.load_certificate(curve_keys["server"])
    assert secret is not None
    assert server_secret_key(curve_keys["server"], None) == secret
    assert server_secret_key(None, f" {secret.decode()} ") == secret
    with pytest.raises(CurveKeyError, match=r"curve\.secret_key is not a 40-character Z85"):
        server_secret_key(None, "not-a-key")
    with pytest.raises(CurveKeyError, match=r"only a public key"):
        server_secret_key(curve_keys["server_public"], None)
    for both_or_neither in [(curve_keys["server"], secret.decode()), (None, None)]:
        with pytest.raises(CurveKeyError, match="exactly one of secret_key_file and secret_key"):
            server_secret_key(*both_or_neither)


@pytest.fixture
def no_umask() -> Iterator[None]:
    """umask 0, so that a file's mode is the one it was created with."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_key_pair_secret_is_created_private_and_public_key_readable(
    tmp_path: Path, no_umask: None
) -> None:
    public_file, secret_file, public = create_key_pair(tmp_path / "keys", "server")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(public_file.stat().st_mode) == 0o644
    assert zmq.auth.load_certificate(secret_file) == (public, read_secret_key(secret_file))
    assert read_public_key(public_file) == public


@pytest.mark.parametrize("existing", ["server.key", "server.key_secret"])
def test_key_pair_never_overwrites_an_existing_key_file(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("the user's old key")
    with pytest.raises(FileExistsError):
        create_key_pair(tmp_path, "server")
    assert (tmp_path / existing).read_text() == "the user's old key"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_keygen_command_refuses_an_existing_secret_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    (tmp_path / "server.key_secret").write_text("the user's old key")
    assert main(["keygen", str(tmp_path)]) == 2
    assert "server.key_secret exists" in capsys.readouterr().err
    assert (tmp_path / "server.key_secret").read_text() == "the user's old key"


def test_a_secret_key_file_others_can_read_is_warned_about(
    curve_keys: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    curve_keys["server"].chmod(0o644)
    read_secret_key(curve_keys["server"])
    assert "readable by other users" in caplog.text and "chmod 600" in caplog.text
    caplog.clear()
    curve_keys["server"].chmod(0o600)
    read_secret_key(curve_keys["server"])
    assert caplog.text == ""


def test_a_key_path_that_is_a_folder_is_named_a_folder_not_missing(tmp_path: Path) -> None:
    for read in (read_secret_key, read_public_key):
        with pytest.raises(CurveKeyError, match=f"^key file is a folder, not a file: {tmp_path} "):
            read(tmp_path)
    with pytest.raises(CurveKeyError, match=f"^key file not found: {tmp_path / 'gone.key'} "):
        read_secret_key(tmp_path / "gone.key")
