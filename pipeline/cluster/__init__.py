"""Cameras sharded over a Ray cluster (docs/cluster.md).

A run whose config has a `cluster:` section is run by `ClusterRun` (`pipeline.cluster.run`):
a coordinator in the driver assigns the cameras to shard actors, each running today's
`Pipeline` for its cameras, and a ZeroMQ forwarder puts every shard's events on the
configured endpoint. Importing this package does not import Ray; running it does.
"""
