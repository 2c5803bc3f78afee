"""The Kafka network server: listeners, connections, framing, request ordering and
backpressure (``server``), and request dispatch (``dispatch``: API key -> handler, the
advertised version table).

May import ``broker.protocol``, ``storage`` and ``kraft``; knows nothing of what the handlers do.
"""
