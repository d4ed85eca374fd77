"""Consume the pipeline's events from another program: a people counter per camera.

Needs only pyzmq (`pip install pyzmq`); it does not import the pipeline. Start the pipeline
with a `zmq` sink (config/cams.yaml has one), then, in another terminal:

    python examples/consume_events.py                     # tcp://127.0.0.1:5556
    python examples/consume_events.py --endpoint tcp://pipeline-host:5556 --camera lobby

It prints a line when a person's track starts and ends (with where its picture is, when the
pipeline writes snapshots), and, when the stream ends (or on
Ctrl-C), how many people each camera saw. It also shows how a subscriber notices lost
events: every event carries a per-camera `seq`, and a jump means events were dropped.

For a CURVE-secured bus give the server's public key, and this client's key file if the
server only admits known clients (keys made with `python -m pipeline keygen`):

    python examples/consume_events.py --server-key keys/server.key \
        --client-key keys/client.key_secret

Event fields are described in docs/events.md; docs/events.schema.json is their JSON Schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import zmq
import zmq.auth

SCHEMA_VERSION = 1  # the version of docs/events.md this program was written for


def connect(args: argparse.Namespace) -> zmq.Socket[bytes]:
    """A SUB socket connected to the pipeline, subscribed to the events we use."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    if args.server_key:
        server_public = _public_key(args.server_key)
        if args.client_key:
            public, secret = zmq.auth.load_certificate(args.client_key)
        else:  # a server without a list of clients admits any key pair
            public, secret = zmq.curve_keypair()
        sock.curve_serverkey = server_public
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    sock.connect(args.endpoint)
    # Everything: seq counts every event of a camera, so only a subscriber that gets all of
    # them can tell lost events from filtered ones. (Topics are "<type>.<camera>" and
    # subscriptions match prefixes: "track." would get track.started and track.ended.)
    sock.setsockopt_string(zmq.SUBSCRIBE, "")
    return sock


def _public_key(value: str) -> bytes:
    if Path(value).is_file():
        return zmq.auth.load_certificate(value)[0]
    return value.encode()  # the 40-character key itself


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5556")
    parser.add_argument("--camera", help="only this camera")
    parser.add_argument("--label", default="person", help="class to count (default: person)")
    parser.add_argument("--server-key", help="CURVE: the server's public key or .key file")
    parser.add_argument("--client-key", help="CURVE: this client's .key_secret file")
    parser.add_argument("--idle-timeout", type=float, default=None, help="stop after S quiet s")
    args = parser.parse_args()

    sock = connect(args)
    people: Counter[str] = Counter()
    last_seq: dict[str, int] = {}
    ended: set[str] = set()
    timeout_ms = None if args.idle_timeout is None else int(args.idle_timeout * 1000)
    try:
        while sock.poll(timeout_ms):
            _topic, body = sock.recv_multipart()
            event = json.loads(body)
            camera = event["camera"]
            if args.camera and camera != args.camera:
                continue
            if event["schema_version"] != SCHEMA_VERSION:
                print(f"warning: events have schema_version {event['schema_version']}")
            previous = last_seq.get(camera)
            if previous is not None and event["seq"] > previous + 1:
                print(f"warning: {camera}: {event['seq'] - previous - 1} events lost")
            last_seq[camera] = event["seq"]  # (it goes down when the pipeline restarts)
            if event["type"] == "track.started" and event["label"] == args.label:
                people[camera] += 1
                print(f"{event['time']} {camera}: {args.label} #{event['track_id']} appeared")
            elif event["type"] == "track.ended" and event["label"] == args.label:
                # with a snapshots sink: where the picture of its best detection is written
                picture = event.get("snapshot_path")
                print(
                    f"{event['time']} {camera}: {args.label} #{event['track_id']} gone after "
                    f"{event['frames']} frames (best score {event['best_score']})"
                    + (f", picture {picture}" if picture else "")
                )
            elif event["type"] == "stream.ended":
                ended.add(camera)
                if args.camera:
                    break
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the watch; the summary below is still printed
    finally:
        sock.close(linger=0)
    for camera in sorted(set(people) | ended):
        print(f"{camera}: {people[camera]} {args.label}(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
