"""Partition replication: a partition's replication state and decisions (``partition``, pure),
the partitions this broker hosts and their logs (``replica_manager``, with the committed
metadata applied to them by its base ``metadata_apply``), follower fetchers (``fetcher``),
incremental fetch sessions (``fetch_session``), delayed operations (``purgatory``), and the
data-path APIs: Produce, Fetch, ListOffsets, OffsetForLeaderEpoch (``apis``).

The replica manager owns the hosted partitions; the fetcher changes a partition only through
it. May import ``broker.protocol``, ``broker.network``, ``broker.client``, ``storage``, ``kraft``.
"""
