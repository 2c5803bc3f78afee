"""Consumer groups: the classic group protocol as a pure state machine (``coordinator``, with
the offset rules in ``offsets``) over the groups' data (``group``), the consumer group
protocol of KIP-848 beside it (``consumer_coordinator`` over ``consumer_group``, with the
server-side ``assignors`` and its records in ``consumer_records``; its APIs in
``consumer_apis``), transactional offset commits pending until their marker (``txn_offsets``,
with TxnOffsetCommit in ``txn_offset_apis``), the records of ``__consumer_offsets`` and the
consumer protocol's blobs (``records``), the loading and writing of ``__consumer_offsets`` with the coordinator's timers
(``metadata_manager``), and the group APIs on top of it (``apis``).

The coordinator's state changes only through ``coordinator``; ``metadata_manager`` and ``apis``
do the I/O through the replica manager. May import ``broker.replication``, ``broker.protocol``,
``broker.network``.
"""
