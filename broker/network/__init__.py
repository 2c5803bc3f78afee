"""The Kafka network server: listeners and connections (``server``, on the event loop of
``eventloop``), framing, decoding, request ordering and backpressure without I/O
(``connection``), what a handler is given (``context``: ``RequestContext``, ``ListenerSpec``),
and request dispatch (``dispatch``: API key -> handler, the advertised
version table).

May import ``broker.protocol``, ``storage`` and ``kraft``; knows nothing of what the handlers do.
"""
