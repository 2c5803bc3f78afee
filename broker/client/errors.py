"""The client's exceptions: a connection that could not be made or was lost, a request that
got no answer in time, a response that does not decode. Error codes inside responses are
``broker.protocol.errors``' ``KafkaError`` classes."""

from __future__ import annotations


class KafkaConnectionError(ConnectionError):
    """The connection could not be made, or was lost, or was closed: the request may or may
    not have reached the broker."""

    def __init__(self, message: str, *, host: str | None = None, port: int | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


class KafkaAuthenticationError(KafkaConnectionError):
    """The broker refused the SASL login (wrong credentials, unknown user, mechanism not
    enabled): retrying with the same settings does not help."""


class NoBrokersAvailableError(KafkaConnectionError):
    """None of the bootstrap servers (or known brokers) answered."""


class KafkaTimeoutError(TimeoutError):
    """A request got no response in time (``last_error`` is set when an overall deadline
    expired after retries: the error of the last attempt)."""

    def __init__(self, message: str, *, last_error: BaseException | None = None,
                 attempts: int = 0) -> None:
        super().__init__(message)
        self.last_error = last_error
        self.attempts = attempts


class KafkaProtocolError(Exception):
    """A response that does not decode at the version we asked for (the connection stays
    up: framing is intact)."""
