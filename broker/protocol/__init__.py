"""Kafka wire protocol: one schema module per API, framing, error codes."""
