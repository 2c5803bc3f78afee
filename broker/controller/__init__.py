"""The metadata quorum and the controller on a node: the Raft driver over the wire
(``raft_driver``, with ``raft_persist``, ``raft_peers``, ``raft_inbound``, and ``raft_wire``),
the durable metadata log (``metadata_log``), the loader that turns the committed log into
images (``metadata_loader``), the controller host running
``kraft.controller.QuorumController`` on the Raft leader (``host``) and its wire APIs
(``apis``, with the wire <-> domain translation of its operations in ``translation``), and the
broker's side of it: requests to the active controller (``channel``) and
registration and heartbeats (``lifecycle``).

May import ``broker.protocol``, ``broker.network``, ``broker.client``, ``storage``, ``kraft``.
"""
