"""Transactions, the coordinator side (KIP-98, KIP-360): the pure state machine of every
transactional id (``coordinator``, over the data of ``state``), the records of
``__transaction_state`` (``records``), loading and writing that topic, the transaction
markers sent to partition leaders and the timers (``manager``), and the APIs on top of it
(``apis``).

A transactional id's state changes only through ``coordinator``; ``manager`` and ``apis`` do
the I/O through the replica manager and the broker's outgoing connections. May import
``broker.replication``, ``broker.protocol``, ``broker.network``, ``broker.client``,
``broker.groups`` (the ``__consumer_offsets`` partition of a group).
"""
