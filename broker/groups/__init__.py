"""Consumer groups: the classic group protocol as a pure state machine (``coordinator``, with
the offset rules in ``offsets``) over the groups' data (``group``), the records of
``__consumer_offsets`` and the consumer protocol's blobs (``records``), and the group APIs with
the loading and writing of ``__consumer_offsets`` (``apis``).

The coordinator's state changes only through ``coordinator``; ``apis`` does the I/O through the
replica manager. May import ``broker.replication``, ``broker.protocol``, ``broker.network``.
"""
