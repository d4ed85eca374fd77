"""The MQTT sink: the run's events on an MQTT broker, per-camera state kept there
(retained), and optionally Home Assistant discovery so that cameras appear as sensors.

- `settings`: the broker's address and credentials (`BrokerSettings`), whether paho-mqtt is
  installed; importing it does not import paho;
- `topics`: every topic the sink writes, named in one place;
- `connection`: `MqttConnection`, one paho client that reconnects with backoff;
- `outbox`: what waits in it for the broker (a bounded buffer, the state of each topic)
  and the messages too large for the broker, dropped;
- `handed`: the messages handed to paho, until it says they went out or were given up;
- `refused`: which message the broker keeps closing the connection for (one past its
  limit), given up with its copies;
- `login`: the paho client made and its socket opened, the login's failure in one line;
- `sockets`: the TCP connection and its TLS handshake, made in short steps that a stop
  and `connect_timeout_s` end;
- `packets`: the size of a message's packet, which brokers limit;
- `disconnects`: why a connection was lost, in words a user can act on;
- `discovery`: Home Assistant's MQTT discovery messages for a camera;
- `sink`: `MqttSink`, the `mqtt` sink.

docs/integrations.md describes the topics for users.
"""
