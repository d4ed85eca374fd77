"""The ZeroMQ event bus: what the pipeline sees, published as JSON events as it sees it.

- `schema`: the contract, one pydantic model per event type (docs/events.schema.json);
- `bodies`, `scene_events`: the functions that build events from the shared types;
- `publisher`: `EventPublisher`, the `zmq` sink, on an XPUB socket;
- `subscriber`: `subscribe` / `EventSubscriber`, exact filters, lost-event counts;
- `keys`: CURVE keys (reading, checking, making);
- `display`: one readable line per event, for `python -m pipeline subscribe`.

docs/events.md describes the messages for subscribers in any language.
"""
